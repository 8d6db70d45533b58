"""Encoders and heads: parameter counts of SSD's ``models.py``, SSD key layout, init, and parity with torchvision."""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import assert_refused
from torch import nn

from ssdlib.data.normalize import Normalize
from ssdlib.models import SSLNet, SupNet, resnet, torchvision_classifier, torchvision_resnet
from ssdlib.models.load import CheckpointError
from ssdlib.models.resnet import torchvision_to_ssd_keys


@pytest.mark.parametrize(
    "arch, encoder_params, ssl_params, ssl_entries",
    [("resnet18", 11_168_832, 11_497_152, 124), ("resnet50", 23_500_352, 27_958_976, 322)],
)
def test_width_64_matches_reference_counts(arch, encoder_params, ssl_params, ssl_entries):
    with torch.device("meta"):  # no memory, no init cost
        net = SSLNet(resnet(arch))
    assert sum(p.numel() for p in net.encoder.parameters()) == encoder_params
    assert sum(p.numel() for p in net.parameters()) == ssl_params
    assert len(net.state_dict()) == ssl_entries


@pytest.mark.parametrize(
    "arch, out_dim", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048), ("resnet101", 2048)]
)
def test_out_dim_scales_with_width(arch, out_dim):
    with torch.device("meta"):
        assert resnet(arch).out_dim == out_dim
        assert resnet(arch, width=16).out_dim == out_dim // 4


def test_ssd_key_layout():
    r18 = SSLNet(resnet("resnet18", width=8)).state_dict()
    r50 = SupNet(resnet("resnet50", width=8), num_classes=10).state_dict()
    assert {"encoder.conv1.weight", "encoder.bn1.num_batches_tracked", "head.0.weight", "head.2.bias"} <= set(r18)
    assert "encoder.layer1.0.shortcut.0.weight" not in r18  # same shape in layer1 of BasicBlock nets
    assert {"encoder.layer2.0.shortcut.0.weight", "encoder.layer2.0.shortcut.1.running_var"} <= set(r18)
    assert {"encoder.layer1.0.shortcut.0.weight", "encoder.layer4.2.conv3.weight", "head.weight", "head.bias"} <= set(
        r50
    )
    assert not any(k.startswith(("encoder.fc", "normalize", "encoder.maxpool")) for k in r50)


def test_cifar_stem_and_bottleneck_strides():
    enc = resnet("resnet50", width=8)
    assert enc.conv1.kernel_size == (3, 3) and enc.conv1.stride == (1, 1)
    assert isinstance(enc.maxpool, nn.Identity)
    block = enc.layer2[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2) and block.shortcut[0].stride == (2, 2)


def test_kaiming_fan_out_init_and_bn_constants():
    torch.manual_seed(0)
    enc = resnet("resnet18", width=32)
    w = enc.layer3[0].conv1.weight  # [128, 64, 3, 3]: fan_out = 128 * 9
    assert w.std().item() == pytest.approx((2 / (128 * 9)) ** 0.5, rel=0.03)
    assert abs(w.mean().item()) < 3e-3
    assert torch.all(enc.layer2[1].bn2.weight == 1) and torch.all(enc.layer2[1].bn2.bias == 0)


@pytest.mark.parametrize("stem, size, side", [("cifar", 32, 4), ("imagenet", 64, 2)])
def test_feature_map_and_pooled_output(stem, size, side):
    torch.manual_seed(0)
    enc = resnet("resnet18", width=8, stem=stem).eval()
    x = torch.rand(3, 3, size, size)
    fmap = enc.feature_map(x)
    assert fmap.shape == (3, 64, side, side)
    torch.testing.assert_close(enc(x), fmap.mean((2, 3)))


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_imagenet_stem_equals_torchvision_resnet(arch, tmp_path):
    """Same function as torchvision's ResNet: its weights, renamed, give the same features and logits."""
    torch.manual_seed(0)
    tv = getattr(torchvision.models, arch)(num_classes=7).eval()
    for m in tv.modules():  # non-trivial BN statistics, so they must be carried over too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / f"{arch}.pth"
    torch.save(tv.state_dict(), path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        logits = tv(x)
        tv.fc = nn.Identity()
        features = tv(x)
        ours = torchvision_resnet(arch, weights=str(path)).eval()
        clf = torchvision_classifier(arch, path).eval()
        torch.testing.assert_close(ours(x), features, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(clf(x), logits, rtol=1e-4, atol=1e-5)
    renamed = torchvision_to_ssd_keys(tv.state_dict())
    assert "layer2.0.shortcut.0.weight" in renamed and not any("downsample" in k for k in renamed)


def test_heads_normalize_first_and_outputs():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16)
    half = Normalize([0.5] * 3, [0.5] * 3)  # x -> 2x - 1
    ssl = SSLNet(resnet("resnet18", width=8), normalize=half, proj_dim=5).eval()
    sup = SupNet(resnet("resnet34", width=8), num_classes=3, normalize=half).eval()
    with torch.no_grad():
        torch.testing.assert_close(ssl.features(x), ssl.encoder(2 * x - 1))
        z = ssl(x)
        assert z.shape == (4, 5)
        torch.testing.assert_close(z.norm(dim=1), torch.ones(4))
        torch.testing.assert_close(z, F.normalize(ssl.head(ssl.encoder(2 * x - 1)), dim=-1))
        f = sup.features(x)
        torch.testing.assert_close(sup(x), f @ sup.head.weight.T + sup.head.bias)
        torch.testing.assert_close(sup.classify(f), sup(x))
    assert isinstance(SupNet(resnet("resnet18", width=8), 3).normalize, nn.Identity)
    assert ssl.state_dict().keys() == SSLNet(resnet("resnet18", width=8), proj_dim=5).state_dict().keys()


def test_weights_names_go_through_torchvision_without_network(monkeypatch):
    ResNet18_Weights = torchvision.models.ResNet18_Weights
    fetched = []

    def offline(weights, **kwargs):
        fetched.append(weights)
        raise OSError("no network")

    monkeypatch.setattr(ResNet18_Weights, "get_state_dict", offline)
    with pytest.raises(CheckpointError, match=r"could not fetch .*download https://.*pass its path"):
        torchvision_resnet("resnet18", weights="ResNet18_Weights.DEFAULT")
    assert fetched == [ResNet18_Weights.IMAGENET1K_V1]


def test_bad_names_say_what_is_allowed():
    assert_refused(
        [
            (lambda: resnet("resnet20"), "resnet18, resnet34, resnet50, resnet101"),
            (lambda: resnet("resnet18", stem="tiny"), "'cifar'"),
            (lambda: torchvision_resnet("resnet18", weights="IMAGENET1K_V9"), "IMAGENET1K_V1"),
        ]
    )
