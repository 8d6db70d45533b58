"""SSOD training steps at ImageNet scale (224 px, ResNet-18 and ResNet-50 with the ImageNet stem; 32 px
images upsampled in the model, as ``params/cifar10_ssod.yaml``): images/s and FLOP utilisation of
:class:`~ssdlib.ssod.train.SSODTrainer`, ssdlib's second trainer, whose steps SimCLR's figures do not cover."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from ssdlib.bench.simclr import random_images
from ssdlib.bench.sizes import BenchSizes
from ssdlib.params import SSODParams
from ssdlib.ssod.build import new_ssod_net
from ssdlib.ssod.train import SSODTrainer


def ssod_rows(sizes: BenchSizes, device: torch.device, peak: float, log: Callable[[str], None]) -> list[dict]:
    """Images/s of SSOD training steps (LWB, alpha 1.5) with 32 px images resized to the input size."""
    rows = []
    n = sizes.ssod_batch_size * sizes.ssod_steps
    x = torch.from_numpy(random_images(n, 32)).permute(0, 3, 1, 2).float().div(255).to(device)
    y = (torch.arange(n) % 10).to(device)
    for arch in sizes.ssod_archs:
        log(f"SSOD {arch} at {sizes.ssod_input_size} px")
        cfg = SSODParams(
            backbone=arch,
            width=sizes.width,
            input_size=sizes.ssod_input_size,
            batch_size=sizes.ssod_batch_size,
            epochs=2,
            select="last",
            val_fraction=0,
        )
        model = new_ssod_net(cfg, 10, None)
        trainer = SSODTrainer(model, cfg, device=device, progress=False, log=lambda _m: None, name="bench")
        speed = n / trainer.fit((x, y)).seconds[-1]  # the first epoch is untimed
        with FlopCounterMode(display=False) as counter:
            model(x[: sizes.ssod_batch_size]).sum().backward()
        flops = counter.get_total_flops() / sizes.ssod_batch_size
        rows.append(
            {
                "arch": arch,
                "input_size": sizes.ssod_input_size,
                "batch_size": sizes.ssod_batch_size,
                "images_per_s": speed,
                "gflops_per_image": flops / 1e9,
                "mfu": flops * speed / peak,
            }
        )
    return rows
