"""Energy score (Liu et al. 2020, NeurIPS, Eq. 5).

The free energy of the logits is E(x) = -T logsumexp(f(x) / T); the score is -E(x), so
s(x) = T logsumexp(f(x) / T), with T = 1 by default (the paper's choice for post-hoc use).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ssdlib.detectors.base import Detector, FeatureSet
from ssdlib.detectors.registry import Field, Method, MethodParams, register


def energy_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """T logsumexp(logits / T) per row: the negative free energy (higher = more ID)."""
    logits = np.asarray(logits, dtype=np.float64)
    return temperature * logsumexp(logits / temperature, axis=1)


class Energy(Detector):
    """Negative free energy of the logits; higher = more ID."""

    name = "Energy"

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"the energy temperature must be positive, got {temperature}")
        self.temperature = temperature

    def _fit(self, train: FeatureSet) -> None:
        """Nothing to estimate: the energy reads the logits alone."""

    def _score(self, data: FeatureSet) -> np.ndarray:
        return energy_score(data.require("logits", self.name), self.temperature)


class EnergyParams(MethodParams):
    """``baselines.energy``."""

    temperature: float = Field(1.0, gt=0, description="T of the energy score T * logsumexp(f / T)")


register(Method("energy", "Energy", EnergyParams, lambda s, _model: Energy(s.temperature), fits=False, needs="logits"))
