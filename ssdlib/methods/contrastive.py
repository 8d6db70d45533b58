"""SimCLR and SupCon (SSD ``trainers.ssl``): an encoder and projection head trained with the contrastive
loss on two SimCLR views of each image, SupCon with the labels (``ssdlib.training.objectives``)."""

from __future__ import annotations

from functools import partial

import torch

from ssdlib.methods import resnet_encoder
from ssdlib.models.heads import SSLNet
from ssdlib.training import augment as aug
from ssdlib.training.methods import TrainingMethod, register
from ssdlib.training.objectives import Contrastive


def _views(compiled: bool):
    if not compiled:
        return aug.simclr_augment
    return partial(aug.simclr_augment, views=torch.compile(aug.simclr_views, dynamic=False))


def _build(P, num_classes, normalize):
    return SSLNet(resnet_encoder(P), normalize=normalize)


def _objective(supervised: bool):
    def objective(recipe, augment):
        return Contrastive(
            augment,
            supervised=supervised,
            temperature=recipe.temperature,
            original_loss_scale=recipe.original_loss_scale,
        )

    return objective


for _key, _supervised, _name in (("SimCLR", False, "SSD"), ("SupCon", True, "SSD+")):
    register(
        TrainingMethod(
            key=_key,
            section="encoder",
            build=_build,
            objective=_objective(_supervised),
            augment=_views,
            monitors=("knn",),
            encoder_mode=True,
            ssd_name=_name,
        )
    )
