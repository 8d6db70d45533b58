"""``./run bench``: how fast ssdlib trains and scores on this device, beside SSD's own pipeline.

Everything is measured in one run on one device, so the ratios compare like with like:

- **SimCLR training**, two ways with the same model, batch and image size: ssdlib's pipeline
  (:class:`ssdlib.training.loop.Trainer`: the training set on the device, batched augmentations
  there; on CUDA bf16 autocast, channels-last, fused SGD, deferred loss reads and torch.compile,
  which is also timed switched off) and an SSD-style
  pipeline (SSD's ``train.py`` + ``data.py``: torchvision's PIL transforms in a DataLoader with 4
  workers and pinned memory, fp32, the loss read every step). Images/s (training images, each
  giving two views), the ratio, and model FLOP utilisation: FLOPs of one step counted with
  ``torch.utils.flop_counter`` over the peak of the device (a table of known GPUs, else a measured
  matmul). A breakdown times a step's parts: augmentation and the model's step, eager and compiled.
- **SSD fit + score**: 50 000 x 2048 train features, 10 000 test features, one cluster; numpy
  (``SSD()``) and torch on the device (``SSD(device=...)``), with the largest score difference.
- **SSOD training** steps at 224 px (ResNet-18 and ResNet-50, ImageNet stem: 32 px images
  upsampled in the model, as ``params/cifar10_ssod.yaml``), and **feature extraction**
  (``ssdlib.features.extract``) of 32 px images.

Writes ``bench.json`` and ``bench.md`` to the output folder after each section (a run stopped
half-way keeps what it measured). ``quick=True`` shrinks every size so the
whole run takes seconds (the tests run it); its figures say nothing about speed.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssdlib.log import get as get_logger

LOG = get_logger(__name__)
# Dense bf16 tensor-core peaks (vendors' datasheets, FLOP/s, without sparsity), by device name.
PEAK_BF16 = {
    "H200": 989e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "GH200": 989e12,
    "A100": 312e12,
    "A10G": 70e12,
    "A10": 125e12,
    "L40S": 362e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
    "V100": 125e12,
}
SSD_WORKERS = 4  # SSD's data.py: DataLoader(num_workers=4, pin_memory=True)
SECTIONS = ("simclr", "ssd", "ssod", "extraction", "breakdown")


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


# -- the device ------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def matmul_peak(device: torch.device, quick: bool = False) -> float:
    """Measured FLOP/s of a large square matmul (the fastest of several): bf16 on CUDA, fp32 on the CPU."""
    n = 512 if quick else (8192 if device.type == "cuda" else 4096)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b  # warm-up
    best = float("inf")
    for _ in range(3):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(10 if device.type == "cuda" else 1):
            a @ b
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / (10 if device.type == "cuda" else 1))
    return 2 * n**3 / best


def table_peak(device: torch.device) -> float | None:
    """The datasheet's dense bf16 peak of a known GPU, None for anything else."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16.items() if key in name), None)


# -- SimCLR training -------------------------------------------------------------------------
def simclr_model(arch: str, width: int, seed: int = 0) -> torch.nn.Module:
    from ssdlib.data.normalize import Normalize
    from ssdlib.models import SSLNet, resnet

    torch.manual_seed(seed)
    return SSLNet(resnet(arch, width=width), Normalize((0.5,) * 3, (0.25,) * 3))


def flops_per_image(model: torch.nn.Module, sizes: BenchSizes, device: torch.device) -> float:
    """FLOPs of one training step (forward + backward of both views) per training image."""
    from torch.utils.flop_counter import FlopCounterMode

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
    from ssdlib.training.loop import Recipe, Trainer

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
        from torchvision import transforms as T

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
        from PIL import Image

        image = Image.fromarray(self.images[i])
        return self.transform(image), self.transform(image), 0


def ssd_style_simclr(model: torch.nn.Module, images: np.ndarray, sizes: BenchSizes, device: torch.device) -> float:
    """Images/s of an SSD-style loop: PIL transforms in workers, fp32, SGD, ``loss.item()`` every step."""
    from torch.utils.data import DataLoader

    from ssdlib.training.losses import contrastive_loss

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
    from ssdlib.training.augment import simclr_augment

    return [simclr_augment(images, generator=generator, views=views) for _ in range(2)]


def _model_step(net: torch.nn.Module, views: torch.Tensor, optimizer: torch.optim.Optimizer, autocast) -> None:
    """Forward, contrastive loss, backward and SGD on ready views (what the trainer's step does after augmenting)."""
    from ssdlib.training.losses import contrastive_loss

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
    from ssdlib.training.augment import simclr_views
    from ssdlib.training.skeleton import autocast_for

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


# -- SSD, SSOD, extraction -------------------------------------------------------------------
def ssd_rows(sizes: BenchSizes, device: torch.device, log: Callable[[str], None]) -> list[dict]:
    """SSD fit + score, numpy and torch on ``device``; the torch scores' largest relative difference."""
    from ssdlib.detectors.base import FeatureSet
    from ssdlib.detectors.ssd import SSD

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


def ssod_rows(sizes: BenchSizes, device: torch.device, peak: float, log: Callable[[str], None]) -> list[dict]:
    """Images/s of SSOD training steps (LWB, alpha 1.5) with 32 px images resized to the input size."""
    from torch.utils.flop_counter import FlopCounterMode

    from ssdlib.params import SSODParams
    from ssdlib.ssod.runs import new_ssod_net
    from ssdlib.ssod.train import SSODTrainer

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


def extraction_row(sizes: BenchSizes, device: torch.device, log: Callable[[str], None]) -> dict:
    """Images/s of :func:`ssdlib.features.extract` (the first call untimed)."""
    from ssdlib.features import extract

    arch = sizes.archs[-1]
    log(f"feature extraction: {arch}")
    model = simclr_model(arch, sizes.width).to(device)
    x = torch.from_numpy(random_images(sizes.extract_images, sizes.image_size)).permute(0, 3, 1, 2).float().div(255)
    extract(model, x[: sizes.extract_batch_size], device, sizes.extract_batch_size)
    synchronize(device)
    start = time.perf_counter()
    extract(model, x, device, sizes.extract_batch_size)
    return {"arch": arch, "images": sizes.extract_images, "images_per_s": len(x) / (time.perf_counter() - start)}


# -- the report ------------------------------------------------------------------------------
def measure(
    device: torch.device,
    sizes: BenchSizes,
    *,
    quick: bool = False,
    sections=SECTIONS,
    log: Callable[[str], None] = LOG.info,
    save: Callable[[dict[str, Any]], Any] = lambda _report: None,
) -> dict[str, Any]:
    """The ``sections`` measured on ``device``: the dict that ``bench.json`` holds, passed to
    ``save`` after each section."""
    measured = matmul_peak(device, quick)
    table = table_peak(device)
    peak = table or measured
    report = {
        "device": device_name(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "commit": _commit(),
        "quick": quick,
        "sizes": asdict(sizes),
        "peak_flops": peak,
        "peak_source": "datasheet (dense bf16)" if table else "measured matmul",
        "measured_matmul_flops": measured,
        "simclr": [],
        "ssd": [],
        "ssod": [],
        "extraction": {},
        "breakdown": [],
    }
    steps = {
        "simclr": lambda: simclr_rows(sizes, device, peak, log),
        "ssd": lambda: ssd_rows(sizes, device, log),
        "ssod": lambda: ssod_rows(sizes, device, peak, log),
        "extraction": lambda: extraction_row(sizes, device, log),
        "breakdown": lambda: breakdown_rows(sizes, device, peak, log),
    }
    for section in sections:
        if section in steps:
            report[section] = steps[section]()
            save(report)
    return report


def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _flops(rate: float) -> str:
    return f"{rate / 1e12:.1f} TFLOP/s" if rate >= 1e12 else f"{rate / 1e9:.0f} GFLOP/s"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables, figures rounded for reading."""
    peak = f"{_flops(report['peak_flops'])} ({report['peak_source']})"
    lines = [
        f"# Benchmark: {report['device']}",
        "",
        f"{report['date']}, commit {report['commit']}, torch {report['torch']}"
        + (" — quick run: sizes too small to say anything about speed" if report["quick"] else ""),
        "",
        f"Peak used for FLOP utilisation: {peak}; measured matmul: {_flops(report['measured_matmul_flops'])}.",
        "",
        f"## SimCLR training ({report['sizes']['image_size']} px, batch {report['sizes']['batch_size']})",
        "",
        "| model | pipeline | images/s | x SSD-style | GFLOP/image | FLOP utilisation |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["simclr"]:
        lines.append(
            f"| {r['arch']} | {r['pipeline']} | {r['images_per_s']:,.0f} | {r['speedup']:.1f} | "
            f"{r['gflops_per_image']:.2f} | {100 * r['mfu']:.1f}% |"
        )
    if report.get("breakdown"):
        lines += [
            "",
            "## Where a SimCLR step of ssdlib goes",
            "",
            "| part | model | batch | ms per step | FLOP utilisation |",
            "|---|---|---|---|---|",
        ]
        for r in report["breakdown"]:
            figures = f"{r['ms']:.1f} | " + (f"{100 * r['mfu']:.1f}%" if "mfu" in r else "")
            lines.append(f"| {r['part']} | {r['arch']} | {r['batch_size']} | {figures} |")
    lines += [
        "",
        "## SSD fit + score (one cluster)",
        "",
        "| backend | train x dim | test | seconds | max relative score difference |",
        "|---|---|---|---|---|",
    ]
    for r in report["ssd"]:
        lines.append(
            f"| {r['backend']} | {r['train']:,} x {r['dim']} | {r['test']:,} | {r['seconds']:.2f} | "
            f"{r['max_rel_diff']:.1e} |"
        )
    lines += [
        "",
        "## SSOD training and feature extraction",
        "",
        "| what | images/s | FLOP utilisation |",
        "|---|---|---|",
    ]
    lines += [
        f"| SSOD {s['arch']} at {s['input_size']} px, batch {s['batch_size']} | {s['images_per_s']:,.0f} | "
        f"{100 * s['mfu']:.1f}% |"
        for s in report["ssod"]
    ]
    if e := report["extraction"]:
        lines.append(
            f"| feature extraction, {e['arch']} at {report['sizes']['image_size']} px | {e['images_per_s']:,.0f} | |"
        )
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], output_dir: str | Path) -> tuple[Path, Path]:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "bench.json", out / "bench.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path


# -- the command -----------------------------------------------------------------------------
def configure(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs, in seconds")
    parser.add_argument("--device", default="auto", help="auto (the GPU if one is visible), cpu or cuda[:N]")
    parser.add_argument("--output-dir", help="where bench.json and bench.md go (default: the project's outputs/bench)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"DataLoader workers of the SSD-style pipeline (default: SSD's {SSD_WORKERS})",
    )
    parser.add_argument("--no-compile", action="store_true", help="on CUDA, time ssdlib without torch.compile only")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)} (default: all)"
    )


def run(args) -> int:
    """``ssdlib bench``: measure, print the tables, write bench.json and bench.md."""
    from ssdlib.experiment import resolve_device

    sections = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        LOG.error(f"[bench] unknown section(s) {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
        return 2
    device = resolve_device(args.device)
    sizes = BenchSizes.quick() if args.quick else BenchSizes.for_device(device)
    if args.workers is not None:
        sizes = replace(sizes, workers=args.workers)
    if args.no_compile:
        sizes = replace(sizes, compile=False)
    LOG.info(f"[bench] {device_name(device)}: {'quick run' if args.quick else 'full run'}")
    output_dir = args.output_dir or Path(__file__).resolve().parents[1] / "outputs" / "bench"
    report = measure(
        device,
        sizes,
        quick=args.quick,
        sections=sections,
        log=lambda m: LOG.info(f"[bench] {m}"),
        save=lambda partial: write(partial, output_dir),
    )
    paths = write(report, output_dir)
    LOG.info(markdown(report))
    LOG.info(f"[bench] written: {paths[0]} and {paths[1]}")
    return 0
