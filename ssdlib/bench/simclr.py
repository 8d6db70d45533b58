"""SimCLR training two ways with the same model, batch and image size: ssdlib's
:class:`~ssdlib.training.loop.Trainer` and an SSD-style loop (SSD's ``train.py`` + ``data.py``: PIL
transforms in DataLoader workers, fp32, the loss read every step), so their ratio compares like with
like. Also the model, the random images and the FLOP count that the other suites reuse."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms as T

from ssdlib.bench.device import synchronize
from ssdlib.bench.sizes import BenchSizes
from ssdlib.data.normalize import Normalize
from ssdlib.models import SSLNet, resnet
from ssdlib.training.loop import Recipe, Trainer
from ssdlib.training.losses import contrastive_loss


def simclr_model(arch: str, width: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return SSLNet(resnet(arch, width=width), Normalize((0.5,) * 3, (0.25,) * 3))


def flops_per_image(model: torch.nn.Module, sizes: BenchSizes, device: torch.device) -> float:
    """FLOPs of one training step (forward + backward of both views) per training image."""
    views = torch.rand(2 * sizes.batch_size, 3, sizes.image_size, sizes.image_size, device=device)
    with FlopCounterMode(display=False) as counter:
        model(views).sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / sizes.batch_size


def random_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 images [n, size, size, 3], as CIFAR's arrays hold them."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def ssdlib_simclr(
    model: torch.nn.Module, images: np.ndarray, sizes: BenchSizes, device: torch.device, compile: bool = True
) -> float:
    """Images/s of :class:`Trainer` on ``images`` (seconds per epoch from its history, first epoch untimed)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
    y = torch.zeros(len(x), dtype=torch.long)
    recipe = Recipe(
        mode="SimCLR",
        epochs=1 + sizes.timed_epochs,
        warmup_epochs=0,
        batch_size=sizes.batch_size,
        lr=0.1,
        knn_k=0,
        monitor_every=0,
        compile=compile,
    )
    trainer = Trainer(model, recipe, device=device, progress=False, log=lambda _m: None, name="bench")
    history = trainer.fit((x, y))
    return len(x) / float(np.mean(history.seconds[1:]))


class _TwoViews(torch.utils.data.Dataset):
    """SSD's ``ssl`` mode: each uint8 image becomes a PIL image and two independently transformed views."""

    def __init__(self, images: np.ndarray, size: int) -> None:
        self.images = images
        self.transform = T.Compose(
            [
                T.RandomResizedCrop(size, scale=(0.2, 1.0)),
                T.RandomHorizontalFlip(),
                T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                T.RandomGrayscale(p=0.2),
                T.ToTensor(),
            ]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = Image.fromarray(self.images[i])
        return self.transform(image), self.transform(image), 0


def ssd_style_simclr(model: torch.nn.Module, images: np.ndarray, sizes: BenchSizes, device: torch.device) -> float:
    """Images/s of an SSD-style loop: PIL transforms in workers, fp32, SGD, ``loss.item()`` every step."""
    model = model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loader = DataLoader(
        _TwoViews(images, sizes.image_size),
        batch_size=sizes.batch_size,
        shuffle=True,
        num_workers=sizes.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=sizes.workers > 0,
    )
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False  # PyTorch's default, which SSD's train.py keeps
    seconds = []
    try:
        for _ in range(1 + sizes.timed_epochs):
            start = time.perf_counter()
            for v1, v2, _labels in loader:
                views = torch.cat([v1, v2]).to(device, non_blocking=True)
                z = model(views)
                loss = contrastive_loss(torch.stack(z.chunk(2), 1), None, temperature=0.5)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                loss.item()  # SSD's AverageMeter reads the loss every step
            synchronize(device)
            seconds.append(time.perf_counter() - start)
    finally:
        torch.backends.cudnn.benchmark = benchmark
    return len(images) / float(np.mean(seconds[1:]))


def simclr_rows(sizes: BenchSizes, device: torch.device, peak: float, log: Callable[[str], None]) -> list[dict]:
    """One row per (architecture, pipeline): images/s, speed-up over SSD's pipeline, FLOP utilisation."""
    rows = []
    images = random_images(sizes.batch_size * sizes.steps_per_epoch, sizes.image_size)
    cuda = device.type == "cuda"
    for arch in sizes.archs:
        flops = flops_per_image(simclr_model(arch, sizes.width).to(device), sizes, device)
        model = partial(simclr_model, arch, sizes.width)
        pipelines = [("SSD-style (PIL + DataLoader, fp32)", partial(ssd_style_simclr, model(), images, sizes, device))]
        if cuda:
            pipelines.append(
                ("ssdlib, compile off", partial(ssdlib_simclr, model(), images, sizes, device, compile=False))
            )
        if sizes.compile or not cuda:
            pipelines.append(("ssdlib", partial(ssdlib_simclr, model(), images, sizes, device)))
        baseline = None
        for name, timed in pipelines:
            log(f"SimCLR {arch}: timing {name}")
            speed = timed()
            baseline = baseline or speed
            rows.append(
                {
                    "arch": arch,
                    "pipeline": name,
                    "images_per_s": speed,
                    "speedup": speed / baseline,
                    "gflops_per_image": flops / 1e9,
                    "mfu": flops * speed / peak,
                }
            )
    return rows
