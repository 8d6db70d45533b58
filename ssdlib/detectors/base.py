"""The one detector interface every method in ssdlib honours.

A detector is fitted on in-distribution *training* representations (labels optional) and scores
any representations; **higher score = more in-distribution**. Representations travel as a
:class:`FeatureSet` (penultimate features, logits, labels). Methods that work in input space
(ODIN, input-preprocessed Mahalanobis, GODIN) override :meth:`Detector.extract`, which turns a
model and a data loader into the FeatureSet that the method scores.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ssdlib.feature_set import FeatureSet, MissingInputError
from ssdlib.features import extract

__all__ = ["Detector", "FeatureSet", "MissingInputError", "NotFittedError", "l2_normalize"]

L2_EPS = 1e-10  # SSD's and knn-ood's epsilon: z / (||z|| + 1e-10)


def l2_normalize(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as a new float64 array: the feature normalisation of SSD and KNN."""
    unit = np.array(features, dtype=np.float64)
    unit /= np.sqrt(np.einsum("ij,ij->i", unit, unit))[:, None] + L2_EPS  # no [N, D] temporary
    return unit


class NotFittedError(RuntimeError):
    """Raised when a detector scores before it was fitted: call ``fit()`` first."""


class Detector(ABC):
    """Fit on ID training data, score anything; higher = more in-distribution."""

    name: str = "detector"
    input_space: bool = False  # True when scores need the images themselves (see :meth:`extract`)

    def __init__(self) -> None:
        self._fitted = False

    @abstractmethod
    def _fit(self, train: FeatureSet) -> None:
        """Estimate the detector's statistics from ID training representations."""

    @abstractmethod
    def _score(self, data: FeatureSet) -> np.ndarray:
        """Scores [N] for ``data``; higher = more in-distribution."""

    def fit(self, train: FeatureSet) -> Detector:
        self._fit(train)
        self._fitted = True
        return self

    def score(self, data: FeatureSet) -> np.ndarray:
        if not self._fitted:
            raise NotFittedError(f"{self.name}: call fit() on ID training data before score()")
        scores = np.asarray(self._score(data), dtype=np.float64)
        if scores.shape != (len(data),):
            raise RuntimeError(f"{self.name} returned scores of shape {scores.shape} for {len(data)} samples")
        return scores

    def extract(self, model, loader, device="cpu") -> FeatureSet:
        """Representations of ``loader`` under ``model``; input-space methods override this."""
        return extract(model, loader, device=device)
