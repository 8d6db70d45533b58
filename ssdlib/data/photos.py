"""Photos shipped inside scikit-image, and random crops of them.

Only images present in ``skimage/data/`` are used, so nothing is downloaded. The photos are
split by role so that no OOD set shares a photo with the ID backgrounds.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import skimage.data
import torch
import torch.nn.functional as F

ID_BACKGROUNDS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "motorcycle_left",
)  # scenes behind ID objects (blurred there)
SCENES = ("camera", "hubble_deep_field", "immunohistochemistry", "retina")  # object-free scenes, never ID backgrounds
TEXTURES = ("brick", "grass", "gravel")  # grey texture photos


@cache
def photo(name: str) -> torch.Tensor:
    """The named skimage photo as float [3, H, W] in [0, 1] (grey photos repeated over RGB)."""
    if name == "motorcycle_left":
        array = skimage.data.stereo_motorcycle()[0]
    else:
        array = getattr(skimage.data, name)()
    array = np.asarray(array)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return torch.from_numpy(array[..., :3].copy()).permute(2, 0, 1).float().div_(255)


@cache
def _pyramid(name: str) -> tuple[torch.Tensor, ...]:
    """The photo at full, half, quarter... resolution (down to 64 px on the shorter side)."""
    levels = [photo(name)]
    while min(levels[-1].shape[1:]) >= 128:
        levels.append(F.interpolate(levels[-1][None], scale_factor=0.5, mode="bilinear", antialias=True)[0])
    return tuple(levels)


def random_crops(name: str, n: int, size: int, rng: np.random.Generator, scale: tuple[float, float]) -> torch.Tensor:
    """``n`` square crops [n, 3, size, size] of the named photo.

    Each crop has a random side of ``scale`` times the photo's shorter side, a random place, and is
    flipped left-right half the time. It is resized with anti-aliasing (a large crop shrunk to
    32 px does not alias), from the pyramid level that leaves at most a 4x reduction (fast).
    """
    pyramid = _pyramid(name)
    _, height, width = pyramid[0].shape
    sides = (rng.uniform(*scale, n) * min(height, width)).astype(int).clip(size // 2, min(height, width))
    tops = (rng.uniform(0, 1, n) * (height - sides + 1)).astype(int)
    lefts = (rng.uniform(0, 1, n) * (width - sides + 1)).astype(int)
    flips = rng.uniform(0, 1, n) < 0.5
    out = torch.empty((n, 3, size, size))
    for i, (side, top, left, flip) in enumerate(zip(sides, tops, lefts, flips)):
        level = int(np.clip(np.floor(np.log2(side / (2 * size))), 0, len(pyramid) - 1))
        side, top, left = max(side >> level, 1), top >> level, left >> level
        crop = pyramid[level][None, :, top : top + side, left : left + side]
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i] = crop[0].flip(-1) if flip else crop[0]
    return out.clamp_(0, 1)


def crops_of(
    names: tuple[str, ...], n: int, size: int, rng: np.random.Generator, scale: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` crops spread evenly over the named photos (in shuffled order) and each crop's photo index."""
    sources = rng.permutation(np.arange(n) % len(names))
    images = torch.empty((n, 3, size, size))
    for k, name in enumerate(names):
        chosen = np.flatnonzero(sources == k)
        images[chosen] = random_crops(name, len(chosen), size, rng, scale)
    return images, torch.from_numpy(sources).long()
