"""The container representations travel in, from feature extraction to the detectors.

It sits below both (:mod:`ssdlib.features` fills it, :mod:`ssdlib.detectors` read it) and imports
nothing of ssdlib, so neither layer reaches into the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class MissingInputError(ValueError):
    """Raised when a FeatureSet lacks what a detector needs (e.g. logits for MSP)."""


@dataclass
class FeatureSet:
    """Representations of one dataset: penultimate features [N, D], logits [N, M], labels [N]."""

    features: np.ndarray | None = None
    logits: np.ndarray | None = None
    labels: np.ndarray | None = None

    def require(self, name: str, detector: str) -> np.ndarray:
        value = getattr(self, name)
        if value is None:
            raise MissingInputError(
                f"{detector} needs {name}, but this FeatureSet has none: extract with a model that "
                f"provides {name} (see ssdlib.features.extract)"
            )
        return value

    def __len__(self) -> int:
        for v in (self.features, self.logits, self.labels):
            if v is not None:
                return len(v)
        return 0
