"""ODIN and Mahalanobis input preprocessing on a tiny linear model: pytorch-ood and hand computation.

The tiny model is normalise -> linear encoder -> linear head, so every gradient is a closed
formula. The model runs in float64 so that no gradient component's sign is decided by rounding.
"""

import numpy as np
import pytest
import torch
from scipy.special import softmax
from torch import nn

from ssdlib.data.normalize import Normalize
from ssdlib.detectors.base import FeatureSet, NotFittedError
from ssdlib.detectors.mahalanobis import Mahalanobis
from ssdlib.detectors.odin import ODIN
from ssdlib.detectors.preprocessing import sign_step
from ssdlib.features import extract

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
H, D, C = 4, 6, 3


class Tiny(nn.Module):
    """features(x) = A n(x) + a, classify(z) = W z + b, with n the per-channel normalisation."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.normalize = Normalize(MEAN, STD)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(3 * H * H, D))
        self.head = nn.Linear(D, C)

    def features(self, x):
        return self.encoder(self.normalize(x))

    def classify(self, z):
        return self.head(z)

    def forward(self, x):
        return self.classify(self.features(x))


@pytest.fixture(scope="module")
def model():
    return Tiny().double().eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(20, 3, H, H, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def numpy_weights(model):
    a, a0 = model.encoder[1].weight.detach().numpy(), model.encoder[1].bias.detach().numpy()
    w, b = model.head.weight.detach().numpy(), model.head.bias.detach().numpy()
    return a, a0, w, b


def normalise(x):
    return (x - np.array(MEAN)[:, None, None]) / np.array(STD)[:, None, None]


def input_gradient(a, grad_z):
    """d/dx of a function of z = A n(x) + a0, given its gradient w.r.t. z: A^T grad_z, divided by the std."""
    return (grad_z @ a).reshape(-1, 3, H, H) / np.array(STD)[:, None, None]


def test_odin_preprocessing_by_hand(model, images):
    T, eps = 10.0, 0.01
    a, a0, w, b = numpy_weights(model)
    x = images.numpy()
    z = normalise(x).reshape(len(x), -1) @ a.T + a0
    f = z @ w.T + b
    p = softmax(f / T, axis=1)
    onehot = np.eye(C)[f.argmax(1)]
    grad_x = input_gradient(a, ((p - onehot) / T) @ w)  # d CE(f/T, yhat) / dx
    x_tilde = x - eps * np.sign(grad_x)
    expected_logits = (normalise(x_tilde).reshape(len(x), -1) @ a.T + a0) @ w.T + b

    detector = ODIN(temperature=T, epsilon=eps)
    got = detector.extract(model, images)
    np.testing.assert_allclose(got.logits, expected_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(detector.fit(got).score(got), softmax(expected_logits / T, axis=1).max(1), rtol=1e-5)


def test_odin_equals_pytorch_odin_with_norm_std(model, images):
    """pytorch-ood steps by eps * sign / std in normalised space; ours by eps * sign in [0, 1] space."""
    pood = pytest.importorskip("pytorch_ood.detector")
    T, eps = 1000.0, 0.0014
    inner = nn.Sequential(model.encoder, model.head)  # the same network without its normalisation layer
    theirs = pood.ODIN(inner, eps=eps, temperature=T, norm_std=list(STD)).predict(model.normalize(images))
    ours = ODIN(T, eps)
    ours.fit(FeatureSet(logits=np.zeros((1, C))))
    np.testing.assert_allclose(ours.score(ours.extract(model, images)), -theirs.detach().numpy(), rtol=1e-6)


def test_odin_step_raises_the_confidence_and_zero_step_changes_nothing(model, images):
    plain = extract(model, images)
    odin0 = ODIN(temperature=1.0, epsilon=0.0).fit(plain)
    np.testing.assert_allclose(odin0.extract(model, images).logits, plain.logits)
    odin = ODIN(temperature=1.0, epsilon=0.002).fit(plain)
    assert (odin.score(odin.extract(model, images)) > odin.score(plain)).all()


def test_sign_step_on_a_quadratic():
    x = torch.tensor([[1.0, -2.0, 0.5]])
    stepped = sign_step(lambda v: (v**2).sum(1), x, 0.1)  # gradient 2x: sign (+, -, +)
    torch.testing.assert_close(stepped, torch.tensor([[0.9, -1.9, 0.4]]))


def test_mahalanobis_preprocessing_by_hand(model, images):
    eps = 0.01
    rng = np.random.default_rng(3)
    train_x = torch.rand(60, 3, H, H, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    train = extract(model, train_x)
    train.labels = rng.integers(0, C, 60)
    detector = Mahalanobis(epsilon=eps).fit(train)

    a, a0, *_ = numpy_weights(model)
    z = train.features.astype(np.float64)
    y = train.labels
    means = np.stack([z[y == c].mean(0) for c in range(C)])
    prec = np.linalg.pinv(sum(((z[y == c] - means[c]).T @ (z[y == c] - means[c])) for c in range(C)) / len(z))
    x = images.numpy()
    zt = normalise(x).reshape(len(x), -1) @ a.T + a0
    d = zt[:, None] - means
    closest = np.einsum("ncd,de,nce->nc", d, prec, d).argmin(1)
    grad_x = input_gradient(a, 2 * (zt - means[closest]) @ prec)
    z_tilde = normalise(x - eps * np.sign(grad_x)).reshape(len(x), -1) @ a.T + a0
    dt = z_tilde[:, None] - means
    expected = -np.einsum("ncd,de,nce->nc", dt, prec, dt).min(1)

    got = detector.score(detector.extract(model, images))
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    assert (got > detector.score(extract(model, images))).all()  # the step moves towards the closest mean


def test_mahalanobis_preprocessing_needs_a_fit_first(model, images):
    with pytest.raises(NotFittedError, match="fit"):
        Mahalanobis(epsilon=0.01).extract(model, images)
