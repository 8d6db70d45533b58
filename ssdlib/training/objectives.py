"""The losses of the shared training loop; each training method (``ssdlib.methods``) picks one with its views.

- SimCLR / SupCon (SSD ``trainers.ssl``): two independent SimCLR views of each image are
  concatenated into one batch of 2B and forwarded once (one batch-norm batch), the unit
  projections are stacked to [B, 2, D] and scored by the contrastive loss, with labels for SupCon.
- SupCE (SSD ``trainers.supervised``): one ``supce_augment`` view, cross-entropy on the logits. Any
  module whose forward returns logits trains this way (GODIN reuses it).

The loss scale bug: SSD's SupConLoss multiplies the loss by T / base_T = 0.5 / 0.07 (about 7.1),
which scales the gradient but not weight decay (SSD's ``losses.py``, with ``train.py``'s T = 0.5).
By default the loss is not scaled; ``original_loss_scale=True`` passes SSD's base temperature 0.07.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ssdlib.training.distributed import gather
from ssdlib.training.losses import contrastive_loss

ORIGINAL_BASE_TEMPERATURE = 0.07  # SupContrast's SupConLoss default, kept by SSD
Augment = Callable[..., torch.Tensor]


class Contrastive:
    """SimCLR (``supervised=False``) or SupCon loss on two views, negatives from the global batch."""

    def __init__(self, augment: Augment, *, supervised: bool, temperature: float, original_loss_scale: bool) -> None:
        self.augment, self.supervised, self.loss = augment, supervised, contrastive_loss
        self.temperature = temperature
        self.base_temperature = ORIGINAL_BASE_TEMPERATURE if original_loss_scale else None

    def __call__(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, autocast
    ) -> torch.Tensor:
        views = torch.cat([self.augment(x, generator=generator), self.augment(x, generator=generator)])
        with autocast():
            z = model(views)
        z1, z2 = z.float().chunk(2)
        z = gather(torch.stack([z1, z2], dim=1))  # [B_global, 2, D]
        labels = gather(y) if self.supervised else None
        return self.loss(z, labels, temperature=self.temperature, base_temperature=self.base_temperature)


class CrossEntropy:
    """Cross-entropy on the logits of one augmented view (the mean over ranks is DDP's average)."""

    def __init__(self, augment: Augment) -> None:
        self.augment = augment

    def __call__(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, autocast
    ) -> torch.Tensor:
        inputs = self.augment(x, generator=generator)
        with autocast():
            logits = model(inputs)
        return F.cross_entropy(logits.float(), y)
