"""Contrastive loss: an independent slow loop, a hand-computed case, SSD's temperature scaling."""

import math

import pytest
import torch
import torch.nn.functional as F

from ssdlib.training.losses import contrastive_loss


def loop_loss(z, labels, temperature):
    """Per-anchor sums written out with Python floats (anchor = (view, image))."""
    n_img, n_views, _ = z.shape
    anchors = [(v, i) for v in range(n_views) for i in range(n_img)]
    labels = list(range(n_img)) if labels is None else labels.tolist()
    total = 0.0
    for va, ia in anchors:
        za = z[ia, va]
        others = [(vb, ib) for vb, ib in anchors if (vb, ib) != (va, ia)]
        denominator = sum(math.exp(float(za @ z[ib, vb]) / temperature) for vb, ib in others)
        positives = [(vb, ib) for vb, ib in others if labels[ib] == labels[ia]]
        total += -sum(float(za @ z[ib, vb]) / temperature - math.log(denominator) for vb, ib in positives) / len(
            positives
        )
    return total / len(anchors)


def random_unit(seed, n_img, n_views, dim):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n_img, n_views, dim, generator=g, dtype=torch.float64), dim=-1)


@pytest.mark.parametrize("seed, n_views, temperature", [(0, 2, 0.5), (1, 3, 0.1), (2, 2, 1.0)])
def test_simclr_matches_loop(seed, n_views, temperature):
    z = random_unit(seed, 6, n_views, 5)
    loss = contrastive_loss(z, temperature=temperature)
    assert loss.item() == pytest.approx(loop_loss(z, None, temperature), abs=1e-6)


@pytest.mark.parametrize("seed, n_views, temperature", [(3, 2, 0.5), (4, 3, 0.2)])
def test_supcon_matches_loop(seed, n_views, temperature):
    z = random_unit(seed, 8, n_views, 4)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3, 2])
    loss = contrastive_loss(z, labels, temperature=temperature)
    assert loss.item() == pytest.approx(loop_loss(z, labels, temperature), abs=1e-6)


def test_supcon_with_distinct_labels_is_simclr():
    z = random_unit(5, 5, 2, 3)
    torch.testing.assert_close(contrastive_loss(z, torch.tensor([4, 0, 2, 1, 3])), contrastive_loss(z))


def test_hand_computed_two_images():
    # Image 0: both views e1; image 1: both views e2. T = 0.5, so s = 2 (same) or 0 (orthogonal).
    # SimCLR: each anchor has 1 positive (s=2) and denominator e^2 + 2  ->  log(e^2 + 2) - 2.
    # SupCon, one label: each anchor has 3 positives, s = 2, 0, 0  ->  log(e^2 + 2) - 2/3.
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    z = torch.stack([torch.stack([e1, e1]), torch.stack([e2, e2])])
    log_den = math.log(math.e**2 + 2)
    assert contrastive_loss(z).item() == pytest.approx(log_den - 2, abs=1e-6)
    assert contrastive_loss(z, torch.tensor([7, 7])).item() == pytest.approx(log_den - 2 / 3, abs=1e-6)


def test_base_temperature_reproduces_ssd_scaling():
    z = random_unit(6, 4, 2, 8)
    plain = contrastive_loss(z, temperature=0.5)
    ssd = contrastive_loss(z, temperature=0.5, base_temperature=0.07)
    assert ssd.item() == pytest.approx(plain.item() * 0.5 / 0.07, rel=1e-12)


def test_stable_at_tiny_temperature_and_differentiable():
    z = random_unit(7, 4, 2, 3).float().requires_grad_()
    loss = contrastive_loss(z, temperature=1e-3)  # exp(1000) would overflow without the row max
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_bad_shapes_are_explained():
    with pytest.raises(ValueError, match="views >= 2"):
        contrastive_loss(torch.ones(4, 1, 3))
    with pytest.raises(ValueError, match="one per image"):
        contrastive_loss(random_unit(0, 4, 2, 3), torch.tensor([0, 1]))
