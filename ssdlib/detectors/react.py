"""ReAct: rectified activations, then the energy score (Sun, Guo & Li 2021, NeurIPS, Eq. 1).

h~ = min(h, c) clips the penultimate features at c, the ``percentile``-th percentile (90 by
default) of all ID activations of the set ``fit`` is given, and the score is the energy
logsumexp(W h~ + b) of the classifier's linear head. Which ID split sets c differs between codes:
ReAct's own code and OpenOOD take an ID *validation* split, pytorch-ood the training data it is
fitted on. ``ssdlib.evaluation.baselines`` passes the train features or, for ``val``, those of the
ID validation hold-out (the ``baselines.tune_id_fraction`` share of ID train that no detector is
fitted on and tuning scores on) as ``baselines.react.source`` says, and records it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ssdlib.detectors.base import Detector, FeatureSet
from ssdlib.detectors.energy import energy_score
from ssdlib.detectors.registry import Field, Method, MethodParams, linear_head, register


class ReAct(Detector):
    """Energy of the linear head applied to features clipped at an ID percentile; higher = more ID.

    ``weight`` [C, D] and ``bias`` [C] are the classifier's last layer.
    """

    name = "ReAct"

    def __init__(self, weight: np.ndarray, bias: np.ndarray, percentile: float = 90.0) -> None:
        super().__init__()
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile is in (0, 100] (e.g. 90), got {percentile}")
        self.weight = np.asarray(weight, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        if self.weight.ndim != 2 or self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"weight must be [C, D] and bias [C]; got {self.weight.shape} and {self.bias.shape}")
        self.percentile = float(percentile)

    def _fit(self, train: FeatureSet) -> None:
        self.threshold_ = float(np.percentile(train.require("features", self.name), self.percentile))

    def _score(self, data: FeatureSet) -> np.ndarray:
        clipped = np.minimum(np.asarray(data.require("features", self.name), dtype=np.float64), self.threshold_)
        return energy_score(clipped @ self.weight.T + self.bias)


class ReActParams(MethodParams):
    """``baselines.react``: the grid is OpenOOD v1.5's APS sweep."""

    percentile: float = Field(90.0, gt=0, le=100, description="clip at this percentile of ID activations")
    source: Literal["train", "val"] = Field(
        "train",
        description="ID split the percentile is taken on: train (pytorch-ood) or val, the "
        "baselines.tune_id_fraction hold-out of ID train (ReAct's code, OpenOOD: ID validation data)",
    )
    grid: dict[str, list] = Field(default_factory=lambda: {"percentile": [85.0, 90.0, 95.0, 99.0]})

    def fit_split(self) -> str:
        return self.source


register(
    Method(
        "react",
        "ReAct",
        ReActParams,
        lambda s, model: ReAct(*linear_head(model, "react"), s.percentile),
        needs="classifier head",
    )
)
