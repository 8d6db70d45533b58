"""Generalized ODIN's network: a dividend/divisor head on a ResNet encoder (Hsu et al. 2020, CVPR, Eqs. 6-8).

The logits are the quotient f_i(x) = h_i(x) / g(x) of
- the dividend h_i, a similarity between the feature z and class i's weight w_i: cosine
  h^C = w_i.z / (||w_i|| ||z||) (the paper's best, "DeConf-C"), inner product h^I = w_i.z + b_i,
  or negative squared Euclidean distance h^E = -||z - w_i||^2;
- the divisor g(x) = sigmoid(BN(w_g.z + b_g)) in (0, 1), one scalar per image.

Training is plain cross-entropy on the quotient, so the SupCE loop of ``ssdlib.training`` trains
it unchanged (``forward`` returns the quotient). At test time the score is max_i h_i (see
``ssdlib.detectors.godin``); since g > 0, argmax_i h_i = argmax_i f_i, so accuracy is the same
whichever is read. The paper turns weight decay off on h; the shared loop decays every weight,
which leaves the cosine dividend unchanged in value (it is scale-free in w_i).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SIMILARITIES = ("cosine", "inner", "euclidean")


class GODINNet(nn.Module):
    """Encoder + GODIN head; ``forward(x)`` = h(z) / g(z) for images x in [0, 1]."""

    def __init__(
        self, encoder: nn.Module, num_classes: int, normalize: nn.Module | None = None, similarity: str = "cosine"
    ) -> None:
        super().__init__()
        if similarity not in SIMILARITIES:
            raise ValueError(f"unknown GODIN similarity {similarity!r}; choose one of {SIMILARITIES}")
        self.similarity = similarity
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.encoder = encoder
        d = encoder.out_dim
        self.head = nn.Linear(d, num_classes, bias=similarity == "inner")  # the w_i (and b_i for h^I)
        self.divisor = nn.Sequential(nn.Linear(d, 1), nn.BatchNorm1d(1), nn.Sigmoid())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features z [B, D] of images in [0, 1]."""
        return self.encoder(self.normalize(x))

    def dividend(self, z: torch.Tensor) -> torch.Tensor:
        """h(z) [B, C]: the class similarities GODIN scores (max over classes)."""
        w = self.head.weight
        if self.similarity == "cosine":
            return F.normalize(z, dim=1) @ F.normalize(w, dim=1).T
        if self.similarity == "inner":
            return self.head(z)
        return -torch.cdist(z, w).pow(2)

    def divisor_of(self, z: torch.Tensor) -> torch.Tensor:
        """g(z) [B, 1] in (0, 1)."""
        return self.divisor(z)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """The quotient logits h(z) / g(z) [B, C], what cross-entropy trains."""
        return self.dividend(z) / self.divisor_of(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))
