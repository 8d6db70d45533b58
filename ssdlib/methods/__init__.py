"""The training methods, one file each; every file registers its method with
:mod:`ssdlib.training.methods` when imported (that registry imports them all).

- :mod:`~ssdlib.methods.contrastive`: SimCLR and SupCon, SSD's encoders
- :mod:`~ssdlib.methods.supce`: SupCE, the supervised CE classifier (MSP and the post-hoc baselines)
- :mod:`~ssdlib.methods.godin`: GODIN's network, trained by the same CE loop
- :mod:`~ssdlib.methods.ssod`: SSOD's joint classifier and OOD head (its own trainer)
"""

from __future__ import annotations

from torch import nn

from ssdlib.models.resnet import resnet
from ssdlib.params import Params


def resnet_encoder(P: Params) -> nn.Module:
    """The ResNet of ``P.encoder``'s arch and width, with CIFAR's stem for small images (SSD's choice)."""
    stem = "cifar" if P.data.image_size <= 96 else "imagenet"
    return resnet(P.encoder.arch, width=P.encoder.width, stem=stem)
