"""SSD: k-means clusters of normalised features, scored by the squared Mahalanobis distance.

Sehwag et al. 2021 (ICLR), Sec. 3, as their ``eval_ssd.py`` computes it:

1. f <- f / (||f||_2 + 1e-10), then z-score each dimension with the mean and (ddof 0) std of the
   normalised ID *train* features (+1e-10). Only the L2 step changes the scores: the Mahalanobis
   distance with a full covariance is invariant to the per-dimension affine map, which is there
   for the conditioning of the pseudo-inverse.
2. Split the train features into C clusters (k-means, or the class labels).
3. Per cluster c: mean mu_c, population covariance Sigma_c (``np.cov(bias=True)``), P_c = pinv(Sigma_c)
   in float64. Covariances are per cluster, not tied as in Lee et al. 2018.
4. d(x) = min_c (x - mu_c)^T P_c (x - mu_c), squared, without sqrt or -1/2.

ssdlib returns -d(x) (higher = more ID). SSD+ is this same detector on a SupCon-trained encoder;
``use_labels=True`` clusters by class instead (SSD's SupCE case, or SSD+ with labels at test time).

k-means differs from SSD's faiss call (``faiss.Kmeans(d, C, niter=100)``): scikit-learn seeds with
k-means++ where faiss takes random training points, and faiss trains on a random subsample of
256*C points (its ``max_points_per_centroid``) where this uses every point unless
``points_per_cluster=256`` asks for the same subsample. SSD also leaves the shuffle unseeded; here
``seed`` fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans

from ssdlib.detectors.base import Detector, FeatureSet, l2_normalize
from ssdlib.results import row

EPS = 1e-10  # SSD's epsilon for the std
KMEANS_ITERATIONS = 100  # faiss niter in eval_ssd.py


@dataclass(frozen=True)
class Standardizer:
    """SSD's preprocessing: L2-normalise, then z-score with the ID-train mean and std."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, train_features: np.ndarray) -> "Standardizer":
        unit = l2_normalize(train_features)
        return cls(mean=unit.mean(axis=0), std=unit.std(axis=0))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return (l2_normalize(features) - self.mean) / (self.std + EPS)


@dataclass(frozen=True)
class Gaussian:
    """A mean and the pseudo-inverse of a covariance: the squared Mahalanobis distance to them."""

    mean: np.ndarray
    precision: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, covariance: np.ndarray | None = None) -> "Gaussian":
        """Mean of ``x`` and pinv of ``covariance`` (default: the population covariance of ``x``)."""
        if len(x) < 2:
            raise ValueError(
                f"a Gaussian needs at least 2 points, got {len(x)}: use fewer clusters or more known samples"
            )
        cov = np.cov(x, rowvar=False, bias=True) if covariance is None else covariance
        return cls(mean=x.mean(axis=0), precision=np.linalg.pinv(np.asarray(cov, dtype=np.float64)))

    def squared_distance(self, x: np.ndarray) -> np.ndarray:
        d = x - self.mean
        return np.sum((d @ self.precision) * d, axis=1)


class SSD(Detector):
    """SSD / SSD+ (Sehwag et al. 2021): score = -min_c squared Mahalanobis distance to cluster c.

    ``clusters``: k-means clusters of the ID train features (SSD's ``--clusters``, default 1).
    ``use_labels``: one cluster per class of the train labels instead of k-means (SSD's SupCE case).
    ``points_per_cluster``: fit k-means on a random subsample of this many points per cluster, as
    faiss does with 256; None fits on all points. After fitting, ``train_clusters_`` holds each
    train point's cluster.
    """

    name = "SSD"

    def __init__(self, clusters: int = 1, seed: int = 0, use_labels: bool = False,
                 points_per_cluster: int | None = None) -> None:
        super().__init__()
        if not isinstance(clusters, (int, np.integer)) or clusters < 1:
            raise ValueError(f"clusters must be a positive integer, got {clusters!r}")
        if use_labels and clusters != 1:
            raise ValueError("use_labels=True takes one cluster per class; leave clusters at 1")
        if points_per_cluster is not None and points_per_cluster < 1:
            raise ValueError(f"points_per_cluster must be positive or None, got {points_per_cluster!r}")
        self.clusters, self.seed, self.use_labels = int(clusters), seed, use_labels
        self.points_per_cluster = points_per_cluster

    def _assign(self, z: np.ndarray, train: FeatureSet) -> np.ndarray:
        if self.use_labels:
            return np.asarray(train.require("labels", f"{self.name} with use_labels=True"))
        if self.clusters == 1:
            return np.zeros(len(z), dtype=np.int64)
        if self.clusters > len(z):
            raise ValueError(f"{self.clusters} clusters need at least as many train points, got {len(z)}")
        sample = z
        if self.points_per_cluster is not None and self.points_per_cluster * self.clusters < len(z):
            pick = np.random.default_rng(self.seed).choice(len(z), self.points_per_cluster * self.clusters,
                                                           replace=False)
            sample = z[pick]
        kmeans = KMeans(self.clusters, n_init=1, max_iter=KMEANS_ITERATIONS, random_state=self.seed).fit(sample)
        return kmeans.predict(z)

    def _fit(self, train: FeatureSet) -> None:
        features = train.require("features", self.name)
        self.standardizer_ = Standardizer.fit(features)
        z = self.standardizer_(features)
        self.train_clusters_ = self._assign(z, train)
        self.gaussians_ = [Gaussian.fit(z[self.train_clusters_ == c]) for c in np.unique(self.train_clusters_)]

    def _score(self, data: FeatureSet) -> np.ndarray:
        z = self.standardizer_(data.require("features", self.name))
        return -np.min([g.squared_distance(z) for g in self.gaussians_], axis=0)


METHOD_NAMES = {"SimCLR": "SSD", "SupCon": "SSD+", "SupCE": "SSD (SupCE)"}


def method_name(training_mode: str) -> str:
    """The paper's name of SSD on an encoder of ``training_mode``: SSD (SimCLR), SSD+ (SupCon)."""
    if training_mode not in METHOD_NAMES:
        raise ValueError(f"unknown training mode {training_mode!r}; choose one of {', '.join(METHOD_NAMES)}")
    return METHOD_NAMES[training_mode]


def split_scores(detector: Detector, features) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A fitted detector's scores of ID test and of each OOD set (``features``: ``ssdlib.features.SplitFeatures``)."""
    return detector.score(features.test), {name: detector.score(fs) for name, fs in features.ood.items()}


def ood_rows(method: str, id_scores, ood_scores: dict[str, np.ndarray], *, id_dataset: str, **info) -> list[dict]:
    """One result row per OOD set (``ssdlib.results.row``), all against the same ID-test scores."""
    return [row(method, id_scores, s, ood_dataset=name, id_dataset=id_dataset, **info) for name, s in ood_scores.items()]


def sweep_clusters(train: FeatureSet, id_test: FeatureSet, ood: dict[str, FeatureSet], clusters, *,
                   id_dataset: str, seed: int = 0, method: str = "SSD", **info) -> list[dict]:
    """Rows of SSD fitted with each cluster count in ``clusters``; ``setting`` says "clusters=C"."""
    rows = []
    for c in clusters:
        detector = SSD(clusters=c, seed=seed).fit(train)
        scores = {name: detector.score(fs) for name, fs in ood.items()}
        rows += ood_rows(method, detector.score(id_test), scores, id_dataset=id_dataset,
                         setting=f"clusters={c}", **{"seed": seed, **info})
    return rows
