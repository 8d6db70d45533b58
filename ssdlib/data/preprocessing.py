"""How a real set's decoded images become tensors: one recipe per scale, chosen from ``data.image_size``.

- **CIFAR scale** (``image_size`` below 224): the shorter side resized to the size and the centre
  cropped, as SSD reads Textures, for every use; SSOD's trainer then crops at random on the device
  (:mod:`ssdlib.ssod.train`), from the whole set held as one tensor.
- **ImageNet scale** (224 and above): torchvision's ImageNet recipe, which its released weights were
  trained and evaluated with (torchvision's reference scripts, ``references/classification/presets.py``:
  ``ClassificationPresetEval`` and ``ClassificationPresetTrain``; the ``IMAGENET1K_V1`` weights' documented
  inference transforms): for evaluation the shorter side resized to 256 and the centre 224 x 224
  cropped (sizes other than 224 keep the ratio 224 / 256); for SSOD's training a RandomResizedCrop of
  the *full* decoded image, drawn in the DataLoader's workers, since ImageNet does not fit in memory.
  The SSOD paper's only augmentation is that crop (Sec. 5.1), so torchvision's horizontal flip is
  left out.

Evaluation transforms yield float [0, 1] CHW; training crops stay uint8 CHW (a quarter of the bytes
through the workers' shared memory, pinned memory and the copy to the GPU) and become float [0, 1],
the same values ``ToTensor`` gives, on the training device. Normalisation is the model's first layer.
"""

from __future__ import annotations

import copy

import torch
from torch.utils.data import Dataset

IMAGENET_CROP = 224  # torchvision's ImageNet crop, and the smallest size read with its recipe
IMAGENET_RESIZE = 256  # the shorter side before that centre crop


def imagenet_scale(size: int) -> bool:
    """Whether real sets read at ``size`` px take torchvision's ImageNet recipe."""
    return size >= IMAGENET_CROP


def crops_in_loader(id_dataset: str, size: int) -> bool:
    """Whether SSOD's training crops come from the loader (a real ID set at ImageNet scale) rather than
    from the trainer, on the device (the generated offline set, and every set at CIFAR scale)."""
    return id_dataset != "offline" and imagenet_scale(size)


def evaluation_transform(size: int):
    """Shorter side to ``size`` (ImageNet scale: to ``size * 256 / 224``), centre crop ``size`` x ``size``."""
    from torchvision import transforms  # local: importing torchvision takes seconds

    shorter = round(size * IMAGENET_RESIZE / IMAGENET_CROP) if imagenet_scale(size) else size
    return transforms.Compose([transforms.Resize(shorter), transforms.CenterCrop(size), transforms.ToTensor()])


class RandomCrops:
    """``views`` RandomResizedCrops (area range ``scale``, torchvision's aspect range and bilinear
    resize) of one decoded image, each to ``size`` x ``size``: a uint8 tensor [views, 3, size, size].

    The crops draw from torch's random state of the process that runs the transform: in a DataLoader
    worker that is seeded from the loader's generator each epoch, so a seeded shuffle gives seeded crops.
    """

    def __init__(self, size: int, scale: tuple[float, float], views: int) -> None:
        from torchvision import transforms  # local: importing torchvision takes seconds

        self.crop = transforms.Compose([transforms.RandomResizedCrop(size, scale=scale), transforms.PILToTensor()])
        self.views = views

    def __call__(self, image) -> torch.Tensor:
        return torch.stack([self.crop(image) for _ in range(self.views)])


def random_crops(dataset: Dataset, size: int, scale: tuple[float, float], views: int) -> Dataset:
    """The torchvision dataset ``dataset`` (an ImageFolder, CIFAR, ...) yielding :class:`RandomCrops` of
    its full decoded images instead of its own transform; it shares the file list, so ImageNet's 1.28 M
    files are not listed twice."""
    cropped = copy.copy(dataset)
    cropped.transform = RandomCrops(size, scale, views)
    return cropped
