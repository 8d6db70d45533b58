"""SSD's synthetic OOD sets (its ``data.py`` loaders): ``blobs``, ``gaussian`` and ``uniform``, at any size.

They exist for every ID set, at its image size. Unlike SSD, whose numpy RNG is unseeded in
evaluation, each image here comes from its own generator seeded by (seed, set, index): a set is
the same whichever images are read, in whatever order, and costs no memory until read.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.filters import gaussian as gaussian_blur
from torch.utils.data import Dataset

DESCRIPTIONS = {
    "blobs": "SSD's blobs (from Outlier Exposure): Bernoulli(0.7) noise, 3-D Gaussian blur, pixels < 0.75 zeroed",
    "gaussian": "Gaussian noise N(0.5, 0.25^2) per pixel, clipped to [0, 1]",
    "uniform": "uniform noise U[0, 1] per pixel",
}
_STREAMS = {"blobs": 101, "gaussian": 102, "uniform": 103}  # keep each set's random numbers apart


def blob_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """One blobs image [size, size, 3] as SSD draws it.

    Bernoulli(p=0.7) pixels, then ONE 3-D Gaussian blur over height, width AND the channel axis
    (sigma 1.5, mode 'nearest', truncate 4: SSD's ``gaussian(img, sigma=1.5, multichannel=False)``),
    then every value below 0.75 set to 0. A per-channel blur would give different images.
    """
    img = rng.binomial(n=1, p=0.7, size=(size, size, 3)).astype(np.float64)
    img = gaussian_blur(img, sigma=1.5, mode="nearest", truncate=4.0, channel_axis=None, preserve_range=True)
    img[img < 0.75] = 0.0
    return img


def _draw(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """One [3, size, size] image of the given kind."""
    if kind == "blobs":
        return blob_image(rng, size).transpose(2, 0, 1)
    if kind == "gaussian":
        return np.clip(rng.normal(loc=0.5, scale=0.25, size=(3, size, size)), 0.0, 1.0)
    return rng.uniform(0.0, 1.0, size=(3, size, size))


class SyntheticImages(Dataset):
    """``n`` synthetic images of one kind (blobs, gaussian, uniform), label 0, drawn on access."""

    def __init__(self, kind: str, n: int, size: int, seed: int = 0):
        if kind not in _STREAMS:
            raise ValueError(f"unknown synthetic set {kind!r}; choose one of {sorted(_STREAMS)}")
        self.kind, self.n, self.size, self.seed = kind, n, size, seed

    def rng(self, index: int) -> np.random.Generator:
        """The generator that draws image ``index``."""
        return np.random.default_rng([self.seed, _STREAMS[self.kind], index])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} {self.kind} images")
        image = _draw(self.kind, self.rng(index), self.size)
        return torch.from_numpy(image.astype(np.float32)), 0
