"""The device a benchmark runs on: waiting for it, naming it, and its peak FLOP/s (a datasheet table
of known GPUs, else a measured matmul), which every FLOP utilisation in the report divides by."""

from __future__ import annotations

import platform
import time

import torch

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
