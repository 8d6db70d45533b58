"""Where a SimCLR step of ssdlib's pipeline goes: the augmentation and the model's step timed apart
(eager and compiled, and at twice the batch), to show which part still limits the throughput that
:mod:`ssdlib.bench.simclr` measures whole."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from ssdlib.bench.device import synchronize
from ssdlib.bench.simclr import flops_per_image, simclr_model
from ssdlib.bench.sizes import BenchSizes
from ssdlib.training.augment import simclr_augment, simclr_views
from ssdlib.training.losses import contrastive_loss
from ssdlib.training.skeleton import autocast_for


def _milliseconds(fn: Callable[[], Any], device: torch.device, reps: int) -> float:
    """Mean wall time of ``fn`` over ``reps`` calls after three untimed ones, in ms."""
    for _ in range(3):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    synchronize(device)
    return 1000 * (time.perf_counter() - start) / reps


def _two_views(images: torch.Tensor, generator: torch.Generator, views: Callable) -> list[torch.Tensor]:
    return [simclr_augment(images, generator=generator, views=views) for _ in range(2)]


def _model_step(net: torch.nn.Module, views: torch.Tensor, optimizer: torch.optim.Optimizer, autocast) -> None:
    """Forward, contrastive loss, backward and SGD on ready views (what the trainer's step does after augmenting)."""
    with autocast():
        z = net(views)
    loss = contrastive_loss(torch.stack(z.float().chunk(2), 1), None, temperature=0.5)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def breakdown_rows(sizes: BenchSizes, device: torch.device, peak: float, log: Callable[[str], None]) -> list[dict]:
    """Where a SimCLR step of ssdlib's pipeline goes: the two views' augmentation, and the model's
    forward + backward + SGD step on ready views (bf16 autocast, channels-last and fused SGD on CUDA,
    as the trainer), eager and, on CUDA, under torch.compile; also at twice the batch."""
    cuda, reps = device.type == "cuda", max(2, sizes.steps_per_epoch // 2)
    images = torch.rand(sizes.batch_size, 3, sizes.image_size, sizes.image_size, device=device)
    generator = torch.Generator().manual_seed(0)
    rows = []
    augmentations = [("augmentation (two views)", simclr_views)]
    if cuda and sizes.compile:
        augmentations.append(("augmentation (two views), torch.compile", torch.compile(simclr_views, dynamic=False)))
    for part, views in augmentations:
        log(f"step breakdown: {part}")
        rows.append(
            {
                "part": part,
                "arch": "",
                "batch_size": sizes.batch_size,
                "ms": _milliseconds(partial(_two_views, images, generator, views), device, reps),
            }
        )
    autocast, _ = autocast_for(device, True)
    for arch in sizes.archs:
        flops = flops_per_image(simclr_model(arch, sizes.width).to(device), sizes, device)
        variants = [("model step", False, 1), ("model step", False, 2)]
        if cuda and sizes.compile:
            variants += [("model step, torch.compile", True, 1)]
        for part, compiled, scale in variants:
            log(f"step breakdown: {arch} {part}, batch {scale * sizes.batch_size}")
            model = simclr_model(arch, sizes.width).to(
                device, memory_format=torch.channels_last if cuda else torch.preserve_format
            )
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, fused=True if cuda else None)
            net = torch.compile(model) if compiled else model
            views = torch.rand(2 * scale * sizes.batch_size, 3, sizes.image_size, sizes.image_size, device=device)
            ms = _milliseconds(partial(_model_step, net, views, optimizer, autocast), device, reps)
            rows.append(
                {
                    "part": part,
                    "arch": arch,
                    "batch_size": scale * sizes.batch_size,
                    "ms": ms,
                    "mfu": flops * scale * sizes.batch_size / (ms / 1000) / peak,
                }
            )
    return rows
