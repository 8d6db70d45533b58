"""SSD fit + score on random features of the paper's sizes (50 000 x 2048 train, 10 000 test, one
cluster), numpy beside torch on the device, with the largest score difference so that a faster
backend is seen to give the same scores."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from ssdlib.bench.device import synchronize
from ssdlib.bench.sizes import BenchSizes
from ssdlib.detectors.base import FeatureSet
from ssdlib.detectors.ssd import SSD


def ssd_rows(sizes: BenchSizes, device: torch.device, log: Callable[[str], None]) -> list[dict]:
    """SSD fit + score, numpy and torch on ``device``; the torch scores' largest relative difference."""
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((sizes.ssd_dim, sizes.ssd_dim)).astype(np.float32) / np.sqrt(sizes.ssd_dim)
    train = FeatureSet(
        features=np.maximum(rng.standard_normal((sizes.ssd_train, sizes.ssd_dim), dtype=np.float32) @ mix, 0)
    )
    test = FeatureSet(
        features=np.maximum(rng.standard_normal((sizes.ssd_test, sizes.ssd_dim), dtype=np.float32) @ mix, 0)
    )
    rows, reference = [], None
    for name, where in (("numpy (float64)", None), (f"torch on {device.type} (float64)", device)):
        log(f"SSD fit + score: {name}")
        if where is not None:
            SSD(device=where).fit(FeatureSet(features=train.features[:100])).score(test)  # warm-up: CUDA, kernels
        synchronize(device)
        start = time.perf_counter()
        scores = SSD(device=where).fit(train).score(test)
        seconds = time.perf_counter() - start
        reference = scores if reference is None else reference
        rows.append(
            {
                "backend": name,
                "train": sizes.ssd_train,
                "test": sizes.ssd_test,
                "dim": sizes.ssd_dim,
                "seconds": seconds,
                "max_rel_diff": float(np.max(np.abs(scores - reference)) / np.max(np.abs(reference))),
            }
        )
    return rows
