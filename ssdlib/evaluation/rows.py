"""Result rows of detector scores, and SSD's sweeps that produce them (the table ``results.record`` keeps).

Kept apart from the detectors, which only fit and score: ``ood_rows`` turns one method's ID-test
and OOD scores into one ``ssdlib.evaluation.results.row`` per OOD set; ``method_name`` gives the
papers' name of SSD on each kind of encoder (SSD, SSD+).
"""

from __future__ import annotations

import numpy as np

from ssdlib.detectors.base import Detector, FeatureSet
from ssdlib.detectors.ssd import SSD
from ssdlib.detectors.ssdk import SSDk, evaluate_ssdk
from ssdlib.evaluation.results import row
from ssdlib.training import methods as training_methods
from ssdlib.training.methods import encoder_modes


def method_name(training_mode: str) -> str:
    """The paper's name of SSD on an encoder of ``training_mode``: SSD (SimCLR), SSD+ (SupCon), as each
    training method declares it (:mod:`ssdlib.training.methods`)."""
    name = training_methods.get(training_mode).ssd_name
    if name is None:
        raise ValueError(f"SSD does not score {training_mode} features; choose one of {', '.join(encoder_modes())}")
    return name


def split_scores(detector: Detector, features) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A fitted detector's scores of ID test and of each OOD set (``features``: ``ssdlib.features.SplitFeatures``)."""
    return detector.score(features.test), {name: detector.score(fs) for name, fs in features.ood.items()}


def ood_rows(method: str, id_scores, ood_scores: dict[str, np.ndarray], *, id_dataset: str, **info) -> list[dict]:
    """One result row per OOD set (``ssdlib.evaluation.results.row``), all against the same ID-test scores."""
    return [
        row(method, id_scores, s, ood_dataset=name, id_dataset=id_dataset, **info) for name, s in ood_scores.items()
    ]


def sweep_clusters(
    train: FeatureSet,
    id_test: FeatureSet,
    ood: dict[str, FeatureSet],
    clusters,
    *,
    id_dataset: str,
    seed: int = 0,
    method: str = "SSD",
    kmeans: str = "sklearn",
    **info,
) -> list[dict]:
    """Rows of SSD fitted with each cluster count in ``clusters`` (k-means by ``kmeans``, see
    :class:`~ssdlib.detectors.ssd.SSD`); ``setting`` says "clusters=C"."""
    rows = []
    for c in clusters:
        detector = SSD(clusters=c, seed=seed, kmeans=kmeans).fit(train)
        scores = {name: detector.score(fs) for name, fs in ood.items()}
        rows += ood_rows(
            method,
            detector.score(id_test),
            scores,
            id_dataset=id_dataset,
            setting=f"clusters={c}",
            **{"seed": seed, **info},
        )
    return rows


def ssdk_grid(
    model,
    train: FeatureSet,
    id_test: FeatureSet,
    ood_data: dict,
    ood: dict[str, FeatureSet],
    ks,
    copies,
    *,
    id_dataset: str,
    seed: int = 0,
    device="cpu",
    batch_size: int = 256,
    **info,
) -> list[dict]:
    """Result rows of SSD_k for every OOD set, k in ``ks`` and copies in ``copies`` ("k=K,copies=C");
    ``ood_data`` maps each set's name to its Dataset (or image tensor)."""
    detector = SSDk().fit(train)
    rows = []
    for name, features in ood.items():
        for k in ks:
            for c in copies:
                r = evaluate_ssdk(
                    model,
                    detector,
                    id_test,
                    ood_data[name],
                    features,
                    k=k,
                    copies=c,
                    seed=seed,
                    device=device,
                    batch_size=batch_size,
                )
                rows.append(
                    row(
                        "SSD_k",
                        r.id_scores,
                        r.ood_scores,
                        ood_dataset=name,
                        id_dataset=id_dataset,
                        setting=f"k={k},copies={c}",
                        **{"seed": seed, **info},
                    )
                )
    return rows
