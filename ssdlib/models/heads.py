"""Encoder + head models trained by SSD: ``SSLNet`` (SimCLR / SupCon) and ``SupNet`` (SupCE).

Both keep the SSD repository's state-dict layout (``encoder.*``, then ``head.*``; SSD's
DataParallel ``module.`` is not part of it, see ``ssdlib.models.load``). Input normalisation is the
model's first layer (a module without persistent state, so it adds no keys), which makes every OOD
set see the ID set's normalisation. ``features`` gives what SSD scores: the pooled encoder
output, not the projection (Sehwag et al. 2021, Sec. 3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssdlib.models.load import CheckpointError, load_state_dict_strict
from ssdlib.models.resnet import torchvision_resnet, torchvision_state_dict, torchvision_to_ssd_keys


class _EncoderNet(nn.Module):
    def __init__(self, encoder: nn.Module, normalize: nn.Module | None) -> None:
        super().__init__()
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.encoder = encoder

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features [B, D] of images in [0, 1]: ``encoder(normalize(x))``."""
        return self.encoder(self.normalize(x))


class SSLNet(_EncoderNet):
    """Encoder + projection head Linear(D, D)-ReLU-Linear(D, proj_dim) (SimCLR, Chen et al. 2020)."""

    def __init__(self, encoder: nn.Module, normalize: nn.Module | None = None, proj_dim: int = 128) -> None:
        super().__init__(encoder, normalize)
        d = encoder.out_dim
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, proj_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-norm projections [B, proj_dim], the input of the contrastive loss."""
        return F.normalize(self.head(self.features(x)), dim=-1)


class SupNet(_EncoderNet):
    """Encoder + linear classifier (SupCE; also the CE classifier the post-hoc baselines score)."""

    def __init__(self, encoder: nn.Module, num_classes: int, normalize: nn.Module | None = None) -> None:
        super().__init__(encoder, normalize)
        self.head = nn.Linear(encoder.out_dim, num_classes)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from penultimate features (ReAct and ViM edit features before this)."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


def torchvision_classifier(arch: str, weights, normalize: nn.Module | None = None) -> SupNet:
    """torchvision's ImageNet classifier as a ``SupNet``: its ``fc`` becomes ``head``.

    ``weights`` as in ``ssdlib.models.resnet.torchvision_state_dict``; ``normalize`` should hold
    ImageNet's mean and std, since the weights were trained on inputs normalised that way.
    """
    state = torchvision_state_dict(arch, weights)
    if "fc.weight" not in state:
        raise CheckpointError(f"{weights}: holds no classifier (fc.*); use torchvision_resnet for the encoder alone")
    model = SupNet(torchvision_resnet(arch), num_classes=state["fc.weight"].shape[0], normalize=normalize)
    encoder_state = {f"encoder.{k}": v for k, v in torchvision_to_ssd_keys(state).items()}
    head_state = {"head.weight": state["fc.weight"], "head.bias": state["fc.bias"]}
    load_state_dict_strict(model, encoder_state | head_state, str(weights))
    return model
