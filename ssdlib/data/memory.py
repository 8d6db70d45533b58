"""Image sets held in memory, and whole sets as one tensor.

The trainers augment whole batches on the training device (airbench-style), so they want a set
as a single ``[N, 3, H, W]`` tensor rather than a loader of PIL images. Generated sets are
stored as uint8, like real photos, and converted to float [0, 1] on access. A set too large for
that (ImageNet: 1.28 M images are 770 GB as float32) stays a Dataset, which the trainers stream
through a DataLoader (:func:`held_or_streamed`).
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Dataset

from ssdlib.progress import bar as progress_bar

PROGRESS_ABOVE = 10_000  # sets larger than this show a progress bar while loading
HELD_BYTES_LIMIT = 4 * 2**30  # sets up to this size as one float32 tensor are held in memory; larger ones stream


class ImageTensorDataset(Dataset):
    """Images [N, 3, H, W] (uint8 in [0, 255] or float in [0, 1]) with integer labels [N]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, class_names: list[str] | None = None):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [N, 3, H, W], got {tuple(images.shape)}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels.long()
        self.class_names = class_names

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return as_float(self.images[index]), int(self.labels[index])


def as_float(images: torch.Tensor, copy: bool = True) -> torch.Tensor:
    """Float images in [0, 1]: a copy, so callers never write into the stored images (``copy=False``: float32
    images as they are, for a batch already moved where it is used)."""
    return images.float().div_(255) if images.dtype == torch.uint8 else images.to(torch.float32, copy=copy)


def tensors(
    dataset: Dataset, batch_size: int = 256, num_workers: int = 0, progress: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole set as ``(x float [N, 3, H, W] in [0, 1], y long [N])``.

    A progress bar is shown for sets of more than 10 000 images unless ``progress`` says otherwise.
    """
    if isinstance(dataset, ImageTensorDataset):
        return as_float(dataset.images), dataset.labels.clone()
    n = len(dataset)
    if n == 0:
        raise ValueError("tensors(): the dataset is empty")
    first, _ = dataset[0]
    x = torch.empty((n, *first.shape), dtype=torch.float32)
    y = torch.empty(n, dtype=torch.long)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    show = n > PROGRESS_ABOVE if progress is None else progress
    start = 0
    for images, labels in progress_bar(loader, desc="loading images", disable=not show, leave=False):
        x[start : start + len(images)] = images
        y[start : start + len(images)] = torch.as_tensor(labels)
        start += len(images)
    return x, y


def channel_stats(dataset: Dataset, max_images: int | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std over all pixels of the set (or of ``max_images`` evenly spaced ones)."""
    if max_images is not None and len(dataset) > max_images:
        step = len(dataset) / max_images
        dataset = torch.utils.data.Subset(dataset, [int(i * step) for i in range(max_images)])
    x, _ = tensors(dataset)
    pixels = x.transpose(0, 1).reshape(3, -1).double()
    return tuple(pixels.mean(1).tolist()), tuple(pixels.std(1, unbiased=False).tolist())


def float_bytes(dataset: Dataset) -> int:
    """The size of ``dataset`` as one float32 tensor, from its length and its first image's shape."""
    shape = dataset.images.shape[1:] if isinstance(dataset, ImageTensorDataset) else dataset[0][0].shape
    return len(dataset) * math.prod(shape) * 4


def held_or_streamed(dataset: Dataset, limit: int = HELD_BYTES_LIMIT) -> tuple[torch.Tensor, torch.Tensor] | Dataset:
    """The whole set as tensors (:func:`tensors`) when it takes at most ``limit`` bytes as float32 (CIFAR-10:
    0.6 GB), else ``dataset`` itself, for a trainer to stream."""
    return tensors(dataset) if float_bytes(dataset) <= limit else dataset
