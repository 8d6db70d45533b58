"""ResNet encoders: the CIFAR-style ResNet of SSD/SupContrast (``resnet_big``) and ImageNet ResNets.

The CIFAR variant (He et al. 2016, as adapted for 32 px images) has a 3x3 stride-1 stem and no
max-pool, so a 32 px image keeps a 4x4 map after ``layer4``. Bottleneck blocks put the stride on
the 3x3 conv ("ResNet v1.5"). Shortcuts are ``shortcut.0`` (1x1 conv) / ``shortcut.1`` (BN), so
the state-dict keys equal those of SSD checkpoints. The encoder has no fc: ``forward`` returns the
pooled penultimate features that SSD scores (Sehwag et al. 2021, Sec. 3).

``stem="imagenet"`` swaps in the 7x7 stride-2 conv + max-pool of torchvision's ResNet (keys stay
the same), and :func:`torchvision_resnet` loads torchvision's ImageNet weights into it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ssdlib.models.load import CheckpointError, load_state_dict_strict, read_checkpoint, state_dict_of

ARCHS = {  # arch -> (block, blocks per stage)
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}
STEMS = ("cifar", "imagenet")


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Sequential:
    """Projection shortcut when the shape changes, else an empty (key-less) identity."""
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    """conv3x3(stride)-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1(x4)-BN, plus shortcut, then ReLU."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet encoder without fc: ``forward`` gives pooled features [B, out_dim]."""

    def __init__(self, block: type[BasicBlock | Bottleneck], num_blocks, width: int = 64, stem: str = "cifar"):
        super().__init__()
        if stem == "cifar":
            self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        in_planes = width
        for i, n in enumerate(num_blocks):
            planes, stride = width * 2**i, 1 if i == 0 else 2
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(block(in_planes, planes, s))
                in_planes = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.out_dim = in_planes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output [B, out_dim, h, w], before pooling (SSOD samples its locations)."""
        out = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(out))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.feature_map(x), 1), 1)


def resnet(arch: str, width: int = 64, stem: str = "cifar") -> ResNet:
    """A ResNet encoder; ``width`` is the first stage's channels (64 = standard, stages double it)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; use 'cifar' (32-96 px images) or 'imagenet' (224 px)")
    if width < 1:
        raise ValueError(f"width must be a positive number of channels, got {width}")
    block, num_blocks = ARCHS[arch]
    return ResNet(BasicBlock if block == "basic" else Bottleneck, num_blocks, width, stem)


def torchvision_to_ssd_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision ResNet state dict to this module's keys (``downsample`` -> ``shortcut``).

    The classifier (``fc.*``) is dropped: the encoder has none (see ``heads.torchvision_classifier``).
    """
    return {k.replace(".downsample.", ".shortcut."): v for k, v in state_dict.items() if not k.startswith("fc.")}


def torchvision_state_dict(arch: str, weights) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights for ``arch``, in torchvision's own key layout (with ``fc``).

    ``weights`` is a torchvision weights name (``"IMAGENET1K_V1"``, ``"DEFAULT"``, or a full
    ``"ResNet50_Weights.IMAGENET1K_V2"``), a ``WeightsEnum`` member, a path to a local file
    holding the state dict (read safely, with ``weights_only=True``), or a folder of such files
    named ``<arch>.pth`` (one per architecture, for runs that build several). Names are fetched
    through torchvision's cache ($TORCH_HOME), which needs network access the first time.
    """
    from torchvision.models import WeightsEnum, get_model_weights  # local: importing torchvision takes seconds

    enum = get_model_weights(arch)
    if isinstance(weights, str) and weights.split(".")[-1] in enum.__members__:
        weights = enum[weights.split(".")[-1]]
    if not isinstance(weights, WeightsEnum) and Path(weights).is_dir():
        if not (Path(weights) / f"{arch}.pth").is_file():
            raise ValueError(f"weights folder {weights} holds no {arch}.pth (a torchvision state dict of {arch})")
        weights = Path(weights) / f"{arch}.pth"
    if not isinstance(weights, WeightsEnum):
        if not Path(weights).is_file():
            raise ValueError(
                f"weights={weights!r} is neither a torchvision weights name for {arch} "
                f"({', '.join(enum.__members__)}) nor an existing file"
            )
        return state_dict_of(read_checkpoint(weights), str(weights))
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except OSError as err:  # URLError is an OSError: no network
        raise CheckpointError(
            f"could not fetch {weights} ({err}); download {weights.url} elsewhere and pass its path as weights"
        ) from None


def torchvision_resnet(arch: str, weights=None) -> ResNet:
    """An ImageNet ResNet (torchvision's architecture) with this module's interface and key names.

    ``weights=None`` gives a randomly initialised encoder; otherwise see :func:`torchvision_state_dict`.
    """
    model = resnet(arch, width=64, stem="imagenet")
    if weights is not None:
        load_state_dict_strict(model, torchvision_to_ssd_keys(torchvision_state_dict(arch, weights)), str(weights))
    return model
