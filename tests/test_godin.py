"""GODIN: the dividend/divisor network, its score with input preprocessing, and training by the SupCE loop."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from ssdlib.data.memory import ImageTensorDataset
from ssdlib.data.normalize import Normalize
from ssdlib.detectors.base import FeatureSet
from ssdlib.detectors.godin import GODIN
from ssdlib.features import extract
from ssdlib.models.godin import GODINNet

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.3, 0.25)
H, D, C = 4, 6, 3


class LinearEncoder(nn.Sequential):
    """z = A vec(x) + a: a stand-in encoder whose gradients are closed formulas."""

    out_dim = D

    def __init__(self) -> None:
        super().__init__(nn.Flatten(), nn.Linear(3 * H * H, D))


def godin_net(similarity="cosine"):
    torch.manual_seed(0)
    net = GODINNet(LinearEncoder(), C, normalize=Normalize(MEAN, STD), similarity=similarity).double()
    with torch.no_grad():  # give the divisor's BatchNorm non-trivial running statistics
        net.divisor[1].running_mean.fill_(0.3)
        net.divisor[1].running_var.fill_(2.0)
    return net.eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(16, 3, H, H, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.mark.parametrize("similarity", ["cosine", "inner", "euclidean"])
def test_dividend_formulas_and_quotient(images, similarity):
    net = godin_net(similarity)
    with torch.no_grad():
        z = net.features(images).numpy()
        h = net.dividend(net.features(images)).numpy()
        g = net.divisor_of(net.features(images)).numpy()
        logits = net(images).numpy()
    w = net.head.weight.detach().numpy()
    expected = {
        "cosine": (z / np.linalg.norm(z, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T,
        "inner": z @ w.T + (net.head.bias.detach().numpy() if net.head.bias is not None else 0),
        "euclidean": -((z[:, None] - w[None]) ** 2).sum(-1),
    }[similarity]
    np.testing.assert_allclose(h, expected, rtol=1e-8, atol=1e-10)
    assert ((g > 0) & (g < 1)).all()
    np.testing.assert_allclose(logits, h / g, rtol=1e-10)
    assert (logits.argmax(1) == h.argmax(1)).all()  # g > 0: the quotient and the dividend predict alike


def test_unknown_similarity_is_rejected():
    with pytest.raises(ValueError, match="cosine"):
        GODINNet(LinearEncoder(), C, similarity="dot")


def test_godin_preprocessing_by_hand(images):
    """x~ = x + eps * sign(grad_x max_i h_i(x)) with the cosine dividend, computed in closed form."""
    eps = 0.02
    net = godin_net("cosine")
    a, a0 = net.encoder[1].weight.detach().numpy(), net.encoder[1].bias.detach().numpy()
    w = net.head.weight.detach().numpy()
    w_hat = w / np.linalg.norm(w, axis=1, keepdims=True)
    std, mean = np.array(STD)[:, None, None], np.array(MEAN)[:, None, None]

    def feats(x):
        return ((x - mean) / std).reshape(len(x), -1) @ a.T + a0

    x = images.numpy()
    z = feats(x)
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    h = (z / norm) @ w_hat.T
    top = h.argmax(1)
    grad_z = (w_hat[top] - h[np.arange(len(x)), top, None] * z / norm) / norm  # d cos(w_i, z) / dz
    grad_x = (grad_z @ a).reshape(x.shape) / std
    z_tilde = feats(x + eps * np.sign(grad_x))
    expected = ((z_tilde / np.linalg.norm(z_tilde, axis=1, keepdims=True)) @ w_hat.T).max(1)

    detector = GODIN(epsilon=eps).fit(FeatureSet())
    got = detector.score(detector.extract(net, images))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    plain = GODIN(epsilon=0.0).fit(FeatureSet())
    assert (got > plain.score(plain.extract(net, images))).all()  # the step raises the score


def test_godin_extract_needs_a_godin_network(images):
    with pytest.raises(TypeError, match="GODINNet"):
        GODIN(0.01).extract(nn.Linear(3, 3), images)


@pytest.mark.slow
def test_godin_trains_through_the_supce_loop_and_is_reused(tmp_path, capsys):
    """Two colour classes, a width-4 ResNet-18: trained by the shared loop, then loaded, not retrained."""
    from ssdlib.experiment import godin_for
    from ssdlib.profiles import validate

    g = torch.Generator().manual_seed(0)
    n = 64
    y = torch.arange(n) % 2
    x = 0.1 * torch.rand(n, 3, 8, 8, generator=g)
    x[y == 0, 0] += 0.8  # class 0 red, class 1 blue
    x[y == 1, 2] += 0.8
    data = ImageTensorDataset(x.clamp(0, 1), y)
    bundle = SimpleNamespace(train=data, test=data, num_classes=2, normalize=lambda: Normalize(MEAN, STD))
    P = validate(
        {
            "profile": "t",
            "device": "cpu",
            "data": {"image_size": 8},
            "encoder": {"arch": "resnet18", "width": 4},
            "classifier": {"epochs": 3, "batch_size": 16, "lr": 0.05, "amp": False, "monitor_every": 0},
        }
    )
    net = godin_for(P, bundle, tmp_path)
    path = tmp_path / "checkpoints" / "GODIN_resnet18_w4.pt"
    assert path.is_file()
    fs = extract(net, data)
    assert (fs.logits.argmax(1) == y.numpy()).mean() >= 0.9
    written = path.stat().st_mtime_ns
    capsys.readouterr()
    again = godin_for(P, bundle, tmp_path)
    assert "loaded the trained GODIN model" in capsys.readouterr().out
    assert path.stat().st_mtime_ns == written
    for p, q in zip(net.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(p, q)
