"""Generalized ODIN's score: the largest dividend h_i of the preprocessed input (Hsu et al. 2020, CVPR).

s(x) = max_i h_i(x~), with x~ = x - eps * sign(-grad_x max_i h_i(x)): a step that *raises* the
score (Eq. 9). GODIN picks eps without OOD data, as the value of a grid that maximises the mean
score on ID validation images (``ssdlib.evaluation.baselines.tune`` does that when
``baselines.godin.epsilon`` is null). The step is in [0, 1] pixel space (see
:mod:`ssdlib.detectors.preprocessing`).

The model is a :class:`ssdlib.models.godin.GODINNet`. Its ``classify`` gives the quotient h / g,
so score only what :meth:`GODIN.extract` returns, whose logits are the dividends h.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch

from ssdlib.detectors.base import Detector, FeatureSet
from ssdlib.detectors.preprocessing import Loss, extract_preprocessed
from ssdlib.detectors.registry import Field, Method, MethodParams, register


class GODIN(Detector):
    """max_i h_i of the preprocessed input under a GODIN network; higher = more ID."""

    name = "GODIN"
    input_space = True  # the dividends come from the model, never from cached logits

    def __init__(self, epsilon: float = 0.0) -> None:
        super().__init__()
        if epsilon < 0:
            raise ValueError(f"GODIN's epsilon is a step size and must be >= 0, got {epsilon}")
        self.epsilon = float(epsilon)

    def _fit(self, train: FeatureSet) -> None:
        """Nothing to estimate from train features; eps is chosen on ID validation data."""

    def _score(self, data: FeatureSet) -> np.ndarray:
        return np.asarray(data.require("logits", self.name), dtype=np.float64).max(axis=1)

    @staticmethod
    def loss(model: torch.nn.Module) -> Loss:
        """Per-sample -max_i h_i(x): lowering it raises the score."""
        return lambda x: -model.dividend(model.features(x)).max(dim=1).values

    def extract(self, model, loader, device="cpu") -> FeatureSet:
        """Features of the preprocessed images and their dividends h as ``logits``."""
        if not callable(getattr(model, "dividend", None)):
            raise TypeError(f"GODIN scores a GODINNet (ssdlib.models.godin); {type(model).__name__} has no .dividend")
        return extract_preprocessed(
            model, loader, device, self.loss(model), self.epsilon, outputs=model.dividend, desc="GODIN preprocessing"
        )


class GODINParams(MethodParams):
    """``baselines.godin``: the similarity the GODIN network trains with, and its input step."""

    similarity: Literal["cosine", "inner", "euclidean"] = Field(
        "cosine", description="the dividend h_i(x) (Hsu et al. 2020: h^C, h^I, h^E)"
    )
    epsilon: float | None = Field(
        None,
        ge=0,
        description="input step; null = chosen on ID validation data (the "
        "max mean score), GODIN's own rule, which needs no OOD data",
    )
    grid: dict[str, list] = Field(default_factory=lambda: {"epsilon": [0.0, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08]})
    tune_criterion: ClassVar[str] = "mean ID score"
    NOT_IN_SETTING: ClassVar[tuple[str, ...]] = ("similarity",)  # a property of the trained network

    def must_tune(self) -> tuple[str, ...]:
        return ("epsilon",) if self.epsilon is None else ()


def _build(section: GODINParams, _model) -> GODIN:
    if section.epsilon is None:
        raise ValueError(
            "baselines.godin.epsilon is null (chosen on ID validation data): tune it first "
            "(ssdlib.evaluation.baselines.tune)"
        )
    return GODIN(section.epsilon)


register(Method("godin", "GODIN", GODINParams, _build, fits=False, needs="input gradients (a GODIN network)"))
