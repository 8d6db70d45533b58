"""Datasets: the generated offline benchmark, real sets through torchvision, and the registry.

Every dataset yields ``(float tensor [3, H, W] in [0, 1], int label)``; normalisation is the
model's first layer (:class:`Normalize`, from :meth:`DatasetBundle.normalize`).
"""

from ssdlib.data.memory import ImageTensorDataset, channel_stats, held_or_streamed, tensors
from ssdlib.data.normalize import Normalize
from ssdlib.data.real import BadImageError, DatasetNotFoundError
from ssdlib.data.registry import DatasetBundle, UnknownDatasetError, get_datasets, ood_names

__all__ = [
    "BadImageError",
    "DatasetBundle",
    "DatasetNotFoundError",
    "ImageTensorDataset",
    "Normalize",
    "UnknownDatasetError",
    "channel_stats",
    "get_datasets",
    "held_or_streamed",
    "ood_names",
    "tensors",
]
