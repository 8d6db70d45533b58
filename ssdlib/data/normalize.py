"""Per-channel normalisation as the first layer of a model.

SSD normalises some OOD sets and not others depending on ``--normalize`` (in SSD's ``data.py``,
``texture`` and ``blobs`` always apply it; its README calls a missed ``--normalize`` the "most
likely mistake"). Putting the ID set's normalisation inside the model means every input, ID or
OOD, is normalised identically by construction. The statistics are
non-persistent buffers: they follow ``.to(device)`` but add no state-dict keys, so checkpoints
load the same with normalisation on or off.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel of a [N, C, H, W] batch."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean_t.shape != std_t.shape:
            raise ValueError(f"Normalize: mean has {mean_t.numel()} channels but std has {std_t.numel()}")
        if not bool((std_t > 0).all()):
            raise ValueError(f"Normalize: every std must be > 0, got {std_t.tolist()}")
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std_t.view(1, -1, 1, 1), persistent=False)

    @classmethod
    def identity(cls, channels: int = 3) -> Normalize:
        """The layer used when ``data.normalize`` is off: mean 0, std 1."""
        return cls([0.0] * channels, [1.0] * channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={_fmt(self.mean)}, std={_fmt(self.std)}"


def _fmt(values: torch.Tensor) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values.flatten().tolist()) + ")"
