"""CSI's network (Tack et al. 2020): the encoder with SimCLR's projection head (128-d, as the
alinlab/CSI repository's ``simclr_layer``) and a linear head that classifies the shift (rotation)
applied to the image (its ``shift_cls_layer``)."""

from __future__ import annotations

import torch
from torch import nn

SHIFTS = 4  # rotations by 0, 90, 180 and 270 degrees


class CSINet(nn.Module):
    """Encoder + projection head + shift classifier; ``forward`` is :meth:`project_and_shift`."""

    def __init__(self, encoder: nn.Module, normalize: nn.Module | None = None, proj_dim: int = 128) -> None:
        super().__init__()
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.encoder = encoder
        d = encoder.out_dim
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, proj_dim))
        self.shift_head = nn.Linear(d, SHIFTS)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features [B, D] of images in [0, 1] (the kNN monitor reads them)."""
        return self.encoder(self.normalize(x))

    def project_and_shift(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw projections [B, proj_dim] (CSI's score reads their norm) and the shift logits [B, 4]."""
        z = self.features(x)
        return self.head(z), self.shift_head(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss calls the model itself: DistributedDataParallel syncs gradients through ``forward`` only."""
        return self.project_and_shift(x)


def rotations(x: torch.Tensor) -> torch.Tensor:
    """The 4 rotations of every image of ``x`` [B, 3, H, W], shift-major: [4B, 3, H, W] (rotation k of
    image i at k B + i)."""
    return torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(SHIFTS)])
