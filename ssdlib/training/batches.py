"""How the trainers and monitors read a set in batches, whether it is held in memory or streamed.

A set is ``(images, labels)`` tensors (held: rows are indexed where the tensors live) or a Dataset
(streamed: a DataLoader's workers read the same index lists, with pinned memory for a GPU). Images
arrive as stored, uint8 or float; :func:`on_device` makes them float [0, 1] where they are used.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from ssdlib.data.memory import as_float

Images = tuple[torch.Tensor, torch.Tensor] | Dataset  # held as tensors, or streamed from disk


def size(data: Images) -> int:
    return len(data) if isinstance(data, Dataset) else len(data[0])


def in_order(data: Images, batch_size: int) -> list[torch.Tensor]:
    """The index lists of ``data``'s batches in order (the last one may be short)."""
    return list(torch.arange(size(data)).split(batch_size))


def read(
    data: Images,
    index: list[torch.Tensor],
    num_workers: int = 0,
    *,
    pin_memory: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) of each index list in ``index``; a Dataset is read by ``num_workers`` workers,
    seeded from ``generator`` (so an augmentation in the workers repeats with the run's seed)."""
    if isinstance(data, Dataset):
        loader = DataLoader(
            data,
            batch_sampler=[idx.tolist() for idx in index],
            num_workers=num_workers,
            pin_memory=pin_memory,
            generator=generator,
        )
        for x, y in loader:
            yield x, torch.as_tensor(y)
        return
    x, y = data
    for idx in index:
        idx = idx.to(x.device)
        yield x[idx], y[idx]


def on_device(x: torch.Tensor, y: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch on ``device``: float [0, 1] images (uint8 ones converted there, float ones as they are), long labels."""
    return as_float(x.to(device, non_blocking=True), copy=False), y.to(device, non_blocking=True).long()
