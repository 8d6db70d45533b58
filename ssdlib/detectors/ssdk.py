"""SSD_k: few-shot OOD detection with k known outliers per OOD class (Sehwag et al. 2021, Sec. 3.2).

As SSD's ``eval_ssdk.py`` computes it:

1. Shuffle the OOD test set (seeded here, unseeded there) and take the first k images of each of
   its classes as *known* outliers; the rest is the evaluation set (the known ones leave it).
2. Expand each known image into ``copies`` SimCLR-augmented views (none is the plain image).
3. Preprocess every feature as SSD does (L2, then z-score with the ID-train mean and std).
4. s(x) = d_in(x) - d_ood(x): squared Mahalanobis distances to the ID train features and to the
   known-OOD views, one cluster each, both with Ledoit-Wolf covariances (``ledoit_wolf(X)[0]``,
   not centred beforehand) and pinv. Ledoit-Wolf also for d_in, unlike plain SSD.

ssdlib returns -s(x) = d_ood(x) - d_in(x) (higher = more ID). Differences from the original: the
augmentations run on float tensors (``ssdlib.training.augment.simclr_augment``) instead of PIL images, so
there is no uint8 truncation, and every random choice is seeded.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.covariance import ledoit_wolf

from ssdlib.detectors.base import Detector, FeatureSet, MissingInputError, NotFittedError
from ssdlib.detectors.ssd import Gaussian, Standardizer
from ssdlib.features import extract, subset
from ssdlib.training.augment import simclr_augment


def split_known_outliers(labels, k: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the known outliers (the first ``k`` of each class after a seeded shuffle) and of the rest.

    A class with fewer than ``k`` images gives all of them. Both index arrays are sorted.
    """
    labels = np.asarray(labels)
    if k < 1:
        raise ValueError(f"k (known outliers per OOD class) must be at least 1, got {k}")
    order = np.random.default_rng(seed).permutation(len(labels))
    known = np.sort(np.concatenate([order[labels[order] == c][:k] for c in np.unique(labels)]))
    rest = np.setdiff1d(np.arange(len(labels)), known)
    if len(rest) == 0:
        raise ValueError(f"k={k} takes every image of the OOD set as known, leaving nothing to evaluate; lower k")
    return known, rest


def augmented_views(images: torch.Tensor, copies: int, *, seed: int = 0) -> torch.Tensor:
    """``copies`` SimCLR views of each image [n, 3, H, W] in [0, 1]; view i is of image ``i mod n``."""
    if copies < 1:
        raise ValueError(f"copies (views per known outlier) must be at least 1, got {copies}")
    generator = torch.Generator(device=images.device).manual_seed(seed)
    return simclr_augment(images.repeat(copies, 1, 1, 1), generator=generator)


def _ledoit_wolf_gaussian(z: np.ndarray) -> Gaussian:
    return Gaussian.fit(z, ledoit_wolf(z)[0])


class SSDk(Detector):
    """SSD_k: score = d_ood(x) - d_in(x), Ledoit-Wolf covariances, one cluster each.

    ``fit`` takes the ID train features, as for every detector. The known outliers' features
    (e.g. :func:`augmented_views` through ``ssdlib.features.extract``; at least two) are given at
    construction, ``SSDk(known).fit(train)``, or afterwards with :meth:`with_known_outliers`, which
    reuses the fitted ID statistics: a grid over k and copies fits the ID side once.
    """

    name = "SSD_k"

    def __init__(self, known_ood: FeatureSet | None = None) -> None:
        super().__init__()
        self.known_ood = known_ood

    def _outlier_gaussian(self, known_ood: FeatureSet) -> Gaussian:
        known = known_ood.require("features", f"{self.name} (known outliers)")
        if len(known) < 2:
            raise ValueError(
                f"{self.name} needs at least 2 known-outlier views for a covariance, got {len(known)}: "
                "raise k or copies"
            )
        return _ledoit_wolf_gaussian(self.standardizer_(known))

    def _fit(self, train: FeatureSet) -> None:
        features = train.require("features", self.name)
        self.standardizer_ = Standardizer.fit(features)
        self.inliers_ = _ledoit_wolf_gaussian(self.standardizer_(features))
        self.outliers_ = None if self.known_ood is None else self._outlier_gaussian(self.known_ood)

    def with_known_outliers(self, known_ood: FeatureSet) -> SSDk:
        """A fitted SSD_k with this one's ID statistics and the outliers ``known_ood`` (this one is unchanged)."""
        if not self._fitted:
            raise NotFittedError(f"{self.name}: call fit() on ID training data before with_known_outliers()")
        other = copy.copy(self)
        other.known_ood, other.outliers_ = known_ood, self._outlier_gaussian(known_ood)
        return other

    def _score(self, data: FeatureSet) -> np.ndarray:
        if self.outliers_ is None:
            raise MissingInputError(f"{self.name} has no known outliers: pass known_ood= or use with_known_outliers()")
        z = self.standardizer_(data.require("features", self.name))
        return self.outliers_.squared_distance(z) - self.inliers_.squared_distance(z)


@dataclass
class SSDkResult:
    """Scores of one SSD_k evaluation and the set sizes SSD prints."""

    id_scores: np.ndarray
    ood_scores: np.ndarray  # of the evaluation remainder only
    known: int  # k x classes
    views: int  # known x copies
    evaluated: int


def _images(data, index) -> torch.Tensor:
    """Images ``index`` of a Dataset yielding (image, label) or of an image tensor [N, 3, H, W]."""
    items = [data[int(i)] for i in index]
    return torch.stack([torch.as_tensor(x[0] if isinstance(x, (tuple, list)) else x) for x in items])


def evaluate_ssdk(
    model,
    detector: SSDk,
    id_test: FeatureSet,
    ood_data,
    ood: FeatureSet,
    *,
    k: int,
    copies: int,
    seed: int = 0,
    device="cpu",
    batch_size: int = 256,
) -> SSDkResult:
    """SSD_k on one OOD set: draw the known outliers, extract their views, score ID test and the remainder.

    ``detector`` is an :class:`SSDk` fitted on the ID train features; ``ood_data`` (a Dataset or an
    image tensor; only the known outliers are read) and ``ood`` (its features, with class labels)
    hold the same set in the same order.
    """
    labels = ood.require("labels", "SSD_k (OOD class labels pick k known outliers per class)")
    if len(ood_data) != len(labels):
        raise ValueError(f"ood_data has {len(ood_data)} images but ood has {len(labels)} rows; pass the same set")
    known, keep = split_known_outliers(labels, k, seed=seed)
    views = augmented_views(_images(ood_data, known), copies, seed=seed)
    fitted = detector.with_known_outliers(extract(model, views, device, batch_size, desc="known outliers"))
    return SSDkResult(fitted.score(id_test), fitted.score(subset(ood, keep)), len(known), len(views), len(keep))
