"""MSP: the maximum softmax probability (Hendrycks & Gimpel 2017, ICLR).

s(x) = max_c softmax_c(f(x)). It needs no fitting; it is the baseline every OOD paper starts from.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from ssdlib.detectors.base import Detector, FeatureSet
from ssdlib.detectors.registry import Method, MethodParams, register


class MSP(Detector):
    """Maximum softmax probability of the classifier's logits; higher = more ID."""

    name = "MSP"

    def _fit(self, train: FeatureSet) -> None:
        """Nothing to estimate: MSP reads the logits alone."""

    def _score(self, data: FeatureSet) -> np.ndarray:
        logits = np.asarray(data.require("logits", self.name), dtype=np.float64)
        return softmax(logits, axis=1).max(axis=1)


register(Method("msp", "MSP", MethodParams, lambda _section, _model: MSP(), fits=False, needs="logits"))
