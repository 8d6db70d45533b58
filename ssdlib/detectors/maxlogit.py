"""MaxLogit: the largest logit (Hendrycks et al. 2022, "Scaling OOD detection to the real world").

s(x) = max_c f_c(x). Unlike MSP it keeps the logits' scale, which the softmax divides away.
"""

from __future__ import annotations

import numpy as np

from ssdlib.detectors.base import Detector, FeatureSet
from ssdlib.detectors.registry import Method, MethodParams, register


class MaxLogit(Detector):
    """Largest logit of the classifier; higher = more ID."""

    name = "MaxLogit"

    def _fit(self, train: FeatureSet) -> None:
        """Nothing to estimate: MaxLogit reads the logits alone."""

    def _score(self, data: FeatureSet) -> np.ndarray:
        return np.asarray(data.require("logits", self.name), dtype=np.float64).max(axis=1)


register(Method("maxlogit", "MaxLogit", MethodParams, lambda _section, _model: MaxLogit(), fits=False, needs="logits"))
