"""CSI (Tack et al. 2020, "CSI: Novelty Detection via Contrastive Learning on Distributionally Shifted
Instances"), unlabelled: SimCLR where the 4 rotations of each image are separate instances, plus a
head classifying the rotation. Its network is :class:`ssdlib.models.csi.CSINet`, its score
:class:`ssdlib.detectors.csi.CSI`; the recipe is the ``csi`` section."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from ssdlib.methods import resnet_encoder
from ssdlib.models.csi import SHIFTS, CSINet, rotations
from ssdlib.training import augment as aug
from ssdlib.training.distributed import gather
from ssdlib.training.losses import contrastive_loss
from ssdlib.training.methods import TrainingMethod, register
from ssdlib.training.objectives import Augment


class ShiftedContrastive:
    """CSI's loss (Eq. 6 of the paper with rotations as the shifts, ``training/unsup/simclr_CSI.py``):
    each image is flipped at random, then rotated by 0, 90, 180 and 270 degrees; every rotation is an
    instance of its own (the other rotations are its negatives) in a SimCLR loss on two views, plus the
    cross-entropy of the shift head naming the rotation of every view. The flip comes before the
    rotation, so the views (``augment``, which must not flip) keep the rotation label true."""

    def __init__(self, augment: Augment, *, temperature: float, crop_scale: tuple[float, float]) -> None:
        self.augment, self.temperature, self.crop_scale = augment, temperature, tuple(crop_scale)

    def __call__(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, autocast
    ) -> torch.Tensor:
        src = generator.device if generator is not None else torch.device("cpu")
        flip = (torch.rand(len(x), generator=generator, device=src) < 0.5).to(x.device)
        shifted = rotations(torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x))  # [4B], shift-major
        views = torch.cat([self.augment(shifted, generator=generator, scale=self.crop_scale) for _ in range(2)])
        with autocast():
            z, logits = model(views)  # CSINet.project_and_shift, through DistributedDataParallel under torchrun
        z1, z2 = F.normalize(z.float(), dim=-1).chunk(2)
        contrastive = contrastive_loss(gather(torch.stack([z1, z2], dim=1)), None, temperature=self.temperature)
        shift = torch.arange(SHIFTS, device=x.device).repeat_interleave(len(x)).repeat(2)
        return contrastive + F.cross_entropy(logits.float(), shift)


def _views(compiled: bool) -> Augment:
    """SimCLR's views without their flip (the loss flips before rotating)."""
    if not compiled:
        return partial(aug.simclr_augment, flip_p=0.0)
    return partial(aug.simclr_augment, flip_p=0.0, views=torch.compile(aug.simclr_views, dynamic=False))


def _objective(recipe, augment: Augment) -> ShiftedContrastive:
    return ShiftedContrastive(augment, temperature=recipe.temperature, crop_scale=recipe.section["crop_scale"])


def _build(P, num_classes, normalize):
    return CSINet(resnet_encoder(P), normalize=normalize)


register(
    TrainingMethod(
        key="CSI",
        section="csi",
        build=_build,
        objective=_objective,
        augment=_views,
        monitors=("knn",),
        scoring_keys=("ood_samples", "score_crop"),
    )
)
