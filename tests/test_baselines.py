"""Post-hoc detectors on fixed random features/logits: agreement with pytorch-ood 0.4.0 and hand formulas.

pytorch-ood returns outlier scores (larger = more OOD); ssdlib returns confidences (larger = more
ID). So where both compute the same quantity, ours == -theirs; where they differ by a documented
monotone transform (Mahalanobis: their -1/2 and un-normalised covariance), ranks agree exactly.
"""

import numpy as np
import pytest
import torch
from scipy.special import logsumexp, softmax
from scipy.stats import spearmanr

pytest.importorskip("pytorch_ood")
from pytorch_ood import detector as pood  # noqa: E402

from ssdlib.detectors import NotFittedError  # noqa: E402
from ssdlib.detectors.base import FeatureSet, MissingInputError  # noqa: E402
from ssdlib.detectors.energy import Energy  # noqa: E402
from ssdlib.detectors.knn import KNN, kth_distance_exact  # noqa: E402
from ssdlib.detectors.mahalanobis import Mahalanobis  # noqa: E402
from ssdlib.detectors.maxlogit import MaxLogit  # noqa: E402
from ssdlib.detectors.msp import MSP  # noqa: E402
from ssdlib.detectors.odin import ODIN  # noqa: E402
from ssdlib.detectors.react import ReAct  # noqa: E402
from ssdlib.detectors.vim import ViM  # noqa: E402

N_TRAIN, N_TEST, D, C = 300, 120, 16, 4


@pytest.fixture(scope="module")
def data():
    """Class-clustered ReLU-like features, a linear head, and test features with some shifted (OOD-like)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 2, (C, D))
    y = rng.integers(0, C, N_TRAIN)
    z_train = np.abs(centres[y] + rng.normal(0, 1, (N_TRAIN, D)))
    z_test = np.abs(
        np.r_[
            centres[rng.integers(0, C, N_TEST // 2)] + rng.normal(0, 1, (N_TEST // 2, D)),
            rng.normal(0, 3, (N_TEST // 2, D)),
        ]
    )
    w, b = rng.normal(0, 0.5, (C, D)), rng.normal(0, 0.1, C)
    fs = lambda z: FeatureSet(features=z.astype(np.float32), logits=(z @ w.T + b).astype(np.float32))  # noqa: E731
    train = fs(z_train)
    train.labels = y
    return train, fs(z_test), w, b


def t(a):
    return torch.as_tensor(np.asarray(a), dtype=torch.float32)


def assert_same_order(ours, theirs_outlier):
    """Spearman rank correlation exactly 1 between our confidence and minus their outlier score."""
    assert spearmanr(ours, -np.asarray(theirs_outlier)).statistic == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (MSP(), pood.MaxSoftmax(None)),
        (MaxLogit(), pood.MaxLogit(None)),
        (Energy(), pood.EnergyBased(None)),
        (Energy(temperature=2.0), pood.EnergyBased(None, t=2.0)),
    ],
    ids=["msp", "maxlogit", "energy", "energy_T2"],
)
def test_logit_detectors_equal_pytorch_ood(data, ours, theirs):
    train, test, *_ = data
    scores = ours.fit(train).score(test)
    np.testing.assert_allclose(scores, -theirs.predict_logits(t(test.logits)).numpy(), rtol=1e-5, atol=1e-6)


def test_logit_detectors_match_their_formulas(data):
    train, test, *_ = data
    f = test.logits.astype(np.float64)
    np.testing.assert_allclose(MSP().fit(train).score(test), softmax(f, axis=1).max(1))
    np.testing.assert_allclose(MaxLogit().fit(train).score(test), f.max(1))
    np.testing.assert_allclose(Energy(3.0).fit(train).score(test), 3.0 * np.log(np.exp(f / 3.0).sum(1)))
    # ODIN without preprocessing is temperature scaling: max softmax(f / T)
    np.testing.assert_allclose(ODIN(temperature=10.0).fit(train).score(test), softmax(f / 10, axis=1).max(1))


def test_msp_on_a_hand_case():
    # logits (0, ln 3): softmax = (1/4, 3/4); (0, 0): (1/2, 1/2)
    fs = FeatureSet(logits=np.array([[0.0, np.log(3.0)], [0.0, 0.0]]))
    np.testing.assert_allclose(MSP().fit(fs).score(fs), [0.75, 0.5])


def test_knn_equals_pytorch_ood(data):
    train, test, *_ = data
    for k in (1, 5, 50):
        ours = KNN(k, backend="exact").fit(train).score(test)
        theirs = pood.KNN(None, k=k).fit_features(t(train.features), t(train.labels)).predict_features(t(test.features))
        np.testing.assert_allclose(ours, -theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_knn_on_a_hand_case():
    # unit vectors at angles 0, 90, 180 degrees; query at 0 degrees (scale ignored by the normalisation)
    bank = FeatureSet(features=np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]))
    query = FeatureSet(features=np.array([[5.0, 0.0]]))
    got = [KNN(k, backend="exact").fit(bank).score(query)[0] for k in (1, 2, 3)]
    np.testing.assert_allclose(got, [0.0, -np.sqrt(2.0), -2.0], atol=1e-9)


def test_knn_exact_search_is_chunk_independent(data):
    train, test, *_ = data
    one = kth_distance_exact(train.features, test.features, 7, chunk=7)
    np.testing.assert_allclose(one, kth_distance_exact(train.features, test.features, 7, chunk=10_000))


def test_knn_faiss_agrees_with_exact(data):
    pytest.importorskip("faiss")
    train, test, *_ = data
    np.testing.assert_allclose(
        KNN(10, backend="faiss").fit(train).score(test),
        KNN(10, backend="exact").fit(train).score(test),
        rtol=1e-4,
        atol=1e-5,
    )


def test_knn_rejects_k_above_the_bank(data):
    train, *_ = data
    with pytest.raises(ValueError, match="exceeds"):
        KNN(N_TRAIN + 1).fit(train)


def test_mahalanobis_ranks_like_pytorch_ood(data):
    train, test, *_ = data
    ours = Mahalanobis().fit(train).score(test)
    theirs = pood.Mahalanobis(None).fit_features(t(train.features), torch.as_tensor(train.labels))
    theirs = theirs.predict_features(t(test.features)).numpy()
    assert_same_order(ours, theirs)
    # the documented transform: theirs = 1/2 min MD under the covariance N * Sigma (+ a 1e-6 ridge)
    np.testing.assert_allclose(ours, -2 * N_TRAIN * theirs, rtol=2e-3)


def test_mahalanobis_matches_an_independent_formula(data):
    train, test, *_ = data
    z, y = train.features.astype(np.float64), train.labels
    means = np.stack([z[y == c].mean(0) for c in range(C)])
    cov = sum(np.cov(z[y == c], rowvar=False, bias=True) * (y == c).sum() for c in range(C)) / len(z)
    prec = np.linalg.inv(cov)
    d = test.features.astype(np.float64)[:, None] - means
    expected = -np.einsum("ncd,de,nce->nc", d, prec, d).min(1)
    np.testing.assert_allclose(Mahalanobis().fit(train).score(test), expected, rtol=1e-6)


def test_mahalanobis_needs_labels_and_rejects_ood_labels(data):
    train, *_ = data
    with pytest.raises(MissingInputError, match="labels"):
        Mahalanobis().fit(FeatureSet(features=train.features))
    with pytest.raises(ValueError, match="OOD"):
        Mahalanobis().fit(FeatureSet(features=train.features, labels=np.where(train.labels == 0, -1, train.labels)))


def test_react_equals_pytorch_ood(data):
    train, test, w, b = data
    head = torch.nn.Linear(D, C)
    with torch.no_grad():
        head.weight.copy_(t(w))
        head.bias.copy_(t(b))
    for p in (85.0, 90.0, 99.0):
        ours = ReAct(w, b, percentile=p).fit(train)
        theirs = pood.ReAct(backbone=None, head=lambda fm: head(fm.flatten(1)), percentile=p / 100)
        theirs.fit_feature_maps(t(train.features)[:, :, None, None], torch.as_tensor(train.labels))
        assert ours.threshold_ == pytest.approx(theirs.threshold, rel=1e-6)
        with torch.no_grad():
            expected = -theirs.predict_feature_maps(t(test.features)[:, :, None, None]).numpy()
        np.testing.assert_allclose(ours.score(test), expected, rtol=1e-5, atol=1e-5)


def test_react_clips_then_takes_the_energy(data):
    train, test, w, b = data
    ours = ReAct(w, b, percentile=90.0).fit(train)
    c = np.percentile(train.features, 90)
    expected = logsumexp(np.minimum(test.features.astype(np.float64), c) @ w.T + b, axis=1)
    np.testing.assert_allclose(ours.score(test), expected)
    # a threshold above every activation leaves plain energy
    big = ReAct(w, b, percentile=100.0).fit(FeatureSet(features=np.full((2, D), 1e6)))
    np.testing.assert_allclose(big.score(test), logsumexp(test.features.astype(np.float64) @ w.T + b, axis=1))


@pytest.mark.parametrize("dim", [2, 8, 12])
def test_vim_equals_pytorch_ood(data, dim):
    train, test, w, b = data
    ours = ViM(w, b, dim=dim).fit(train).score(test)
    theirs = pood.ViM(None, d=dim, w=t(w), b=t(b)).fit_features(t(train.features), None)
    expected = -theirs.predict_features(t(test.features)).numpy()  # pytorch-ood works in float32
    np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-3)
    assert_same_order(ours, -expected)


def test_vim_rejects_a_dim_not_below_the_feature_size(data):
    _, _, w, b = data
    with pytest.raises(ValueError, match="vim.dim"):
        ViM(w, b, dim=D)


def test_score_before_fit_and_missing_logits(data):
    train, test, *_ = data
    with pytest.raises(NotFittedError):
        KNN(5).score(test)
    with pytest.raises(MissingInputError, match="logits"):
        MSP().fit(train).score(FeatureSet(features=test.features))
