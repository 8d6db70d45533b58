"""Mahalanobis: class-conditional Gaussians with a tied covariance (Lee et al. 2018, NeurIPS, Eq. 2).

Fit on ID train features z with labels y: class means mu_c and one shared covariance
Sigma = 1/N sum_i (z_i - mu_{y_i})(z_i - mu_{y_i})^T (sklearn's ``EmpiricalCovariance`` of the
class-centred features, as OpenOOD). Score s(x) = max_c -(z - mu_c)^T Sigma^+ (z - mu_c), the
penultimate-layer "MDS" of OpenOOD and the KNN / SSD papers. Lee et al.'s code and pytorch-ood use
-1/2 of it, which ranks the same.

Optional input preprocessing (``epsilon`` > 0, Lee et al. Eq. 4): x~ = x - eps * sign(grad_x
MD_chat(x)), a step towards the closest class mean, then the score of x~. It is off by default,
as in the papers' "MDS" baseline; the feature ensemble over layers is not implemented.
"""

from __future__ import annotations

import numpy as np
import torch

from ssdlib.detectors.base import Detector, FeatureSet, NotFittedError
from ssdlib.detectors.preprocessing import Loss, extract_preprocessed
from ssdlib.detectors.registry import Field, Method, MethodParams, register
from ssdlib.detectors.ssd import Gaussian


class Mahalanobis(Detector):
    """-min_c squared Mahalanobis distance to the class means under a tied covariance; higher = more ID."""

    name = "Mahalanobis"

    def __init__(self, epsilon: float = 0.0) -> None:
        super().__init__()
        if epsilon < 0:
            raise ValueError(f"Mahalanobis's epsilon is a step size and must be >= 0, got {epsilon}")
        self.epsilon = float(epsilon)

    @property
    def input_space(self) -> bool:
        """Whether scoring needs the images (preprocessing on), not only cached features."""
        return self.epsilon > 0

    def _fit(self, train: FeatureSet) -> None:
        z = np.asarray(train.require("features", self.name), dtype=np.float64)
        y = np.asarray(train.require("labels", self.name))
        if (y < 0).any():
            raise ValueError("Mahalanobis fits on labelled ID data, but some labels are < 0 (OOD): drop them first")
        classes = np.unique(y)
        means = np.stack([z[y == c].mean(axis=0) for c in classes])
        centred = z - means[np.searchsorted(classes, y)]
        precision = np.linalg.pinv(centred.T @ centred / len(z))
        self.gaussians_ = [Gaussian(mean=m, precision=precision) for m in means]

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distances [N, C] to every class mean."""
        z = np.asarray(features, dtype=np.float64)
        return np.stack([g.squared_distance(z) for g in self.gaussians_], axis=1)

    def _score(self, data: FeatureSet) -> np.ndarray:
        return -self.distances(data.require("features", self.name)).min(axis=1)

    def loss(self, model: torch.nn.Module, device) -> Loss:
        """Per-sample squared distance to the closest class mean (the loss the input step lowers)."""
        means = torch.tensor(np.stack([g.mean for g in self.gaussians_]), dtype=torch.float32, device=device)
        precision = torch.tensor(self.gaussians_[0].precision, dtype=torch.float32, device=device)

        def closest_distance(x: torch.Tensor) -> torch.Tensor:
            d = model.features(x).float()[:, None, :] - means  # [B, C, D]
            return torch.einsum("bcd,de,bce->bc", d, precision, d).min(dim=1).values

        return closest_distance

    def extract(self, model, loader, device="cpu") -> FeatureSet:
        """Plain features, or with ``epsilon`` > 0 the features of the preprocessed images.

        Preprocessing needs the class means, so fit on plain train features
        (``ssdlib.features.extract``) first.
        """
        if not self.input_space:
            return super().extract(model, loader, device)
        if not self._fitted:
            raise NotFittedError(
                "Mahalanobis preprocessing moves inputs towards the class means: fit() on plain "
                "train features (ssdlib.features.extract) before extract()"
            )
        outputs = getattr(model, "classify", None)
        return extract_preprocessed(
            model,
            loader,
            device,
            self.loss(model, torch.device(device)),
            self.epsilon,
            outputs=outputs,
            desc="Mahalanobis preprocessing",
        )


class MahalanobisParams(MethodParams):
    """``baselines.mahalanobis``: the grid is the eps list of Lee et al.'s code."""

    epsilon: float = Field(0.0, ge=0, description="input preprocessing step; 0 = off (the MDS of OpenOOD, KNN, SSD)")
    grid: dict[str, list] = Field(default_factory=lambda: {"epsilon": [0.0, 0.0005, 0.001, 0.0014, 0.002, 0.005, 0.01]})


register(
    Method(
        "mahalanobis",
        "Mahalanobis",
        MahalanobisParams,
        lambda s, _model: Mahalanobis(s.epsilon),
        needs="features (input gradients when epsilon > 0)",
    )
)
