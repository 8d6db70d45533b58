"""SSD_k against its formula: split, augmented views, Ledoit-Wolf d_in - d_ood.

As in SSD's ``eval_ssdk.py`` (``get_eval_results``) and ``utils.py`` (``sliceloader``).
"""

import numpy as np
import pytest
import torch
from torch import nn

from ssdlib.detectors import ssdk as ssdk_module
from ssdlib.detectors.base import FeatureSet, MissingInputError, NotFittedError
from ssdlib.detectors.ssdk import SSDk, augmented_views, evaluate_ssdk, split_known_outliers
from ssdlib.evaluation.rows import ssdk_grid
from ssdlib.features import extract


def ledoit_wolf_numpy(x):
    """Ledoit & Wolf (2004), Lemma 3.2-3.4, written out: shrink S towards m*I by b2/d2."""
    n, p = x.shape
    xc = x - x.mean(0)
    s = xc.T @ xc / n
    m = np.trace(s) / p
    d2 = np.sum((s - m * np.eye(p)) ** 2) / p
    b2_bar = sum(np.sum((np.outer(v, v) - s) ** 2) for v in xc) / n**2 / p
    shrink = min(b2_bar, d2) / d2
    return shrink * m * np.eye(p) + (1 - shrink) * s


def reference_ssdk(train, known, test):
    def l2(f):
        return f / (np.sqrt((f**2).sum(1, keepdims=True)) + 1e-10)

    tr, kn, te = (l2(a.astype(np.float64)) for a in (train, known, test))
    m, s = tr.mean(0), tr.std(0)
    tr, kn, te = ((a - m) / (s + 1e-10) for a in (tr, kn, te))

    def dist(ref):
        mu, prec = ref.mean(0), np.linalg.pinv(ledoit_wolf_numpy(ref))
        return np.array([(v - mu) @ prec @ (v - mu) for v in te])

    return dist(tr) - dist(kn)  # SSD's s(x): higher = more OOD


def test_scores_equal_formula():
    rng = np.random.default_rng(0)
    train = rng.standard_normal((200, 8)).astype(np.float32) + 2
    known = rng.standard_normal((30, 8)).astype(np.float32) - 1
    test = rng.standard_normal((25, 8)).astype(np.float32)
    scores = SSDk(FeatureSet(features=known)).fit(FeatureSet(features=train)).score(FeatureSet(features=test))
    np.testing.assert_allclose(scores, -reference_ssdk(train, known, test), rtol=1e-6, atol=1e-6)


def test_known_outliers_pull_scores_down():
    rng = np.random.default_rng(1)
    train = FeatureSet(features=rng.standard_normal((300, 4)) + [3, 0, 0, 0])
    known = FeatureSet(features=rng.standard_normal((40, 4)) + [0, 3, 0, 0])
    near_known = FeatureSet(features=rng.standard_normal((50, 4)) + [0, 3, 0, 0])
    id_like = FeatureSet(features=rng.standard_normal((50, 4)) + [3, 0, 0, 0])
    detector = SSDk(known).fit(train)
    assert detector.score(id_like).min() > detector.score(near_known).max()


def test_known_outliers_given_later_reuse_the_id_fit():
    rng = np.random.default_rng(2)
    train, test = FeatureSet(features=rng.standard_normal((100, 5))), FeatureSet(features=rng.standard_normal((9, 5)))
    known_a, known_b = (FeatureSet(features=rng.standard_normal((12, 5)) + 1) for _ in range(2))
    base = SSDk().fit(train)
    derived = base.with_known_outliers(known_a)
    np.testing.assert_allclose(derived.score(test), SSDk(known_a).fit(train).score(test), rtol=1e-12)
    base.with_known_outliers(known_b)
    np.testing.assert_allclose(derived.score(test), SSDk(known_a).fit(train).score(test), rtol=1e-12)
    with pytest.raises(MissingInputError, match="no known outliers"):
        base.score(test)
    with pytest.raises(NotFittedError):
        SSDk().with_known_outliers(known_a)


def test_needs_two_known_views():
    with pytest.raises(ValueError, match="raise k or copies"):
        SSDk(FeatureSet(features=np.ones((1, 3)))).fit(FeatureSet(features=np.random.rand(10, 3)))


def test_split_takes_k_per_class_and_leaves_them_out():
    labels = np.repeat([0, 1, 2], [10, 7, 2])
    known, rest = split_known_outliers(labels, 3, seed=4)
    assert np.bincount(labels[known]).tolist() == [3, 3, 2]  # a class with fewer than k gives all it has
    assert not set(known) & set(rest)
    assert sorted([*known, *rest]) == list(range(len(labels)))
    again, _ = split_known_outliers(labels, 3, seed=4)
    other, _ = split_known_outliers(labels, 3, seed=5)
    np.testing.assert_array_equal(known, again)
    assert not np.array_equal(known, other)


def test_split_refuses_to_leave_nothing_to_evaluate():
    with pytest.raises(ValueError, match="lower k"):
        split_known_outliers(np.zeros(4), 4)


def test_view_i_is_of_image_i_mod_n(monkeypatch):
    monkeypatch.setattr(ssdk_module, "simclr_augment", lambda x, generator=None: x.clone())
    images = torch.rand(3, 3, 8, 8)
    views = augmented_views(images, 4)
    assert views.shape == (12, 3, 8, 8)
    for i in range(12):
        assert torch.equal(views[i], images[i % 3])


def test_views_are_seeded_augmentations():
    images = torch.rand(2, 3, 16, 16)
    a, b, c = augmented_views(images, 3, seed=1), augmented_views(images, 3, seed=1), augmented_views(images, 3, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[2])  # two views of image 0 differ


class MeanColour(nn.Module):
    """A stand-in encoder: features = per-channel means and stds (6-d)."""

    def features(self, x):
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


def test_evaluate_ssdk_scores_only_the_remainder():
    torch.manual_seed(0)
    model = MeanColour()
    id_images = torch.rand(120, 3, 8, 8) * 0.5
    ood_images = torch.rand(30, 3, 8, 8) * 0.5 + 0.5
    ood_labels = torch.arange(30) % 3
    train = extract(model, id_images[:80])
    id_test = extract(model, id_images[80:])
    ood = extract(model, torch.utils.data.TensorDataset(ood_images, ood_labels))
    result = evaluate_ssdk(model, SSDk().fit(train), id_test, ood_images, ood, k=2, copies=5, seed=3)
    assert (result.known, result.views, result.evaluated) == (6, 30, 24)
    known, rest = split_known_outliers(ood_labels.numpy(), 2, seed=3)
    views = extract(model, augmented_views(ood_images[known], 5, seed=3)).features
    expected = -reference_ssdk(train.features, views, ood.features[rest])
    np.testing.assert_allclose(result.ood_scores, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        result.id_scores, -reference_ssdk(train.features, views, id_test.features), rtol=1e-5, atol=1e-5
    )

    rows = ssdk_grid(
        model, train, id_test, {"bright": ood_images}, {"bright": ood}, [1, 2], [5], id_dataset="dark", seed=3
    )
    assert [r["setting"] for r in rows] == ["k=1,copies=5", "k=2,copies=5"]
    assert rows[1]["auroc"] > 0.9 and rows[1]["method"] == "SSD_k"
