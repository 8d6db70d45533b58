"""SSOD's score (Pei et al. 2023): the OOD head on the pooled feature, optionally times MSP.

- ``score="ood"`` (Eq. 10): P(ID | x) = sigmoid(f_ood(GAP(h(x)))).
- ``score="ood_x_msp"`` (Eq. 2): P(ID | x) * max_i softmax(f_cls(GAP(h(x))))_i, the paper's
  factorisation of the class posterior into OOD factor and ID factor; a cheap ablation.

Scores are returned as log-probabilities, log sigmoid(z) (+ log MSP). The log is monotone, so
every metric equals that of the probabilities, but well-trained heads give logits where sigmoid
rounds to exactly 1.0 and many ID images would tie. The detector has nothing to fit: ``fit``
only marks it ready. It reads the pooled features (and logits) of a ``FeatureSet`` that
``ssdlib.features.extract`` made from an ``SSODNet``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_expit, log_softmax

from ssdlib.detectors.base import Detector, FeatureSet

SCORES = ("ood", "ood_x_msp")


class SSOD(Detector):
    """log P(ID) from the OOD head's weight [D] and bias (higher = more in-distribution)."""

    name = "SSOD"

    def __init__(self, weight, bias: float, score: str = "ood") -> None:
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"unknown SSOD score {score!r}; choose one of {', '.join(SCORES)}")
        self.weight = np.asarray(weight, dtype=np.float64).ravel()
        self.bias = float(bias)
        self.score_kind = score
        self.name = "SSOD" if score == "ood" else "SSOD x MSP"

    @classmethod
    def from_model(cls, model, score: str = "ood") -> SSOD:
        """The detector of a trained ``SSODNet`` (its ``ood_head``)."""
        head = model.ood_head
        return cls(head.weight.detach().cpu().numpy(), head.bias.detach().cpu().item(), score)

    def _fit(self, train: FeatureSet) -> None:
        """Nothing to estimate: the OOD head was trained jointly with the classifier."""

    def ood_logits(self, data: FeatureSet) -> np.ndarray:
        features = data.require("features", self.name).astype(np.float64)
        if features.shape[1] != self.weight.size:
            raise ValueError(
                f"{self.name}: features have {features.shape[1]} dimensions but the OOD head expects "
                f"{self.weight.size}: extract them with the model this detector came from"
            )
        return features @ self.weight + self.bias

    def _score(self, data: FeatureSet) -> np.ndarray:
        score = log_expit(self.ood_logits(data))
        if self.score_kind == "ood_x_msp":
            score = score + log_softmax(data.require("logits", self.name).astype(np.float64), axis=1).max(axis=1)
        return score
