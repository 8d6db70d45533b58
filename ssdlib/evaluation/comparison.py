"""Every method of the package on one profile, scored on the same ID test and OOD sets (notebook 05).

One :class:`~ssdlib.evaluation.baselines.Scored` per method, all against ``bundle.test``:

- the post-hoc baselines of ``P.baselines.methods`` on the SupCE classifier (KNN there is
  "KNN w/o contrastive learning"), GODIN on its own network;
- KNN+ (Sun et al. 2022): the same KNN on the SupCon encoder's features, with ``baselines.knn_plus``;
- SSD (SimCLR encoder) and SSD+ (SupCon encoder), one cluster, as SSD's default, unless
  ``ssd.in_comparison`` is off (the SSOD profiles: then no SimCLR encoder is trained);
- CSI (Tack et al. 2020) on its own network, with ``csi.in_comparison``;
- SSOD (``ssdlib.ssod.runs``), when asked;
- MOS (Huang & Li 2021): the CE classifier with a fine-tuned group head (``ssdlib.mos``), when
  ``mos.groups`` is set.

Models come from ``ssdlib.experiment`` (trained once per output folder and shared with the other
notebooks). Also here: the OOD images each method trusts most (Fig. 4 of SSOD) and the
side-by-side of our rows with a paper table whose ID set may differ (SSOD Table 3).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ssdlib import experiment, mos, needs
from ssdlib.detectors.csi import CSI
from ssdlib.detectors.mos import MOS, resolve
from ssdlib.detectors.ssd import SSD
from ssdlib.evaluation import baselines as bl
from ssdlib.feature_set import FeatureSet
from ssdlib.params import Params
from ssdlib.ssod import runs, scoring

if TYPE_CHECKING:
    from ssdlib.data.registry import DatasetBundle


def _sets(bundle: DatasetBundle) -> dict:
    return {"train": bundle.train, "test": bundle.test, **bundle.ood}  # ID val: a train hold-out (bl.add_validation)


def _with_info(scored: list[bl.Scored], **info) -> list[bl.Scored]:
    for s in scored:
        s.info = {**info, **s.info}
    return scored


def _ssd(name: str, cache: bl.FeatureCache, ood: list[str], mode: str, arch: str) -> bl.Scored:
    detector = SSD(clusters=1).fit(cache.plain("train"))
    return bl.Scored(
        name,
        "clusters=1",
        detector.score(cache.plain("test")),
        {o: detector.score(cache.plain(o)) for o in ood},
        info={"training_mode": mode, "arch": arch},
    )


def _csi(P: Params, bundle: DatasetBundle, output_dir, ood: list[str], device) -> bl.Scored:
    model = experiment.model_for(P, bundle, output_dir, "CSI")
    detector = CSI(samples=P.csi.ood_samples, crop=P.csi.score_crop, batch_size=P.data.batch_size)
    cache = bl.FeatureCache(model, _sets(bundle), device, P.data.batch_size)
    detector.fit(cache.represent(detector, "train"))
    return bl.Scored(
        "CSI",
        f"ood_samples={P.csi.ood_samples}, crop={P.csi.score_crop:g}",
        detector.score(cache.represent(detector, "test")),
        {o: detector.score(cache.represent(detector, o)) for o in ood},
        info={"training_mode": "CSI", "arch": P.encoder.arch},
    )


def _mos(P: Params, bundle: DatasetBundle, output_dir, classifier: bl.FeatureCache, ood: list[str]) -> bl.Scored:
    """MOS on the CE classifier's features (its encoder is frozen in MOS): no second pass over the images."""
    model = mos.trained(P, bundle, output_dir, frozen=classifier.plain("train"))
    groups = resolve(P.mos.groups)
    detector = MOS(groups).fit(FeatureSet())  # MOS estimates nothing from the training set
    return bl.Scored(
        "MOS",
        f"groups={len(groups)}",
        detector.score(mos.on_features(model, classifier.plain("test"))),
        {o: detector.score(mos.on_features(model, classifier.plain(o))) for o in ood},
        info={"training_mode": "MOS", "arch": P.encoder.arch},
    )


def _ssod(P: Params, bundle: DatasetBundle, output_dir, ood: list[str]) -> bl.Scored:
    run = runs.trained(P, bundle, output_dir)
    detector, id_scores, ood_scores, accuracy = scoring.scores(run, P, bundle, sets=ood)
    name = detector.name if run.cfg.alpha else "SSOD alpha=0 (MSP)"  # alpha 0 trains no OOD head
    return bl.Scored(
        name,
        run.label,
        id_scores,
        ood_scores,
        info={"training_mode": scoring.training_mode(run), "arch": run.cfg.backbone, "id_accuracy": accuracy},
    )


def score_all(P: Params, bundle: DatasetBundle, output_dir: str | Path, *, ssod: bool = True) -> list[bl.Scored]:
    """Scores of every method (see the module docstring) on ``bundle.test`` and each of ``bundle.ood``, on
    the models ``ssdlib.needs`` declares for notebook 05 (SSOD's only with ``ssod``)."""
    device = experiment.resolve_device(P.device)
    ood, arch, seed, size = list(bundle.ood), P.encoder.arch, P.seed, P.data.image_size
    trains = needs.comparison(P)

    def cache(mode: str) -> bl.FeatureCache:
        return bl.FeatureCache(
            experiment.model_for(P, bundle, output_dir, mode), _sets(bundle), device, P.data.batch_size
        )

    classifier = cache("SupCE")
    posthoc = [m for m in P.baselines.methods if m != "godin"]
    out = _with_info(
        bl.run(posthoc, P.baselines, classifier, ood, image_size=size, seed=seed),
        training_mode="SupCE",
        arch=arch,
        id_accuracy=bl.id_accuracy(classifier),
    )
    if "GODIN" in trains:
        godin = cache("GODIN")
        out += _with_info(
            bl.run(["godin"], P.baselines, godin, ood, image_size=size, seed=seed),
            training_mode="GODIN",
            arch=arch,
            id_accuracy=bl.id_accuracy(godin),
        )
    supcon = cache("SupCon") if "SupCon" in trains else None
    if P.baselines.knn_plus:
        out += _with_info(
            bl.run(["knn"], P.baselines, supcon, ood, image_size=size, seed=seed, names={"knn": "KNN+"}),
            training_mode="SupCon",
            arch=arch,
        )
    if "SimCLR" in trains:
        out.append(_ssd("SSD", cache("SimCLR"), ood, "SimCLR", arch))
        out.append(_ssd("SSD+", supcon, ood, "SupCon", arch))
    if "CSI" in trains:
        out.append(_csi(P, bundle, output_dir, ood, device))
    if ssod:
        out.append(_ssod(P, bundle, output_dir, ood))
    if "MOS" in trains:
        out.append(_mos(P, bundle, output_dir, classifier, ood))
    return out


def rows(scored: list[bl.Scored], P: Params, *, notebook: str, params_file: str | None = None) -> list[dict]:
    """Result rows of every method and OOD set (``ssdlib.evaluation.results.row``)."""
    return [
        r
        for s in scored
        for r in s.rows(id_dataset=P.data.id_dataset, notebook=notebook, params_file=params_file, seed=P.seed)
    ]


def most_trusted(scored: bl.Scored, top: int = 6) -> pd.DataFrame:
    """The ``top`` OOD images (over all sets) with the highest scores: set, index, score, and the
    share of ID test images scored lower ("ID percentile"; above 5 % means the classic FPR95
    threshold accepts the image as ID)."""
    sets = np.concatenate([[name] * len(s) for name, s in scored.ood_scores.items()])
    index = np.concatenate([np.arange(len(s)) for s in scored.ood_scores.values()])
    values = np.concatenate(list(scored.ood_scores.values()))
    order = np.argsort(-values, kind="stable")[:top]
    below = np.searchsorted(np.sort(scored.id_scores), values[order], side="left")
    return pd.DataFrame(
        {
            "method": scored.method,
            "ood_dataset": sets[order],
            "index": index[order],
            "score": values[order],
            "id_percentile": 100 * below / len(scored.id_scores),
        }
    )


def trusted_counts(scored: list[bl.Scored], top: int = 20) -> pd.DataFrame:
    """How many of each method's ``top`` most trusted OOD images come from each OOD set."""
    table = pd.concat([most_trusted(s, top) for s in scored])
    return pd.crosstab(table["method"], table["ood_dataset"]).reindex([s.method for s in scored]).fillna(0).astype(int)


def beside_paper(
    rows, targets: pd.DataFrame, *, paper: str, table: str, ood_dataset: str, metrics=("fpr95", "auroc")
) -> pd.DataFrame:
    """Our rows on ``ood_dataset`` next to a paper table's numbers for the same methods, in percent.

    Matched on method name only, so the ID sets may differ (the offline profile vs ImageNet in
    SSOD Table 3): the columns name both ID sets so that the comparison says what it compares.
    """
    rows = pd.DataFrame(rows)
    ours = rows[rows["ood_dataset"] == ood_dataset].groupby("method", sort=False)[list(metrics)].mean() * 100
    ref = targets[(targets["paper"] == paper) & (targets["table"] == table) & (targets["ood_dataset"] == ood_dataset)]
    if ref.empty:
        raise ValueError(
            f"no targets for {paper} {table} on {ood_dataset}; see ssdlib.evaluation.results.paper_targets()"
        )
    theirs = ref.pivot_table(index="method", columns="metric", values="value")[list(metrics)]
    our_id, their_id = "/".join(rows["id_dataset"].unique()), "/".join(ref["id_dataset"].unique())
    ours.columns = [f"ours {m} ({our_id})" for m in metrics]
    theirs.columns = [f"{paper} {table} {m} ({their_id})" for m in metrics]
    return ours.join(theirs, how="outer").reindex(list(dict.fromkeys([*ours.index, *theirs.index])))


def below_chance(rows) -> pd.DataFrame:
    """The (method, OOD set) pairs of ``rows`` whose AUROC is below 0.5: sets the method scores as *more*
    in-distribution than the ID test images, worst first."""
    rows = pd.DataFrame(rows)
    low = rows[rows["auroc"] < 0.5][["method", "ood_dataset", "auroc", "fpr95"]]
    return low.sort_values("auroc").reset_index(drop=True)


def images_of(bundle: DatasetBundle, picks: pd.DataFrame) -> list:
    """The [3, H, W] images of ``picks`` (rows of :func:`most_trusted`), from ``bundle.ood``."""
    return [bundle.ood[s][int(i)][0] for s, i in zip(picks["ood_dataset"], picks["index"])]
