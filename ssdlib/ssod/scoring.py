"""Scoring SSOD runs: pooled features, the run's detector (SSOD's OOD head, or MSP for the vanilla
classifier), scores and ID accuracy, and results rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ssdlib import metrics
from ssdlib.detectors.msp import MSP
from ssdlib.detectors.ssod import SSOD
from ssdlib.evaluation import results
from ssdlib.experiment import resolve_device
from ssdlib.feature_set import FeatureSet
from ssdlib.features import extract as extract_features
from ssdlib.params import Params
from ssdlib.ssod.model import SSODNet

if TYPE_CHECKING:
    from ssdlib.data.registry import DatasetBundle
    from ssdlib.ssod.runs import SSODRun


def ssod_features(
    model: SSODNet, data, device: torch.device | str, batch_size: int = 256, num_workers: int = 0, amp: bool = False
) -> FeatureSet:
    """Pooled features, logits and labels of a dataset (see ``ssdlib.features.extract``); ``amp``: autocast
    on CUDA, as SSOD trains (its scores are a sigmoid and a softmax, not a covariance)."""
    return extract_features(
        model, data, device=device, batch_size=batch_size, desc="SSOD features", num_workers=num_workers, amp=amp
    )


def detector_for(run: SSODRun, score: str | None = None):
    """The score of a run: SSOD's OOD head (``score``, default ``cfg.score``), or MSP for the
    vanilla classifier (alpha 0), whose OOD head was never trained."""
    return (MSP() if run.cfg.alpha == 0 else SSOD.from_model(run.model, score or run.cfg.score)).fit(FeatureSet())


def scores(run: SSODRun, P: Params, bundle: DatasetBundle, *, sets: list[str] | None = None, score: str | None = None):
    """The run's detector (:func:`detector_for`), its ID test scores, its scores of each OOD set (all of
    ``bundle.ood`` unless ``sets``) and its ID test accuracy."""
    device = resolve_device(P.device)
    det = detector_for(run, score)

    def features(data) -> FeatureSet:
        return ssod_features(run.model, data, device, P.data.batch_size, P.data.num_workers, run.cfg.amp)

    test = features(bundle.test)
    ood = {name: det.score(features(bundle.ood[name])) for name in sets or list(bundle.ood)}
    return det, det.score(test), ood, metrics.accuracy(test.logits, test.labels)


def training_mode(run: SSODRun) -> str:
    """``SSOD``, ``SSOD+SupCon`` for SSOD (w/), or ``CE`` for the vanilla classifier (alpha 0)."""
    if not run.cfg.alpha:
        return "CE"
    return "SSOD+SupCon" if run.cfg.supcon_weight else "SSOD"


def evaluate(
    run: SSODRun,
    P: Params,
    bundle: DatasetBundle,
    *,
    sets: list[str] | None = None,
    setting: str = "",
    score: str | None = None,
    notebook: str = "",
    params_file: str | None = None,
) -> list[dict[str, Any]]:
    """One results row per OOD set (all of ``bundle.ood`` unless ``sets``), with the run's ID
    accuracy; ``score`` ("ood" or "ood_x_msp") overrides ``cfg.score``."""
    det, id_scores, ood, accuracy = scores(run, P, bundle, sets=sets, score=score)
    method = det.name.replace("SSOD", "SSOD+", 1) if run.cfg.supcon_weight else det.name  # SSOD (w/), as KNN+
    return [
        results.row(
            method,
            id_scores,
            ood_scores,
            ood_dataset=name,
            id_dataset=P.data.id_dataset,
            training_mode=training_mode(run),
            arch=run.cfg.backbone,
            setting=setting or run.label,
            id_accuracy=accuracy,
            notebook=notebook,
            params_file=params_file,
            seed=P.seed,
        )
        for name, ood_scores in ood.items()
    ]
