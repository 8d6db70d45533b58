"""Feature-map backbones (SSOD Table 6): shapes and strides, torchvision weights loading from local files, and
MobileNetV3 with its whole pretrained classifier."""

import re
import typing

import pytest
import torch
import torch.nn.functional as F
import torchvision
from conftest import assert_refused

from ssdlib.models.backbones import BACKBONES, TORCHVISION, backbone, load_pretrained
from ssdlib.params import Backbone, SSODParams
from ssdlib.ssod import build

TV_OUT_DIM = {
    "densenet121": 1024,
    "regnet_y_800mf": 784,
    "mobilenet_v3_large": 960,
    "mobilenet_v3_small": 576,
    "resnet18": 512,
    "resnet50": 2048,
}


def test_params_list_every_backbone():
    assert set(typing.get_args(Backbone)) == set(BACKBONES)


@pytest.mark.parametrize("name", BACKBONES)
def test_cifar_stem_has_stride_8_imagenet_stem_stride_32(name):
    torch.manual_seed(0)
    net = backbone(name, width=8, stem="cifar").eval()
    x = torch.rand(2, 3, 32, 32)
    fmap = net.feature_map(x)
    assert fmap.shape == (2, net.out_dim, 4, 4)
    torch.testing.assert_close(net(x), fmap.mean(dim=(2, 3)))
    assert backbone(name, width=8, stem="imagenet").eval().feature_map(torch.rand(1, 3, 64, 64)).shape[-2:] == (2, 2)


@pytest.mark.parametrize("name", [n for n in TV_OUT_DIM if n != "resnet50"])
def test_full_width_matches_torchvision(name):
    ours = backbone(name)
    assert ours.out_dim == TV_OUT_DIM[name]
    tv_keys = {k for k in getattr(torchvision.models, name)().state_dict() if not k.startswith(("fc.", "classifier."))}
    ours_keys = set(ours.state_dict())
    if name.startswith("resnet"):
        tv_keys = {k.replace(".downsample.", ".shortcut.") for k in tv_keys}
    assert ours_keys == tv_keys


def test_smaller_width_scales_channels():
    for name in TORCHVISION:
        assert backbone(name, width=16).out_dim < backbone(name).out_dim


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "regnet_y_800mf", "mobilenet_v3_small"])
def test_local_torchvision_weights_give_torchvision_features(name, tmp_path):
    torch.manual_seed(1)
    tv = getattr(torchvision.models, name)().eval()
    path = tmp_path / f"{name}.pth"
    state = tv.state_dict()
    if name == "densenet121":  # like the released file: old key names ("norm.1" for "norm1"), no BN counters
        state = {
            re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v
            for k, v in state.items()
            if not k.endswith("num_batches_tracked")
        }
        assert any(".norm.1." in k for k in state)
    torch.save(state, path)
    ours = backbone(name).eval()
    classifier = load_pretrained(ours, name, str(path))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        if name == "resnet18":
            h = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
            expected = tv.layer4(tv.layer3(tv.layer2(tv.layer1(h))))
        elif name == "densenet121":
            expected = F.relu(tv.features(x))
        elif name == "regnet_y_800mf":
            expected = tv.trunk_output(tv.stem(x))
        else:
            expected = tv.features(x)
        torch.testing.assert_close(ours.feature_map(x), expected)
    head = tv.fc if hasattr(tv, "fc") else tv.classifier  # MobileNetV3's: Linear, Hardswish, Dropout, Linear
    assert classifier.keys() == head.state_dict().keys()
    for key, value in head.state_dict().items():
        assert torch.equal(classifier[key], value)


def test_pretrained_mobilenet_v3_is_torchvisions_network_classifier_included(tmp_path):
    """The SSOD model of a pretrained MobileNetV3-Large gives torchvision's logits: its MLP classifier is
    the SSOD classifier, whole; only the OOD head is new."""
    torch.manual_seed(2)
    tv = torchvision.models.mobilenet_v3_large().eval()
    torch.save(tv.state_dict(), tmp_path / "mobilenet_v3_large.pth")
    cfg = SSODParams(backbone="mobilenet_v3_large", pretrained=str(tmp_path), input_size=224)
    model = build.new_ssod_net(cfg, 1000, None).eval()
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), tv(x))


def test_weights_of_another_width_are_refused(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(Exception, match="width"):
        load_pretrained(backbone("resnet18", width=16), "resnet18", str(path))


def test_bad_names_and_widths_say_what_to_use():
    assert_refused(
        [
            (lambda: backbone("vgg16"), "densenet121"),
            (lambda: backbone("resnet18", stem="tiny"), "stem"),
            (lambda: backbone("resnet18", width=2), "width"),
        ]
    )
