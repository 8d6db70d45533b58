"""SSD against an independent numpy computation of Sehwag et al.'s score.

The score as SSD's ``eval_ssd.py`` (``get_eval_results``, ``get_scores_multi_cluster``) and
``utils.py`` (``get_scores_one_cluster``) compute it.
"""

import sys

import numpy as np
import pytest
import torch

from ssdlib.detectors.base import FeatureSet, MissingInputError, NotFittedError
from ssdlib.detectors.ssd import SSD, Gaussian
from ssdlib.evaluation.rows import sweep_clusters
from ssdlib.metrics import auroc


def reference_ssd(train, test, clusters_of_train):
    """SSD's eval_ssd.py, written out: L2, z-score, per-cluster mean / bias=True cov / pinv, min over clusters."""

    def l2(f):
        return f / (np.sqrt((f**2).sum(1, keepdims=True)) + 1e-10)

    tr, te = l2(train.astype(np.float64)), l2(test.astype(np.float64))
    m, s = tr.mean(0), tr.std(0)
    tr, te = (tr - m) / (s + 1e-10), (te - m) / (s + 1e-10)
    dist = []
    for c in np.unique(clusters_of_train):
        x = tr[clusters_of_train == c]
        mu = x.mean(0)
        prec = np.linalg.pinv(np.cov(x.T, bias=True))
        dist.append([(v - mu) @ prec @ (v - mu) for v in te])
    return np.min(dist, axis=0)


def blobs(n, d, centers, rng, scale=0.3):
    which = rng.integers(len(centers), size=n)
    return (centers[which] + scale * rng.standard_normal((n, d))).astype(np.float32), which


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    centers = 3 * rng.standard_normal((3, 6))
    train, labels = blobs(300, 6, centers, rng)
    test, _ = blobs(40, 6, centers, rng)
    return FeatureSet(features=train, labels=labels), FeatureSet(features=test)


def test_one_cluster_equals_formula(data):
    train, test = data
    scores = SSD().fit(train).score(test)
    expected = -reference_ssd(train.features, test.features, np.zeros(len(train)))
    np.testing.assert_allclose(scores, expected, rtol=1e-6, atol=1e-6)


def test_kmeans_clusters_equal_formula_with_their_assignment(data):
    train, test = data
    detector = SSD(clusters=3, seed=1).fit(train)
    assert len(np.unique(detector.train_clusters_)) == 3
    expected = -reference_ssd(train.features, test.features, detector.train_clusters_)
    np.testing.assert_allclose(detector.score(test), expected, rtol=1e-6, atol=1e-6)


def test_kmeans_recovers_well_separated_clusters(data):
    train, _ = data
    found = SSD(clusters=3, seed=0).fit(train).train_clusters_
    # each true blob maps to exactly one k-means cluster
    pairs = set(zip(train.labels.tolist(), found.tolist()))
    assert len(pairs) == 3


def test_label_clusters_equal_formula(data):
    train, test = data
    scores = SSD(use_labels=True).fit(train).score(test)
    np.testing.assert_allclose(
        scores, -reference_ssd(train.features, test.features, train.labels), rtol=1e-6, atol=1e-6
    )


def test_seeded_kmeans_is_reproducible_and_subsample_option_works(data):
    train, test = data
    a = SSD(clusters=3, seed=5, points_per_cluster=20).fit(train)
    b = SSD(clusters=3, seed=5, points_per_cluster=20).fit(train)
    np.testing.assert_array_equal(a.train_clusters_, b.train_clusters_)
    np.testing.assert_array_equal(a.score(test), b.score(test))


def same_partition(a, b):
    """True when the two labellings split the points alike, whatever the cluster names."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("seed", [1, 2])
def test_faiss_kmeans_finds_sklearns_partition_and_scores(data, seed):
    """SSD's own k-means (faiss, random initial points) and scikit-learn's agree on well-separated clusters.

    Random initial points can also put two centroids in one blob and stop in that local optimum (some
    seeds do on these blobs), which k-means++ seeding avoids: one reason the backend is an option.
    """
    pytest.importorskip("faiss")
    train, test = data
    ours = SSD(clusters=3, seed=seed).fit(train)
    theirs = SSD(clusters=3, seed=seed, kmeans="faiss").fit(train)
    assert same_partition(ours.train_clusters_, theirs.train_clusters_)
    assert same_partition(theirs.train_clusters_, train.labels)
    np.testing.assert_allclose(theirs.score(test), ours.score(test), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        theirs.score(test), -reference_ssd(train.features, test.features, theirs.train_clusters_), rtol=1e-6, atol=1e-6
    )


def test_faiss_kmeans_is_seeded(data):
    pytest.importorskip("faiss")
    train, test = data
    a = SSD(clusters=3, seed=7, kmeans="faiss", points_per_cluster=40).fit(train)
    b = SSD(clusters=3, seed=7, kmeans="faiss", points_per_cluster=40).fit(train)
    assert a.centroids_.shape == (3, 6)
    np.testing.assert_array_equal(a.centroids_, b.centroids_)
    np.testing.assert_array_equal(a.train_clusters_, b.train_clusters_)
    np.testing.assert_array_equal(a.score(test), b.score(test))


def test_faiss_kmeans_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        SSD(clusters=3, kmeans="faiss")
    SSD(clusters=3)  # the default does not need faiss
    with pytest.raises(ValueError, match="k-means backend"):
        SSD(clusters=3, kmeans="torch")


def test_hand_computed_case():
    # four unit vectors: mean 0, per-dimension variance 1/2, so the z-scored covariance is I.
    # (3, 4) is L2-normalised to (0.6, 0.8), z-scored to (0.6, 0.8) / sqrt(1/2): squared norm 2.
    train = FeatureSet(features=np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.float32))
    scores = SSD().fit(train).score(FeatureSet(features=np.array([[3.0, 4.0], [0.0, 0.0]])))
    np.testing.assert_allclose(scores, [-2.0, 0.0], atol=1e-8)


def test_higher_score_means_more_in_distribution(data):
    train, test = data
    far = FeatureSet(features=test.features + 20 * np.ones(6, dtype=np.float32))
    detector = SSD(clusters=3).fit(train)
    assert detector.score(test).mean() > detector.score(far).mean()


def test_errors_say_what_to_do(data):
    train, test = data
    with pytest.raises(NotFittedError):
        SSD().score(test)
    with pytest.raises(MissingInputError, match="labels"):
        SSD(use_labels=True).fit(FeatureSet(features=train.features))
    with pytest.raises(ValueError, match="clusters"):
        SSD(clusters=0)
    with pytest.raises(ValueError, match="leave clusters at 1"):
        SSD(clusters=3, use_labels=True)
    one_point_class = FeatureSet(features=train.features[:5], labels=np.array([0, 0, 0, 0, 1]))
    with pytest.raises(ValueError, match="at least 2 points"):
        SSD(use_labels=True).fit(one_point_class)


def test_sweep_rows_carry_the_setting(data):
    train, test = data
    ood = {"far": FeatureSet(features=test.features + 5), "near": FeatureSet(features=test.features[::-1] * 1.1)}
    rows = sweep_clusters(train, test, ood, [1, 3], id_dataset="toy", seed=2, training_mode="SimCLR")
    assert [(r["setting"], r["ood_dataset"]) for r in rows] == [
        ("clusters=1", "far"),
        ("clusters=1", "near"),
        ("clusters=3", "far"),
        ("clusters=3", "near"),
    ]
    assert all(r["method"] == "SSD" and r["seed"] == 2 and r["training_mode"] == "SimCLR" for r in rows)
    detector = SSD(clusters=3, seed=2).fit(train)
    assert rows[2]["auroc"] == pytest.approx(auroc(detector.score(test), detector.score(ood["far"])))


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("settings", [{"clusters": 1}, {"clusters": 3}, {"use_labels": True}])
def test_torch_path_gives_the_numpy_scores(data, settings, device):
    """SSD(device=...) computes the same maths in torch float64: equal to the reference to float rounding."""
    train, test = data
    on_torch = SSD(seed=0, device=device, **settings).fit(train)
    on_numpy = SSD(seed=0, **settings).fit(train)
    np.testing.assert_array_equal(on_torch.train_clusters_, on_numpy.train_clusters_)
    np.testing.assert_allclose(on_torch.score(test), on_numpy.score(test), rtol=1e-9, atol=1e-9)
    expected = -reference_ssd(train.features, test.features, on_numpy.train_clusters_)
    np.testing.assert_allclose(on_torch.score(test), expected, rtol=1e-6, atol=1e-6)


def test_torch_path_keeps_numpys_cutoff_on_a_singular_covariance():
    """Fewer points than dimensions: the covariance is singular; both paths drop the same null space."""
    rng = np.random.default_rng(1)
    train = FeatureSet(features=rng.standard_normal((8, 20)).astype(np.float32))
    test = FeatureSet(features=rng.standard_normal((5, 20)).astype(np.float32))
    expected = -reference_ssd(train.features, test.features, np.zeros(8, dtype=int))
    np.testing.assert_allclose(SSD(device="cpu").fit(train).score(test), expected, rtol=1e-6)
    np.testing.assert_allclose(SSD().fit(train).score(test), expected, rtol=1e-6)


def test_well_conditioned_covariance_scores_by_cholesky_and_equals_pinv(data):
    """A full-rank covariance takes the triangular solve; its distances equal (x - mu)^T pinv(S) (x - mu)."""
    train, test = data
    gaussian = SSD().fit(train).gaussians_[0]
    assert gaussian.cholesky is not None and gaussian.precision is None
    z = SSD().fit(train).standardizer_(test.features)
    cov = np.cov(SSD().fit(train).standardizer_(train.features).T, bias=True)
    d = z - gaussian.mean
    np.testing.assert_allclose(
        gaussian.squared_distance(z), np.einsum("ij,jk,ik->i", d, np.linalg.pinv(cov), d), rtol=1e-10
    )


def test_singular_and_ill_conditioned_covariances_take_pinv():
    """Where pinv's cutoff could matter (rank-deficient, or condition estimate below 1e-8) the pinv path is kept."""
    rng = np.random.default_rng(2)
    singular = rng.standard_normal((8, 20))
    assert Gaussian.fit(singular).cholesky is None
    basis = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    ill = basis @ np.diag([1.0, 1.0, 1.0, 1.0, 1.0, 1e-11]) @ basis.T  # positive definite, condition 1e11
    gaussian = Gaussian.fit(rng.standard_normal((50, 6)), covariance=ill)
    assert gaussian.cholesky is None
    np.testing.assert_allclose(gaussian.precision, np.linalg.pinv(ill, hermitian=True))
    fine = basis @ np.diag([1.0, 2.0, 3.0, 4.0, 5.0, 1e-3]) @ basis.T
    assert Gaussian.fit(rng.standard_normal((50, 6)), covariance=fine).cholesky is not None
