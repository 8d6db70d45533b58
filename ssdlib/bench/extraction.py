"""Feature extraction of 32 px images with :func:`ssdlib.features.extract`: images/s of the step that
every post-hoc detector waits on before it fits."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ssdlib.bench.device import synchronize
from ssdlib.bench.simclr import random_images, simclr_model
from ssdlib.bench.sizes import BenchSizes
from ssdlib.features import extract


def extraction_row(sizes: BenchSizes, device: torch.device, log: Callable[[str], None]) -> dict:
    """Images/s of :func:`ssdlib.features.extract` (the first call untimed)."""
    arch = sizes.archs[-1]
    log(f"feature extraction: {arch}")
    model = simclr_model(arch, sizes.width).to(device)
    x = torch.from_numpy(random_images(sizes.extract_images, sizes.image_size)).permute(0, 3, 1, 2).float().div(255)
    extract(model, x[: sizes.extract_batch_size], device, sizes.extract_batch_size)
    synchronize(device)
    start = time.perf_counter()
    extract(model, x, device, sizes.extract_batch_size)
    return {"arch": arch, "images": sizes.extract_images, "images_per_s": len(x) / (time.perf_counter() - start)}
