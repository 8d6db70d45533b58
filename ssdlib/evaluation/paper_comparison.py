"""Each paper table a profile reproduces, this run's numbers beside the published ones: ``paper_comparison.md``.

``results.md`` shows what the notebooks recorded, under our names and on every set loaded. Whether a
run reproduces a paper is read off the paper's own tables instead: its method names, its OOD sets in
its order, and in each cell how far we are from the printed number. Two things make that more than a
join on names, and each is said once here:

- a paper's method is one of our rows only in a given training mode and setting (SSOD's "KNN (w/o)"
  is our KNN on the SupCE classifier, SSD's "SSD" our SSD with one cluster, SSOD's "SSOD (w/o)" our
  SSOD at the profile's own alpha and balance): :data:`COUNTERPARTS`;
- a profile names its sets as the loader reads them (``imagefolder:iNaturalist``, ``places365``), the
  targets as the papers print them (``inaturalist``, ``places``): :func:`set_key`.

The published numbers are ``results.paper_targets()``; the tables are laid out by ``results.paper_table``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from ssdlib.data.real import IMAGEFOLDER
from ssdlib.evaluation import results
from ssdlib.params import Params

REPORT_FILE = "paper_comparison.md"
ACCURACY = ""  # the targets' ood_dataset of an ID-accuracy number
METRICS = ("fpr95", "auroc")
EXTRA_METRICS = ("aupr_in", "aupr_out")  # shown where a table gives them (SSD's README: AUPR-Out)
SAME_SET = {"places": "places365"}  # the ImageNet tables print Places as "places", the CIFAR ones "places365"
PAPERS = {
    "SSD": "Sehwag et al. 2021",
    "SSOD": "Pei et al. 2023",
    "KNN": "Sun et al. 2022",
    "OpenOOD": "Zhang et al. 2023, OpenOOD v1.5",
}
PROFILE_SETTING = "<P.ssod's alpha and balance>"  # Counterpart.setting of the SSOD run the profile describes


@dataclass(frozen=True)
class Counterpart:
    """Our rows that stand for a paper's method: ``method`` and ``training_mode`` as the notebooks record
    them, and ``setting`` (None: the hyper-parameters the run recorded, whatever they are;
    :data:`PROFILE_SETTING`: the SSOD run of ``P.ssod`` itself, not an ablation)."""

    method: str
    training_mode: str
    setting: str | None = None


def _supce(method: str) -> tuple[Counterpart, ...]:
    return (Counterpart(method, "SupCE"),)


KNN, KNN_PLUS = _supce("KNN"), (Counterpart("KNN+", "SupCon"),)
SSD, SSD_PLUS = (Counterpart("SSD", "SimCLR", "clusters=1"),), (Counterpart("SSD+", "SupCon", "clusters=1"),)
SSOD = (Counterpart("SSOD", "SSOD", PROFILE_SETTING),)
CSI = (Counterpart("CSI", "CSI"),)

# (paper, the paper's name of a method) -> our rows for it, the first the run recorded wins. A paper
# method missing here has no counterpart in ssdlib: its cells show no number of ours. Rows of ours
# missing here (SSD_k, SSOD x MSP, the ablations of SSOD Tables 4-6, of which the targets hold no
# number) are left out.
COUNTERPARTS: dict[tuple[str, str], tuple[Counterpart, ...]] = {
    # SSOD (Pei et al. 2023), Tables 1-3: the post-hoc baselines score one CE classifier; Table 1 runs
    # KNN without (w/o) and with (w/) SupCon pre-training, and SSOD without. MSP is the vanilla
    # classifier of SSOD's own backbone (notebook 04, alpha 0; with ssod.vanilla: released, as in the
    # ImageNet profile, the released ResNet-50 of Table 1's 76.13 % ID accuracy itself), else the SupCE
    # classifier of the other baselines.
    ("SSOD", "MSP"): (Counterpart("MSP", "CE", "vanilla"), *_supce("MSP")),
    ("SSOD", "MaDist"): _supce("Mahalanobis"),
    ("SSOD", "ODIN"): _supce("ODIN"),
    ("SSOD", "GODIN"): (Counterpart("GODIN", "GODIN"),),
    ("SSOD", "Energy"): _supce("Energy"),
    ("SSOD", "KNN"): KNN,
    ("SSOD", "KNN (w/o)"): KNN,
    ("SSOD", "KNN (w/)"): KNN_PLUS,
    ("SSOD", "SSOD"): SSOD,
    ("SSOD", "SSOD (w/o)"): SSOD,
    ("SSOD", "SSOD (w/)"): (Counterpart("SSOD+", "SSOD+SupCon"),),  # notebook 04's SSOD (w/), when trained
    # CSI (Table 2) and MOS (Table 3) of notebook 05, when the profile runs them (csi.in_comparison, mos.groups)
    ("SSOD", "CSI"): CSI,
    ("SSOD", "MOS"): (Counterpart("MOS", "MOS"),),
    # KNN (Sun et al. 2022), Table 1 (CIFAR-10) and Table 2 (ImageNet): KNN on a CE classifier's
    # features and KNN+ on a SupCon encoder's; SSD+ as SSD's default, one cluster.
    ("KNN", "KNN (w/o contrastive)"): KNN,
    ("KNN", "KNN (CE)"): KNN,
    ("KNN", "KNN+"): KNN_PLUS,
    ("KNN", "KNN+ (SupCon)"): KNN_PLUS,
    ("KNN", "SSD+"): SSD_PLUS,
    ("KNN", "CSI"): CSI,
    # SSD (Sehwag et al. 2021), its README's released checkpoint and the paper: one cluster, SSD's default.
    ("SSD", "SSD"): SSD,
    ("SSD", "SSD+"): SSD_PLUS,
    # OpenOOD v1.5's CIFAR-10 leaderboard: its abbreviations, all on the CE classifier.
    ("OpenOOD", "MSP"): _supce("MSP"),
    ("OpenOOD", "ODIN"): _supce("ODIN"),
    ("OpenOOD", "MDS"): _supce("Mahalanobis"),
    ("OpenOOD", "EBO"): _supce("Energy"),
    ("OpenOOD", "MLS"): _supce("MaxLogit"),
    ("OpenOOD", "ReAct"): _supce("ReAct"),
    ("OpenOOD", "KNN"): KNN,
    ("OpenOOD", "ViM"): _supce("ViM"),
}


def set_key(name: str) -> str:
    """A dataset's name as the targets spell it: ``imagefolder:<path>`` by its folder's name, lower-case,
    Places by one name (:data:`SAME_SET`)."""
    if name.startswith(IMAGEFOLDER):
        name = PurePosixPath(name[len(IMAGEFOLDER) :]).name
    name = name.lower()
    return SAME_SET.get(name, name)


def profile_setting(P: Params) -> str:
    """The ``setting`` our rows of the SSOD run ``P.ssod`` carry (as ``ssdlib.ssod.runs.SSODRun.label``)."""
    return f"alpha={P.ssod.alpha:g},balance={P.ssod.balance}"


def covered_targets(P: Params, targets: pd.DataFrame | None = None) -> pd.DataFrame:
    """The published numbers a run of ``P`` can be held to: those of its ID set on the OOD sets it loads,
    plus, in each table it covers, the ID accuracy and the Average (``mean``) where it loads all of
    that table's sets (our mean is over the sets shown). ``targets``: ``results.paper_targets()``."""
    targets = results.paper_targets() if targets is None else targets
    same_id = targets[targets["id_dataset"].map(set_key) == set_key(P.data.id_dataset)]
    sets = same_id["ood_dataset"]
    real = ~sets.isin([results.MEAN, ACCURACY])
    covered_set = real & sets.map(set_key).isin({set_key(name) for name in P.data.ood_datasets})
    by_table = [same_id["paper"], same_id["table"]]
    any_set = covered_set.groupby(by_table).transform("any")
    all_sets = (covered_set | ~real).groupby(by_table).transform("all")
    keep = covered_set | (any_set & ((sets == ACCURACY) | ((sets == results.MEAN) & all_sets)))
    return same_id[keep].reset_index(drop=True)


def _first_source(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of one notebook and setting, the first notebook's: a detector several notebooks record
    (SSD by 02, 03 and 05) counts once."""
    notebook = rows["notebook"].fillna("").astype(str)
    source = notebook + "\n" + rows["setting"].fillna("").astype(str)
    return rows[source == source[notebook.sort_values(kind="stable").index[0]]]


def matching(rows: pd.DataFrame, counterparts: tuple[Counterpart, ...], P: Params) -> pd.DataFrame:
    """Our rows of the first of ``counterparts`` the run recorded, those of the first notebook that recorded
    them (:func:`_first_source`); none if the run recorded none of them."""
    for c in counterparts:
        setting = profile_setting(P) if c.setting == PROFILE_SETTING else c.setting
        match = (rows["method"] == c.method) & (rows["training_mode"] == c.training_mode)
        if setting is not None:
            match &= rows["setting"] == setting
        if match.any():
            return _first_source(rows[match])
    return rows.iloc[:0]


def counterpart_rows(rows: pd.DataFrame, paper: str, name: str, P: Params) -> pd.DataFrame:
    """Our rows for ``paper``'s method ``name`` (:data:`COUNTERPARTS`), renamed ``name``; none if it has no
    counterpart or the run recorded none."""
    return matching(rows, COUNTERPARTS.get((paper, name), ()), P).assign(method=name)


def _table_methods(targets: pd.DataFrame) -> list[str]:
    """A paper table's methods in its order, by the paper's names."""
    return list(dict.fromkeys(targets["row"]))


def _table_sets(targets: pd.DataFrame) -> list[str]:
    """A paper table's OOD sets in its order, without its Average and ID accuracy."""
    sets = targets["ood_dataset"]
    return list(dict.fromkeys(sets[~sets.isin([results.MEAN, ACCURACY])]))


def _table_rows(rows: pd.DataFrame, targets: pd.DataFrame, P: Params) -> pd.DataFrame:
    """Our rows of one paper table under its names (methods, sets, ID set), one row per method with no
    number so that every method of the paper gets a line, and a table with no row of ours still prints."""
    paper, id_set = targets["paper"].iloc[0], targets["id_dataset"].iloc[0]
    methods = _table_methods(targets)
    table_set = {set_key(s): s for s in _table_sets(targets)}
    ours = pd.concat([counterpart_rows(rows, paper, m, P) for m in methods])
    ours = ours[ours["ood_dataset"].astype(str).map(set_key).isin(table_set)]
    ours = ours.assign(ood_dataset=ours["ood_dataset"].astype(str).map(set_key).map(table_set))
    blank = pd.DataFrame({"method": methods, "ood_dataset": next(iter(table_set.values()))})
    blank[[*METRICS, *EXTRA_METRICS, "id_accuracy"]] = np.nan
    return pd.concat([ours, blank]).assign(id_dataset=id_set, setting=None)


def _section(rows: pd.DataFrame, targets: pd.DataFrame, P: Params) -> list[str]:
    """One paper table: which it is, the backbones compared, and the table (``results.paper_table``)."""
    paper, table = targets["paper"].iloc[0], targets["table"].iloc[0]
    ours = _table_rows(rows, targets, P)
    metrics = [*METRICS, *(m for m in EXTRA_METRICS if m in set(targets["metric"]))]
    shown = results.paper_table(
        ours,
        metrics,
        targets=targets.assign(method=targets["row"]),
        methods=_table_methods(targets),
        ood_sets=_table_sets(targets),
        accuracy=bool((targets["metric"] == "id_accuracy").any()),
    )
    our_archs = ", ".join(sorted(ours["arch"].dropna().astype(str).unique())) or "– (no row of ours)"
    return [
        f"## {paper} ({PAPERS.get(paper, paper)}), {table}",
        "",
        f"ID set {targets['id_dataset'].iloc[0]}; backbone: the paper's {', '.join(targets['arch'].unique())}; "
        f"this run's {our_archs}.",
        "",
        shown.to_markdown(),
        "",
    ]


def _header(rows: pd.DataFrame, P: Params, smoke: bool) -> list[str]:
    notebooks = ", ".join(sorted(rows["notebook"].dropna().astype(str).unique())) or "none recorded"
    lines = [
        f"# Profile {P.profile} beside the papers",
        "",
        f"ID set {P.data.id_dataset}; OOD sets {', '.join(P.data.ood_datasets) or 'none'}; notebooks run: {notebooks}.",
        "",
    ]
    if smoke:
        lines += [
            "> **SMOKE RUN: these numbers mean nothing.** The models were trained for a few steps on tiny "
            "generated files standing in for the datasets; this page only shows that every table fills.",
            "",
        ]
    return lines


LEGEND = (
    "Each cell: ours [paper P, ours − P], in percent (FPR95: lower is better; AUROC, AUPR, ID accuracy: higher). "
    "**Bold**: our best of a column. –: no number of ours (a method ssdlib does not have, or one this run did not "
    "record). `mean`: our average over the sets shown, set beside the paper's Average only where the profile loads "
    "all of that table's sets. Method names are the paper's (`ssdlib.evaluation.paper_comparison.COUNTERPARTS`); "
    "published numbers from `ssdlib/evaluation/paper_targets.csv`, without those marked [recalled]. A run over "
    "several seeds (`--seeds`) shows each number as mean ± std over its seeds and says whether the paper's number "
    "lies inside the seeds' range (their lowest to their highest value)."
)


def markdown(rows, P: Params, *, smoke: bool, targets: pd.DataFrame | None = None) -> str:
    """The page: a header (profile, notebooks run, a banner on smoke runs), then one section per paper
    table ``P`` covers (:func:`covered_targets`), laid out as the paper prints it."""
    rows = pd.DataFrame(rows, columns=results.COLUMNS)
    covered = covered_targets(P, targets)
    lines = _header(rows, P, smoke)
    if covered.empty:
        return "\n".join([*lines, f"Profile {P.profile} covers no published number: nothing to compare.", ""])
    rows = rows[rows["id_dataset"] == P.data.id_dataset]
    lines += [LEGEND, ""]
    for _, table in covered.groupby(["paper", "table"], sort=False):
        lines += _section(rows, table, P)
    return "\n".join(lines)


def write(
    output_dir: str | Path,
    P: Params,
    *,
    smoke: bool = False,
    rows: pd.DataFrame | None = None,
    extra: list[str] = (),
) -> Path:
    """Write ``<output_dir>/paper_comparison.md`` (:func:`markdown` of ``rows``, by default those recorded
    there; a multi-seed run passes every seed's), ``extra`` lines (the claims' verdicts) at its end; return its path."""
    path = Path(output_dir) / REPORT_FILE
    page = markdown(results.load(output_dir) if rows is None else rows, P, smoke=smoke)
    path.write_text("\n".join([page, *extra]))
    return path
