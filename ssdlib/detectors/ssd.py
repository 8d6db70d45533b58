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

k-means: SSD's ``eval_ssd.py`` runs ``faiss.Kmeans(d, C, niter=100, verbose=False, gpu=False)``,
trained on ``np.random.permutation(ftrain)`` and then ``assign``-ed. ``kmeans="faiss"`` does exactly
that (faiss seeds with C random training points and trains on a random subsample of 256*C points,
its ``max_points_per_centroid``). The default, ``kmeans="sklearn"``, is scikit-learn's k-means: seeded
with k-means++, at most 100 iterations, on every point unless ``points_per_cluster=256`` asks for
faiss's subsample. On well-separated clusters the two find the same partition; on real features
they may settle in different local optima. SSD leaves the shuffle (and so faiss's picks) unseeded;
here ``seed`` fixes the shuffle, faiss's seed and scikit-learn's.

The covariance is the centred Gram matrix / N (``np.cov(bias=True)``'s value). In numpy, when
LAPACK's condition estimate of it (``dpocon`` on its Cholesky factor L) is at least 1e-8, no
eigenvalue comes near pinv's cutoff (1e-15 x the largest), so pinv is the inverse and the distance
is computed as ||L^-1 (x - mu)||^2 by a triangular solve: half the work of ``(x - mu) @ P`` and a
tenth of an eigendecomposition's. A singular or ill-conditioned covariance (fewer points than
dimensions, constant features) takes pinv from the symmetric eigendecomposition
(``pinv(hermitian=True)``, numpy's cutoff), as does the torch path. Both agree with SSD's
``np.cov`` + ``pinv`` to float rounding (tests/test_ssd.py). With ``device`` set, standardisation,
covariances, pseudo-inverses and distances run in torch float64 on that device (a GPU scores
50 000 x 2048 features in well under a second, ``./run bench``); numpy stays the default because
its float64 BLAS is faster on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.linalg import cho_factor, solve_triangular
from scipy.linalg.lapack import dpocon
from sklearn.cluster import KMeans

from ssdlib.detectors.base import L2_EPS, Detector, FeatureSet, l2_normalize

EPS = 1e-10  # SSD's epsilon for the std
KMEANS_ITERATIONS = 100  # faiss niter in eval_ssd.py
KMEANS_BACKENDS = ("sklearn", "faiss")
PINV_RTOL = 1e-15  # numpy's pinv cutoff, relative to the largest singular value
CHOLESKY_MIN_RCOND = 1e-8  # below this condition estimate, pinv (its cutoff may matter) instead of Cholesky
Array = np.ndarray | torch.Tensor  # numpy on the CPU, a float64 tensor on ``SSD(device=...)``


def _namespace(x: Array):
    """numpy or torch, whichever ``x`` belongs to (for the calls they spell alike)."""
    return torch if isinstance(x, torch.Tensor) else np


def _faiss():
    """The faiss module, with a message saying how to get it (it is only needed for ``kmeans="faiss"``)."""
    try:
        import faiss  # local: faiss is optional
    except ImportError as e:
        raise ImportError("SSD(kmeans='faiss') needs faiss: pip install faiss-cpu (or use kmeans='sklearn')") from e
    return faiss


def _pinv(matrix: Array) -> Array:
    """Pseudo-inverse of a symmetric PSD matrix, numpy's cutoff for numpy and torch alike."""
    if isinstance(matrix, torch.Tensor):
        return torch.linalg.pinv(matrix, rtol=PINV_RTOL, hermitian=True)
    return np.linalg.pinv(matrix, hermitian=True)


def _well_conditioned_cholesky(covariance: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor of a numpy covariance whose condition estimate clears CHOLESKY_MIN_RCOND, else None."""
    try:
        factor, _ = cho_factor(covariance, lower=True, check_finite=False)
    except np.linalg.LinAlgError:  # not positive definite: singular
        return None
    one_norm = np.abs(covariance).sum(0).max()
    rcond, info = dpocon(factor, one_norm, uplo="L")
    if info != 0 or not rcond >= CHOLESKY_MIN_RCOND:
        return None
    return np.tril(factor)


@dataclass(frozen=True)
class Standardizer:
    """SSD's preprocessing: L2-normalise, then z-score with the ID-train mean and std."""

    mean: Array
    std: Array
    device: torch.device | None = None

    @staticmethod
    def _unit(features, device: torch.device | None) -> Array:
        """A fresh float64 copy of ``features`` with rows at unit norm (safe to change in place)."""
        if device is None:
            return l2_normalize(features)
        x = torch.as_tensor(features).to(device, torch.float64, copy=True)
        x /= x.norm(dim=1, keepdim=True) + L2_EPS
        return x

    @classmethod
    def fit_transform(cls, train_features, device: str | torch.device | None = None) -> tuple[Standardizer, Array]:
        """Fit on the train features and return them standardised too (one float64 copy, changed in
        place: at 50 000 x 2048 every extra copy costs as much as a step of the fit)."""
        device = None if device is None else torch.device(device)
        x = cls._unit(train_features, device)
        mean = x.mean(0)
        x -= mean
        std = _namespace(x).einsum("ij,ij->j", x, x) / len(x)
        std **= 0.5
        x /= std + EPS
        return cls(mean=mean, std=std, device=device), x

    @classmethod
    def fit(cls, train_features, device: str | torch.device | None = None) -> Standardizer:
        """Mean and (population) std of the unit train features; with ``device``, float64 tensors on it."""
        return cls.fit_transform(train_features, device)[0]

    def __call__(self, features) -> Array:
        x = self._unit(features, self.device)
        x -= self.mean
        x /= self.std + EPS
        return x


@dataclass(frozen=True)
class Gaussian:
    """A mean and a covariance's inverse: the squared Mahalanobis distance to them.

    The inverse is ``precision`` (a pseudo-inverse) or, for a well-conditioned numpy covariance,
    ``cholesky``, its lower Cholesky factor L (then ``precision`` is None; see the module's note).
    """

    mean: Array
    precision: Array | None
    cholesky: np.ndarray | None = None

    @classmethod
    def fit(cls, x: Array, covariance: Array | None = None, *, overwrite_x: bool = False) -> Gaussian:
        """Mean of ``x`` and pinv of ``covariance`` (default: the population covariance of ``x``).

        ``x`` is a float64 numpy array, or a float64 tensor (then everything stays on its device).
        ``overwrite_x``: centre ``x`` in place rather than in a copy (for callers that own it).
        """
        if len(x) < 2:
            raise ValueError(
                f"a Gaussian needs at least 2 points, got {len(x)}: use fewer clusters or more known samples"
            )
        mean = x.mean(0)
        if covariance is None:
            centred = x if overwrite_x else x.copy() if isinstance(x, np.ndarray) else x.clone()
            centred -= mean
            covariance = centred.T @ centred / len(x)
        elif not isinstance(x, torch.Tensor):
            covariance = np.asarray(covariance, dtype=np.float64)
        if not isinstance(covariance, torch.Tensor):
            factor = _well_conditioned_cholesky(covariance)
            if factor is not None:
                return cls(mean=mean, precision=None, cholesky=factor)
        return cls(mean=mean, precision=_pinv(covariance))

    def squared_distance(self, x: Array) -> Array:
        d = x - self.mean
        if self.cholesky is not None:
            whitened = solve_triangular(self.cholesky, d.T, lower=True, check_finite=False)
            return np.einsum("ij,ij->j", whitened, whitened)
        return _namespace(d).einsum("ij,ij->i", d @ self.precision, d)


class SSD(Detector):
    """SSD / SSD+ (Sehwag et al. 2021): score = -min_c squared Mahalanobis distance to cluster c.

    ``clusters``: k-means clusters of the ID train features (SSD's ``--clusters``, default 1).
    ``use_labels``: one cluster per class of the train labels instead of k-means (SSD's SupCE case).
    ``kmeans``: ``"sklearn"`` (default; k-means++ seeding) or ``"faiss"`` (SSD's own call:
    ``faiss.Kmeans(niter=100)`` on the shuffled train features, random initial points; needs
    ``pip install faiss-cpu``).
    ``points_per_cluster``: fit k-means on a random subsample of this many points per cluster;
    None is each backend's own default: every point for scikit-learn, 256 per cluster for faiss
    (its ``max_points_per_centroid``, as SSD ran it). ``device``: compute in torch float64 there
    (e.g. ``"cuda"``) instead of numpy; k-means stays on the CPU. After fitting,
    ``train_clusters_`` holds each train point's cluster and, where k-means ran, ``centroids_`` its
    centroids (in the standardised feature space; None otherwise).
    """

    name = "SSD"

    def __init__(
        self,
        clusters: int = 1,
        seed: int = 0,
        use_labels: bool = False,
        points_per_cluster: int | None = None,
        device: str | torch.device | None = None,
        kmeans: Literal["sklearn", "faiss"] = "sklearn",
    ) -> None:
        super().__init__()
        if not isinstance(clusters, (int, np.integer)) or clusters < 1:
            raise ValueError(f"clusters must be a positive integer, got {clusters!r}")
        if use_labels and clusters != 1:
            raise ValueError("use_labels=True takes one cluster per class; leave clusters at 1")
        if points_per_cluster is not None and points_per_cluster < 1:
            raise ValueError(f"points_per_cluster must be positive or None, got {points_per_cluster!r}")
        if kmeans not in KMEANS_BACKENDS:
            raise ValueError(f"unknown k-means backend {kmeans!r}; choose one of {KMEANS_BACKENDS}")
        if kmeans == "faiss":
            _faiss()  # fail at construction, not after the features are extracted
        self.clusters, self.seed, self.use_labels = int(clusters), seed, use_labels
        self.kmeans = kmeans
        self.points_per_cluster = points_per_cluster
        self.device = device

    def _assign(self, z: Array, train: FeatureSet) -> np.ndarray:
        if self.use_labels:
            return np.asarray(train.require("labels", f"{self.name} with use_labels=True"))
        if self.clusters == 1:
            return np.zeros(len(z), dtype=np.int64)
        if self.clusters > len(z):
            raise ValueError(f"{self.clusters} clusters need at least as many train points, got {len(z)}")
        z = z.cpu().numpy() if isinstance(z, torch.Tensor) else z
        if self.kmeans == "faiss":
            return self._assign_faiss(z)
        sample = z
        if self.points_per_cluster is not None and self.points_per_cluster * self.clusters < len(z):
            pick = np.random.default_rng(self.seed).choice(
                len(z), self.points_per_cluster * self.clusters, replace=False
            )
            sample = z[pick]
        kmeans = KMeans(self.clusters, n_init=1, max_iter=KMEANS_ITERATIONS, random_state=self.seed).fit(sample)
        self.centroids_ = kmeans.cluster_centers_
        return kmeans.predict(z)

    def _assign_faiss(self, z: np.ndarray) -> np.ndarray:
        """SSD's ``get_clusters``: faiss k-means on the shuffled points, then each point's nearest centroid.

        SSD's shuffle is unseeded and faiss's seed is its default (1234); both come from ``seed`` here.
        """
        faiss = _faiss()
        z = np.ascontiguousarray(z, dtype=np.float32)  # faiss works in float32
        options = {"seed": int(self.seed)}
        if self.points_per_cluster is not None:
            options["max_points_per_centroid"] = int(self.points_per_cluster)
        kmeans = faiss.Kmeans(z.shape[1], self.clusters, niter=KMEANS_ITERATIONS, verbose=False, gpu=False, **options)
        kmeans.train(z[np.random.default_rng(self.seed).permutation(len(z))])
        self.centroids_ = kmeans.centroids
        _, assigned = kmeans.assign(z)
        return np.asarray(assigned, dtype=np.int64).ravel()

    def _fit(self, train: FeatureSet) -> None:
        self.centroids_ = None
        self.standardizer_, z = Standardizer.fit_transform(train.require("features", self.name), self.device)
        self.train_clusters_ = self._assign(z, train)
        names = np.unique(self.train_clusters_)
        if len(names) == 1:  # z is this method's own copy: centre it in place
            self.gaussians_ = [Gaussian.fit(z, overwrite_x=True)]
            return
        clusters = (
            torch.as_tensor(self.train_clusters_, device=z.device)
            if isinstance(z, torch.Tensor)
            else self.train_clusters_
        )
        self.gaussians_ = [Gaussian.fit(z[clusters == c], overwrite_x=True) for c in names]  # masks copy

    def _score(self, data: FeatureSet) -> np.ndarray:
        z = self.standardizer_(data.require("features", self.name))
        distances = [g.squared_distance(z) for g in self.gaussians_]
        if isinstance(z, torch.Tensor):
            return -torch.stack(distances).amin(0).cpu().numpy()
        return -np.min(distances, axis=0)
