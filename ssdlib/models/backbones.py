"""Feature-map backbones for SSOD: this package's ResNets and torchvision's DenseNet-121,
RegNetY-800MF and MobileNetV3 (the architectures of Pei et al. 2023, Table 6).

Every backbone has the interface of :class:`ssdlib.models.resnet.ResNet`: ``feature_map(x)`` is
the last convolutional stage [B, C, h, w] (the map whose locations SSOD samples), ``forward(x)``
its global average pool [B, C], and ``out_dim`` is C. The torchvision networks keep torchvision's
module names (``features``, ``stem``, ``trunk_output``) so their ImageNet state dicts load as they
are, minus the classifier. The classifier is built apart (:func:`classifier`): torchvision's own
shape, one Linear, or MobileNetV3's MLP, so that the pretrained one loads whole.

Two knobs let the same architectures run as tiny CPU models in the offline profile:

- ``width``: 64 is the published network. Other values scale every channel count by
  ``width / 64``, the way ``width`` scales the ResNets: DenseNet's growth rate and stem, RegNet's
  stage and stem widths (rounded to its group width), MobileNetV3's ``width_mult``.
- ``stem``: ``"imagenet"`` is the published network (total stride 32: 224 px -> 7x7 map).
  ``"cifar"`` removes the first two 2x down-samplings, as the CIFAR ResNet does (3x3 stride-1
  stem, no max-pool): total stride 8, so a 32 px image keeps a 4x4 map. For DenseNet that is a
  stride-1 ``conv0`` and no ``pool0``; for RegNet a stride-1 stem and first stage; for MobileNetV3
  a stride-1 stem and first stride-2 block.

``pretrained`` (see :func:`load_pretrained`) takes torchvision's ImageNet weights through its
weights API (cached under $TORCH_HOME; the first use needs network) or a local state-dict file.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ssdlib.models.load import load_state_dict_strict
from ssdlib.models.resnet import ARCHS, resnet, torchvision_state_dict, torchvision_to_ssd_keys

TORCHVISION = ("densenet121", "regnet_y_800mf", "mobilenet_v3_large", "mobilenet_v3_small")
BACKBONES = (*ARCHS, *TORCHVISION)
STANDARD_WIDTH = 64


class TorchvisionBackbone(nn.Module):
    """A torchvision network without its classifier, exposing ``feature_map`` / ``forward`` / ``out_dim``.

    ``parts`` are the torchvision submodules run in order (registered under torchvision's names,
    so state-dict keys match); ``final_relu`` is DenseNet's ReLU that torchvision applies after
    ``features``.
    """

    def __init__(self, parts: dict[str, nn.Module], out_dim: int, final_relu: bool = False) -> None:
        super().__init__()
        for name, module in parts.items():
            self.add_module(name, module)
        self.out_dim = out_dim
        self.final_relu = final_relu

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return F.relu(x) if self.final_relu else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.feature_map(x), 1), 1)


def _densenet121(scale: float, stem: str) -> TorchvisionBackbone:
    from torchvision.models import DenseNet  # local: importing torchvision takes seconds

    net = DenseNet(
        growth_rate=max(1, round(32 * scale)), block_config=(6, 12, 24, 16), num_init_features=max(1, round(64 * scale))
    )
    if stem == "cifar":
        net.features.conv0.stride = (1, 1)
        net.features.pool0 = nn.Identity()
    return TorchvisionBackbone({"features": net.features}, net.classifier.in_features, final_relu=True)


def _regnet_y_800mf(scale: float, stem: str) -> TorchvisionBackbone:
    from torchvision.models.regnet import BlockParams, RegNet  # local: importing torchvision takes seconds

    p = BlockParams.from_init_params(depth=14, w_0=56, w_a=38.84, w_m=2.4, group_width=16, se_ratio=0.25)
    if scale != 1:  # scale the stage widths, keeping each a multiple of its (scaled) group width
        groups = [max(8, 8 * round(g * scale / 8)) for g in p.group_widths]
        widths = [max(g, g * round(w * scale / g)) for w, g in zip(p.widths, groups)]
        p = BlockParams(p.depths, widths, groups, p.bottleneck_multipliers, p.strides, p.se_ratio)
    net = RegNet(p, stem_width=max(8, round(32 * scale)))
    if stem == "cifar":
        net.stem[0].stride = (1, 1)
        for conv in net.trunk_output.block1[0].modules():
            if isinstance(conv, nn.Conv2d) and conv.stride == (2, 2):
                conv.stride = (1, 1)
    return TorchvisionBackbone({"stem": net.stem, "trunk_output": net.trunk_output}, net.fc.in_features)


def _mobilenet_v3(arch: str, scale: float, stem: str) -> TorchvisionBackbone:
    from torchvision import models  # local: importing torchvision takes seconds

    net = getattr(models, arch)(width_mult=scale)
    if stem == "cifar":
        net.features[0][0].stride = (1, 1)
        first_down = next(block for block in net.features[1:] if block._is_cn)
        for conv in first_down.modules():
            if isinstance(conv, nn.Conv2d) and conv.stride == (2, 2):
                conv.stride = (1, 1)
    return TorchvisionBackbone({"features": net.features}, net.features[-1].out_channels)


def backbone(name: str, width: int = STANDARD_WIDTH, stem: str = "imagenet") -> nn.Module:
    """A randomly initialised feature-map backbone (see the module docstring for width and stem)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if stem not in ("cifar", "imagenet"):
        raise ValueError(f"unknown stem {stem!r}; use 'cifar' (total stride 8) or 'imagenet' (total stride 32)")
    if width < 4:
        raise ValueError(f"width must be at least 4 channels, got {width}")
    if name in ARCHS:
        return resnet(name, width=width, stem=stem)
    scale = width / STANDARD_WIDTH
    if name == "densenet121":
        return _densenet121(scale, stem)
    if name == "regnet_y_800mf":
        return _regnet_y_800mf(scale, stem)
    return _mobilenet_v3(name, scale, stem)


def classifier(name: str, in_dim: int, num_classes: int, width: int = STANDARD_WIDTH) -> nn.Module:
    """The classifier torchvision puts on backbone ``name``, for ``num_classes`` classes: one Linear, except
    MobileNetV3's MLP (Linear to 1280 units, 1024 for Small, Hardswish, Dropout 0.2, Linear: the last two
    1x1 convolutions of Howard et al. 2019, Tables 1-2, as torchvision's ``mobilenetv3.py`` builds them),
    scaled with ``width`` and initialised as torchvision initialises it."""
    if not name.startswith("mobilenet_v3"):
        return nn.Linear(in_dim, num_classes)
    from torchvision import models  # local: importing torchvision takes seconds

    return getattr(models, name)(width_mult=width / STANDARD_WIDTH, num_classes=num_classes).classifier


_DENSENET_OLD_KEY = re.compile(  # the pattern torchvision's densenet loader rewrites
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
_CLASSIFIER_KEYS = {
    "resnet": "fc",
    "densenet121": "classifier",
    "regnet_y_800mf": "fc",
    "mobilenet_v3_large": "classifier",
    "mobilenet_v3_small": "classifier",
}


def load_pretrained(model: nn.Module, name: str, pretrained: str | Path) -> dict[str, torch.Tensor]:
    """Load ImageNet weights into ``model`` (built by :func:`backbone` at width 64) in place.

    ``pretrained`` is ``"torchvision"`` (torchvision's default weights for ``name``), a torchvision
    weights name such as ``"IMAGENET1K_V2"``, or the path of a local torchvision state-dict file.
    Returns the state dict of torchvision's classifier (``{"weight", "bias"}`` of its Linear, or
    MobileNetV3's MLP's ``{"0.weight", ..., "3.bias"}``), which fits :func:`classifier`, so a model
    with the same classes can start from it whole.
    """
    state = torchvision_state_dict(name, "DEFAULT" if pretrained == "torchvision" else pretrained)
    prefix = _CLASSIFIER_KEYS["resnet" if name in ARCHS else name] + "."
    head = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if name in ARCHS:
        state = torchvision_to_ssd_keys(state)
    else:
        if name == "densenet121":  # torchvision's released file predates its key names ("norm.1" -> "norm1")
            state = {_DENSENET_OLD_KEY.sub(r"\1\2", k): v for k, v in state.items()}
        parts = {n for n, _ in model.named_children()}
        state = {k: v for k, v in state.items() if k.split(".", 1)[0] in parts}
    # files saved before PyTorch 0.4.1 lack BatchNorm's counter; PyTorch itself fills it with 0
    state |= {k: torch.tensor(0) for k in model.state_dict() if k.endswith("num_batches_tracked") and k not in state}
    load_state_dict_strict(model, state, str(pretrained))
    return head
