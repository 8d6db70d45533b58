"""ODIN: temperature scaling plus input preprocessing (Liang et al. 2018, ICLR, Eqs. 1-2).

s(x) = max_c softmax_c(f(x~) / T), where x~ = x - eps * sign(-grad_x log S_yhat(x; T)) and yhat is
the predicted class: a small step that raises the top temperature-scaled softmax probability,
which (the paper argues) ID inputs gain more from than OOD inputs. Defaults T = 1000,
eps = 0.0014 (the paper's CIFAR-10 DenseNet value; OpenOOD and pytorch-ood use the same).

The step is taken in [0, 1] pixel space, which equals the reference's sign / std step in
normalised space (see :mod:`ssdlib.detectors.preprocessing`). Scoring a plain FeatureSet (from
``ssdlib.features.extract``) gives temperature scaling without preprocessing; :meth:`ODIN.extract`
gives the preprocessed logits.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import softmax

from ssdlib.detectors.base import Detector, FeatureSet
from ssdlib.detectors.preprocessing import Loss, extract_preprocessed
from ssdlib.detectors.registry import Field, Method, MethodParams, register


class ODIN(Detector):
    """Max softmax at temperature T of the preprocessed input; higher = more ID."""

    name = "ODIN"

    def __init__(self, temperature: float = 1000.0, epsilon: float = 0.0014) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"ODIN's temperature must be positive, got {temperature}")
        if epsilon < 0:
            raise ValueError(f"ODIN's epsilon is a step size and must be >= 0, got {epsilon}")
        self.temperature, self.epsilon = float(temperature), float(epsilon)

    @property
    def input_space(self) -> bool:
        """Whether scoring needs the images (preprocessing on), not only cached features."""
        return self.epsilon > 0

    def _fit(self, train: FeatureSet) -> None:
        """Nothing to estimate: T and eps are hyper-parameters."""

    def _score(self, data: FeatureSet) -> np.ndarray:
        logits = np.asarray(data.require("logits", self.name), dtype=np.float64)
        return softmax(logits / self.temperature, axis=1).max(axis=1)

    def loss(self, model: torch.nn.Module) -> Loss:
        """Per-sample -log S_yhat(x; T), yhat = the predicted class (the loss the step lowers)."""

        def cross_entropy(x: torch.Tensor) -> torch.Tensor:
            logits = model.classify(model.features(x)) / self.temperature
            return F.cross_entropy(logits, logits.argmax(dim=1), reduction="none")

        return cross_entropy

    def extract(self, model, loader, device="cpu") -> FeatureSet:
        """Features and logits of the preprocessed images x~ (needs ``model.classify``)."""
        if not callable(getattr(model, "classify", None)):
            raise TypeError(f"ODIN needs a classifier (a model with .classify); got {type(model).__name__}")
        return extract_preprocessed(
            model, loader, device, self.loss(model), self.epsilon, outputs=model.classify, desc="ODIN preprocessing"
        )


class ODINParams(MethodParams):
    """``baselines.odin``: Liang et al. 2018's defaults; the grid is OpenOOD v1.5's APS sweep."""

    temperature: float = Field(1000.0, gt=0, description="softmax temperature T")
    epsilon: float = Field(0.0014, ge=0, description="input step in [0, 1] pixel units; 0 = temperature scaling only")
    grid: dict[str, list] = Field(
        default_factory=lambda: {"temperature": [1.0, 10.0, 100.0, 1000.0], "epsilon": [0.0014, 0.0028]}
    )


register(
    Method(
        "odin",
        "ODIN",
        ODINParams,
        lambda s, _model: ODIN(s.temperature, s.epsilon),
        fits=False,
        needs="input gradients",
    )
)
