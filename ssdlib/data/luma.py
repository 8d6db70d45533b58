"""The luma of RGB images: the offline benchmark's grey renderings and the augmentations' grey views
(and their contrast and saturation steps) use the same weights, so it lives below both."""

from __future__ import annotations

import torch

LUMA = (0.2989, 0.587, 0.114)  # ITU-R 601 weights, as in torchvision's rgb_to_grayscale


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma [B, 1, H, W] of RGB images."""
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)
