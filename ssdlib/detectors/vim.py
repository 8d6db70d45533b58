"""ViM: virtual-logit matching (Wang et al. 2022, CVPR, Eqs. 4-8).

Fit on ID train features z: the origin u = -W^+ b (where the logits are zero), the covariance
of z - u about that origin (not about the mean), and R = its eigenvectors beyond the top
``dim`` (the residual space). The virtual logit is alpha ||(z - u) R|| with
alpha = mean(max train logit) / mean(train residual norm), and the score is
logsumexp(W z + b) - alpha ||(z - u) R||. ``dim`` = 256 for 512-d ResNet-18 features (OpenOOD).
"""

from __future__ import annotations

import numpy as np

from ssdlib.detectors.base import Detector, FeatureSet
from ssdlib.detectors.energy import energy_score
from ssdlib.detectors.registry import Field, Method, MethodParams, linear_head, register


class ViM(Detector):
    """Energy minus the scaled norm of the feature's residual off the principal subspace; higher = more ID.

    ``weight`` [C, D] and ``bias`` [C] are the classifier's last layer; ``dim`` < D.
    """

    name = "ViM"

    def __init__(self, weight: np.ndarray, bias: np.ndarray, dim: int = 256) -> None:
        super().__init__()
        self.weight = np.asarray(weight, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        if self.weight.ndim != 2 or self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"weight must be [C, D] and bias [C]; got {self.weight.shape} and {self.bias.shape}")
        features = self.weight.shape[1]
        if not 1 <= dim < features:
            raise ValueError(
                f"ViM's dim must be in [1, {features}) for {features}-d features, got {dim}: "
                f"set baselines.vim.dim (about half the feature size is usual)"
            )
        self.dim = int(dim)
        self.origin = -np.linalg.pinv(self.weight) @ self.bias

    def _logits(self, z: np.ndarray) -> np.ndarray:
        return z @ self.weight.T + self.bias

    def _residual_norm(self, z: np.ndarray) -> np.ndarray:
        return np.linalg.norm((z - self.origin) @ self.residual_, axis=1)

    def _fit(self, train: FeatureSet) -> None:
        z = np.asarray(train.require("features", self.name), dtype=np.float64)
        centred = z - self.origin
        _, vectors = np.linalg.eigh(centred.T @ centred / len(z))  # eigenvalues ascending
        self.residual_ = vectors[:, : z.shape[1] - self.dim]
        self.alpha_ = float(self._logits(z).max(axis=1).mean() / self._residual_norm(z).mean())

    def _score(self, data: FeatureSet) -> np.ndarray:
        z = np.asarray(data.require("features", self.name), dtype=np.float64)
        return energy_score(self._logits(z)) - self.alpha_ * self._residual_norm(z)


class ViMParams(MethodParams):
    """``baselines.vim``: the grid is pytorch-ood's space (dims not below the feature size are skipped)."""

    dim: int = Field(256, ge=1, description="principal-subspace dimension (below the feature size; about half)")
    grid: dict[str, list] = Field(default_factory=lambda: {"dim": [16, 32, 64, 128, 256, 512]})

    def applies(self, fit: FeatureSet) -> bool:
        return self.dim < fit.features.shape[1]


register(
    Method("vim", "ViM", ViMParams, lambda s, model: ViM(*linear_head(model, "vim"), s.dim), needs="classifier head")
)
