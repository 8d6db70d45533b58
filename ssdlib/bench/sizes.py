"""What the benchmark runs (models, batch and image sizes, steps), kept apart so that every suite and
the command read one set of sizes: the full ones on a GPU, smaller ones on a CPU, tiny ones for the tests."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

SSD_WORKERS = 4  # SSD's data.py: DataLoader(num_workers=4, pin_memory=True)


@dataclass(frozen=True)
class BenchSizes:
    """What the benchmark runs: models, batch and image sizes, steps; ``quick()`` for the tests."""

    archs: tuple[str, ...] = ("resnet18", "resnet50")
    width: int = 64
    image_size: int = 32
    batch_size: int = 512
    steps_per_epoch: int = 20
    timed_epochs: int = 2  # after one untimed epoch (cuDNN autotuning, compilation, worker start)
    workers: int = SSD_WORKERS
    compile: bool = True  # ssdlib's pipeline with torch.compile on CUDA (its default), besides without
    ssd_train: int = 50_000
    ssd_test: int = 10_000
    ssd_dim: int = 2048
    ssod_archs: tuple[str, ...] = ("resnet18", "resnet50")
    ssod_input_size: int = 224
    ssod_batch_size: int = 256
    ssod_steps: int = 10
    extract_images: int = 20_000
    extract_batch_size: int = 1024

    @classmethod
    def for_device(cls, device: torch.device) -> BenchSizes:
        """Full sizes on a GPU; on a CPU, ResNet-18 only and small batches, so a run takes minutes."""
        if device.type == "cuda":
            return cls()
        return cls(
            archs=("resnet18",),
            batch_size=64,
            steps_per_epoch=3,
            timed_epochs=1,
            ssod_archs=("resnet18",),
            workers=min(SSD_WORKERS, os.cpu_count() or 1),
            ssod_batch_size=8,
            ssod_steps=2,
            extract_images=1024,
            extract_batch_size=256,
        )

    @classmethod
    def quick(cls) -> BenchSizes:
        return cls(
            archs=("resnet18",),
            width=8,
            image_size=16,
            batch_size=16,
            steps_per_epoch=2,
            timed_epochs=1,
            workers=0,
            compile=False,
            ssd_train=2000,
            ssd_test=500,
            ssd_dim=64,
            ssod_archs=("resnet18",),
            ssod_input_size=32,
            ssod_batch_size=4,
            ssod_steps=2,
            extract_images=64,
            extract_batch_size=32,
        )
