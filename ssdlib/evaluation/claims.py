"""The papers' claims, each declared once, measured from a run's result rows and judged over seeds: the ledger.

A sanity check (:mod:`ssdlib.checks`) asks whether the pipeline works and stops a run that fails one. A
claim is a finding of SSD (Sehwag et al., ICLR 2021) or SSOD (Pei et al. 2023), such as "SSD+ beats SSD on
near OOD" or "SSOD's FPR95 is below vanilla MSP's on background-like OOD". A claim never stops a run. It
gets an effect, an interval over the seeds and a verdict, because one seed of a small CPU model can show a
paper's effect or hide it by chance (``docs/offline_benchmark.md``, the seed study).

**Effect.** Each claim measures one number per seed from the rows the notebooks record (``results.jsonl``,
the same rows as ``results.csv``), so the ledger can be rebuilt from any run folder: a difference of one
metric between two methods (e.g. FPR95 of vanilla MSP minus SSOD's on the profile's background-like set),
or one method's level. The claim holds when the effect lies on its ``direction`` side of its ``margin``.
Our methods stand for the papers' through :data:`ssdlib.evaluation.paper_comparison.COUNTERPARTS`.

**Interval.** Over n >= 2 seeds: the 95 % Student-t interval of the mean, ``scipy.stats.t.interval`` with
n - 1 degrees of freedom and the standard error std / sqrt(n) (std: the sample std, ddof 1). A bootstrap
needs more than the 3-8 seeds a CPU run affords.

**Verdicts.** ``reproduced``: the interval lies wholly on the claim's side of the margin; ``contradicted``:
wholly on the other side; ``inconclusive``: it contains the margin; ``one seed``: a single-seed run, whose
effect's side (``sign``: ``+`` the claim's, ``-`` the other) is all it shows; ``not comparable``: a method
of the claim fails its own sanity on some seed, its mean AUROC over the profile's far sets
(``checks.ssd_auroc_sets``, else every set it scored) at most :data:`CHANCE` + :data:`CHANCE_MARGIN`, so the
comparison would read a broken detector as a finding (CSI after 3 epochs is below chance on ``blobs``);
``not measured``: the run recorded no rows for it (a notebook or a set the profile does not run), said in
``note``.

``claims.csv`` (one row per declared claim, in :data:`CLAIMS` order; the report page reads it), columns
:data:`COLUMNS`:

- ``claim``, ``paper`` (``SSD`` or ``SSOD``), ``where`` (the paper's table or section), ``statement``,
  ``metric`` (the measured comparison, with the profile's set names), ``direction`` (``>`` or ``<``) and
  ``margin``: the claim holds when effect ``direction`` margin;
- ``notebook`` (the notebook whose last cell shows it), ``n`` (seeds measured), ``seeds``;
- ``effect_mean``, ``effect_std`` (sample std; empty for one seed), ``ci_low``, ``ci_high`` (empty below two
  seeds), ``interval`` (the method, e.g. ``Student-t 95%``), ``verdict``, ``sign``;
- ``paper_effect`` (the paper's own effect as a fraction, empty where its tables give none), ``paper_where``
  (its table and sets; on the offline profile, the paper's CIFAR-10 numbers, for which it stands in),
  ``paper_effect_inside`` (``yes``/``no``: inside our interval; empty without both), ``note``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import stats

from ssdlib.evaluation import results, spread
from ssdlib.evaluation.paper_comparison import ACCURACY, COUNTERPARTS, Counterpart, matching
from ssdlib.log import get as get_logger
from ssdlib.params import Params

LOG = get_logger(__name__)

CSV_FILE, MD_FILE = "claims.csv", "claims.md"
COLUMNS = [
    "claim",
    "paper",
    "where",
    "statement",
    "metric",
    "direction",
    "margin",
    "notebook",
    "n",
    "seeds",
    "effect_mean",
    "effect_std",
    "ci_low",
    "ci_high",
    "interval",
    "verdict",
    "sign",
    "paper_effect",
    "paper_where",
    "paper_effect_inside",
    "note",
]
REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
ONE_SEED, NOT_COMPARABLE, NOT_MEASURED = "one seed", "not comparable", "not measured"
CONFIDENCE = 0.95
INTERVAL = "Student-t 95%"
CHANCE, CHANCE_MARGIN = 0.5, 0.05
STANDS_IN = {"offline": "cifar10"}  # the offline benchmark's small 10-class images stand in for CIFAR-10's


class NotMeasured(Exception):
    """The run recorded nothing a claim can be measured on; the message says what is missing."""


@dataclass(frozen=True)
class Method:
    """A method as a claim names it (``label``), and our rows for it: the first of ``counterparts`` recorded."""

    label: str
    counterparts: tuple[Counterpart, ...]


SSD = Method("SSD", COUNTERPARTS[("SSD", "SSD")])
SSD_PLUS = Method("SSD+", COUNTERPARTS[("SSD", "SSD+")])
SSD_SUPCE = Method("SSD (SupCE)", (Counterpart("SSD (SupCE)", "SupCE", "class clusters"),))  # notebook 02
VANILLA_MSP = Method("vanilla MSP", COUNTERPARTS[("SSOD", "MSP")])
SSOD = Method("SSOD", COUNTERPARTS[("SSOD", "SSOD")])
SSOD_WITH = Method("SSOD (w/)", COUNTERPARTS[("SSOD", "SSOD (w/)")])
KNN = Method("KNN", COUNTERPARTS[("SSOD", "KNN")])
CSI = Method("CSI", COUNTERPARTS[("SSOD", "CSI")])


def ssdk(k: int, copies: int) -> Method:
    """SSD_k with ``k`` known outliers per class in ``copies`` views (notebook 03's grid)."""
    return Method(f"SSD_k (k={k}, copies={copies})", (Counterpart("SSD_k", "SimCLR", f"k={k},copies={copies}"),))


def ablated(field: str, value, *, vanilla: bool = False) -> Method:
    """SSOD (or, ``vanilla``, its alpha-0 classifier scored by MSP) in notebook 04's ablation over ``field``."""
    method, mode = ("MSP", "CE") if vanilla else ("SSOD", "SSOD")
    return Method(
        f"{'vanilla MSP' if vanilla else 'SSOD'} ({field} {value})", (Counterpart(method, mode, f"{field}={value}"),)
    )


class Run:
    """One seed's rows, read for a claim: each value looked up names its method, whose rows the sanity
    check of :func:`measure` then reads."""

    def __init__(self, rows: pd.DataFrame, P: Params) -> None:
        self.rows = rows.drop_duplicates(subset=spread.KEYS, keep="last")  # a notebook run twice: its last rows
        self.P = P
        self.used: dict[str, pd.DataFrame] = {}

    def of(self, method: Method) -> pd.DataFrame:
        found = matching(self.rows, method.counterparts, self.P)
        if found.empty:
            raise NotMeasured(f"no rows of {method.label}")
        self.used[method.label] = found
        return found

    def value(self, method: Method, metric: str, ood: str | None = None) -> float:
        """``metric`` of ``method`` on OOD set ``ood`` (ID accuracy: any of its rows)."""
        found = self.of(method)
        if ood is not None:
            found = found[found["ood_dataset"] == ood]
        values = pd.to_numeric(found[metric], errors="coerce").dropna()
        if values.empty:
            raise NotMeasured(f"no {metric} of {method.label}" + (f" on {ood}" if ood else ""))
        return float(values.iloc[0])

    def mean(self, method: Method, metric: str, sets: list[str]) -> float:
        """``metric`` of ``method`` averaged over ``sets``."""
        return statistics.fmean(self.value(method, metric, name) for name in sets)


def _need(value, why: str):
    """``value``, or NotMeasured(``why``) where the profile leaves it empty."""
    if not value:
        raise NotMeasured(why)
    return value


def _sets(run: Run) -> list[str]:
    return list(run.P.data.ood_datasets)


def _far(run: Run) -> list[str]:
    return _need(run.P.checks.ssd_auroc_sets, "the profile names no far sets (checks.ssd_auroc_sets)")


def _near(run: Run) -> str:
    return _need(run.P.checks.near_ood_set, "the profile names no near-OOD set (checks.near_ood_set)")


def _difference(run: Run, metric: str, a: Method, b: Method, ood: str | None) -> tuple[float, str]:
    """``metric`` of ``a`` minus that of ``b`` on ``ood``, and a line saying both."""
    va, vb = run.value(a, metric, ood), run.value(b, metric, ood)
    where = f" on {ood}" if ood else ""
    return va - vb, f"{results.METRIC_LABELS[metric]}{where}: {a.label} {va:.3f}, {b.label} {vb:.3f}"


def _extremes(values, what: str) -> tuple:
    values = list(values)
    if len(values) < 2:
        raise NotMeasured(f"{what} lists fewer than two values in this profile")
    return values[0], values[-1]


# -- measurements, one per claim ---------------------------------------------------------------------


def _ssd_far(run: Run) -> tuple[float, str]:
    far = _far(run)
    values = {name: run.value(SSD, "auroc", name) for name in far}
    worst = min(values, key=values.get)
    return values[worst], "AUROC of SSD: " + ", ".join(f"{name} {v:.3f}" for name, v in values.items())


def _ssd_vs_supervised(run: Run) -> tuple[float, str]:
    sets = _sets(run)
    ssd, supervised = run.mean(SSD, "auroc", sets), run.mean(SSD_SUPCE, "auroc", sets)
    return ssd - supervised, f"mean AUROC over {len(sets)} sets: SSD {ssd:.3f}, SSD (SupCE) {supervised:.3f}"


def _most(run: Run) -> Method:
    return ssdk(max(run.P.ssd.k), max(run.P.ssd.copies))


def _ssdk_mean(run: Run) -> tuple[float, str]:
    sets, most = _sets(run), _most(run)
    a, b = run.mean(most, "auroc", sets), run.mean(SSD, "auroc", sets)
    return a - b, f"mean AUROC over {len(sets)} sets: {most.label} {a:.3f}, SSD {b:.3f}"


def _ssdk_k(run: Run) -> tuple[float, str]:
    fewest, most = _extremes(sorted(run.P.ssd.k), "ssd.k")
    copies = max(run.P.ssd.copies)
    return _difference(run, "auroc", ssdk(most, copies), ssdk(fewest, copies), _near(run))


def _background(run: Run) -> str:
    return run.P.checks.ssod_ood_set


def _failure(run: Run) -> str:
    return _need(
        run.P.checks.ssod_failure_set,
        "the profile names no failure set (checks.ssod_failure_set: SSOD's Table 3 failure is ImageNet's; "
        "Table 2 has SSOD ahead of KNN on CIFAR-10's Textures)",
    )


def _supcon(run: Run) -> tuple[float, str]:
    _need(run.P.ssod.supcon_weight, "ssod.supcon_weight is 0 in this profile: no SSOD (w/) run")
    return _difference(run, "fpr95", SSOD, SSOD_WITH, _background(run))


def _alphas(run: Run) -> tuple:
    return _extremes(sorted(a for a in run.P.ssod.alphas if a > 0), "ssod.alphas above 0")


def _alpha(run: Run, metric: str) -> tuple[float, str]:
    low, high = _alphas(run)
    ood = run.P.ssod.ablation_ood if metric == "fpr95" else None
    return _difference(run, metric, ablated("alpha", low), ablated("alpha", high), ood)


def _balance(run: Run) -> tuple[float, str]:
    ood = run.P.ssod.ablation_ood
    others = [b for b in run.P.ssod.balances if b != "LWB"]
    if "LWB" not in run.P.ssod.balances or not others:
        raise NotMeasured("ssod.balances does not list LWB and another scheme")
    fpr = {b: run.value(ablated("balance", b), "fpr95", ood) for b in run.P.ssod.balances}
    best = min(others, key=fpr.get)
    label = f"{results.METRIC_LABELS['fpr95']} on {ood}: "
    return fpr[best] - fpr["LWB"], label + ", ".join(f"{b} {v:.3f}" for b, v in fpr.items())


def _backbones(run: Run) -> tuple[float, str]:
    ood = run.P.ssod.ablation_ood
    gains = {
        b: run.value(ablated("backbone", b, vanilla=True), "fpr95", ood)
        - run.value(ablated("backbone", b), "fpr95", ood)
        for b in _need(run.P.ssod.backbones, "the profile lists no ssod.backbones")
    }
    label = f"{results.METRIC_LABELS['fpr95']} gain on {ood}: "
    return min(gains.values()), label + ", ".join(f"{b} {v:.3f}" for b, v in gains.items())


# -- the claims --------------------------------------------------------------------------------------

Published = Callable[[Callable[..., float]], dict[str, tuple[float, str]]]


@dataclass(frozen=True)
class Claim:
    """One finding of a paper. ``metric`` may name the profile's sets as ``{near}``, ``{far}``,
    ``{background}``, ``{failure}`` or ``{ablation}``. ``published`` gives the paper's own effect per ID set,
    from a lookup of ``paper_targets.csv`` (paper, table, row, OOD set, metric -> fraction) or, for the
    ablation tables that file does not hold, the paper's numbers."""

    id: str
    paper: str
    where: str
    statement: str
    metric: str
    notebook: str
    measure: Callable[[Run], tuple[float, str]]
    direction: str = ">"
    margin: float = 0.0
    published: Published | None = None

    def holds(self, value: float) -> bool:
        return value > self.margin if self.direction == ">" else value < self.margin


def _t2_t1(row: str, minus: str, ood: str, metric: str) -> Published:
    """SSOD's Table 2 (CIFAR-10) and Table 1 (ImageNet): ``row`` minus ``minus`` (Table 1's names: KNN (w/o),
    SSOD (w/o)) on ``ood`` (Places: ``places365`` in Table 2, ``places`` in Table 1)."""
    table1 = {"KNN": "KNN (w/o)", "SSOD": "SSOD (w/o)"}

    label = "Places" if ood else "ID acc"

    def published(t):
        set1 = "places" if ood else ood
        return {
            "cifar10": (t("Table 2", row, ood) - t("Table 2", minus, ood), f"Table 2, {label}"),
            "imagenet": (
                t("Table 1", table1.get(row, row), set1) - t("Table 1", table1.get(minus, minus), set1),
                f"Table 1, {label}",
            ),
        }

    return lambda t: published(lambda table, r, o: t(table, r, o, metric))


CLAIMS = (
    Claim(
        "ssd_far_ood",
        "SSD",
        "README (released SimCLR checkpoint), Sec. 4",
        "SSD, with no labels, separates far OOD sets from ID almost perfectly.",
        "AUROC of SSD on its worst far set ({far})",
        "02",
        _ssd_far,
        margin=0.95,
        published=lambda t: {
            "cifar10": (
                min(t("README", "SSD", s, "auroc", paper="SSD") for s in ("svhn", "textures", "blobs")),
                "README: worst of SVHN, Textures, Blobs",
            )
        },
    ),
    Claim(
        "ssd_vs_supervised",
        "SSD",
        "Sec. 4 (abstract: on par with supervised detectors)",
        "SSD without labels detects OOD about as well as the same detector on a supervised network's features.",
        "mean AUROC over the OOD sets: SSD minus SSD (SupCE, class clusters); on par: at most 0.02 below",
        "02",
        _ssd_vs_supervised,
        margin=-0.02,
    ),
    Claim(
        "ssd_plus_near",
        "SSD",
        "Sec. 3.1 (SSD+)",
        "Labels help most on near OOD: SSD+ (a SupCon encoder) beats SSD on the near-OOD set.",
        "AUROC on {near}: SSD+ minus SSD",
        "02",
        lambda run: _difference(run, "auroc", SSD_PLUS, SSD, _near(run)),
    ),
    Claim(
        "ssdk_near",
        "SSD",
        "Sec. 3.2 (SSD_k)",
        "A few known outliers help where SSD struggles: SSD_k beats SSD on the near-OOD set.",
        "AUROC on {near}: SSD_k (largest k and copies) minus SSD",
        "03",
        lambda run: _difference(run, "auroc", _most(run), SSD, _near(run)),
    ),
    Claim(
        "ssdk_grows_with_k",
        "SSD",
        "Sec. 3.2 (SSD_k)",
        "SSD_k improves as more outliers per class are known.",
        "AUROC on {near}: SSD_k at the largest k minus at the smallest (largest copies)",
        "03",
        _ssdk_k,
    ),
    Claim(
        "ssdk_mean",
        "SSD",
        "Sec. 3.2 (SSD_k)",
        "Known outliers raise SSD's detection over every kind of OOD, not only where it struggles.",
        "mean AUROC over the OOD sets: SSD_k (largest k and copies) minus SSD",
        "03",
        _ssdk_mean,
    ),
    Claim(
        "ssod_beats_msp",
        "SSOD",
        "Table 2 (CIFAR-10), Table 1 (ImageNet)",
        "SSOD's OOD head lowers its vanilla classifier's FPR95 on background-like OOD (Places).",
        "FPR95 on {background}: vanilla MSP minus SSOD",
        "04",
        lambda run: _difference(run, "fpr95", VANILLA_MSP, SSOD, _background(run)),
        published=_t2_t1("MSP", "SSOD", "places365", "fpr95"),
    ),
    Claim(
        "ssod_keeps_accuracy",
        "SSOD",
        "Table 2 (CIFAR-10), Table 1 (ImageNet)",
        "The OOD head costs the classifier almost no ID accuracy (less than 3 points).",
        "ID accuracy: vanilla classifier minus SSOD",
        "04",
        lambda run: _difference(run, "id_accuracy", VANILLA_MSP, SSOD, None),
        direction="<",
        margin=0.03,
        published=_t2_t1("MSP", "SSOD", ACCURACY, "id_accuracy"),
    ),
    Claim(
        "ssod_supcon",
        "SSOD",
        "Table 1 (ImageNet)",
        "Supervised contrastive learning lowers SSOD's FPR95 further (SSOD (w/) against (w/o)).",
        "FPR95 on {background}: SSOD minus SSOD (w/)",
        "04",
        _supcon,
        published=lambda t: {
            "imagenet": (
                t("Table 1", "SSOD (w/o)", "places", "fpr95") - t("Table 1", "SSOD (w/)", "places", "fpr95"),
                "Table 1, Places",
            )
        },
    ),
    Claim(
        "ssod_alpha_fpr95",
        "SSOD",
        "Table 4",
        "A larger alpha (the OOD loss's weight) lowers FPR95.",
        "FPR95 on {ablation}: SSOD at the smallest alpha above 0 minus at the largest",
        "04",
        lambda run: _alpha(run, "fpr95"),
        published=lambda t: {"cifar10": (0.1833 - 0.1639, "Table 4, alpha 0.7 to 2.0, Places")},
    ),
    Claim(
        "ssod_alpha_accuracy",
        "SSOD",
        "Table 4",
        "A larger alpha costs some ID accuracy.",
        "ID accuracy: SSOD at the smallest alpha above 0 minus at the largest",
        "04",
        lambda run: _alpha(run, "id_accuracy"),
        published=lambda t: {"cifar10": (0.9400 - 0.9117, "Table 4, alpha 0.7 to 2.0")},
    ),
    Claim(
        "ssod_balance",
        "SSOD",
        "Table 5",
        "Loss-wise balance (LWB) gives the lowest FPR95 of the three balance schemes.",
        "FPR95 on {ablation}: the best of the other schemes minus LWB",
        "04",
        _balance,
        published=lambda t: {"cifar10": (0.1795 - 0.1763, "Table 5, DR against LWB, Places")},
    ),
    Claim(
        "ssod_backbones",
        "SSOD",
        "Table 6",
        "SSOD lowers the vanilla classifier's FPR95 on every backbone.",
        "FPR95 on {ablation}: vanilla MSP minus SSOD, the smallest gain over ssod.backbones",
        "04",
        _backbones,
        published=lambda t: {"imagenet": (0.7399 - 0.5724, "Table 6, smallest gain (ResNet-50), Places")},
    ),
    Claim(
        "ssod_beats_knn",
        "SSOD",
        "Table 2 (CIFAR-10), Table 1 (ImageNet)",
        "SSOD has a lower FPR95 than KNN on background-like OOD (Places).",
        "FPR95 on {background}: KNN minus SSOD",
        "05",
        lambda run: _difference(run, "fpr95", KNN, SSOD, _background(run)),
        published=_t2_t1("KNN", "SSOD", "places365", "fpr95"),
    ),
    Claim(
        "ssod_beats_csi",
        "SSOD",
        "Table 2 (CIFAR-10)",
        "SSOD has a lower FPR95 than CSI on background-like OOD (Places).",
        "FPR95 on {background}: CSI minus SSOD",
        "05",
        lambda run: _difference(run, "fpr95", CSI, SSOD, _background(run)),
        published=lambda t: {
            "cifar10": (
                t("Table 2", "CSI", "places365", "fpr95") - t("Table 2", "SSOD", "places365", "fpr95"),
                "Table 2, Places",
            )
        },
    ),
    Claim(
        "ssod_fails_on_textures",
        "SSOD",
        "Table 3, Sec. 5.2",
        "SSOD trails KNN on Textures, whose images carry symbols of ID objects.",
        "FPR95 on {failure}: SSOD minus KNN",
        "05",
        lambda run: _difference(run, "fpr95", SSOD, KNN, _failure(run)),
        published=lambda t: {
            "imagenet": (
                t("Table 3", "SSOD", "textures", "fpr95") - t("Table 3", "KNN", "textures", "fpr95"),
                "Table 3, Textures",
            )
        },
    ),
)


# -- measuring and judging -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """A claim on one seed: ``effect`` (None: not measured), what it compared or why not (``detail``), and
    why it is not comparable (``broken``: a method at chance; empty when every method passed)."""

    effect: float | None
    detail: str
    broken: str = ""


def _sanity(run: Run) -> str:
    """The methods a measurement read whose mean AUROC over the far sets is at most chance + margin."""
    broken = []
    for label, rows in run.used.items():
        far = run.P.checks.ssd_auroc_sets or list(rows["ood_dataset"].dropna().unique())
        auroc = pd.to_numeric(rows[rows["ood_dataset"].isin(far)]["auroc"], errors="coerce").dropna()
        if not auroc.empty and auroc.mean() <= CHANCE + CHANCE_MARGIN:
            broken.append(f"{label}'s mean AUROC over the far sets is {auroc.mean():.3f} (chance {CHANCE})")
    return "; ".join(broken)


def measure(claim: Claim, rows: pd.DataFrame, P: Params) -> Measured:
    """``claim`` on the rows of one seed of a run of ``P``."""
    run = Run(pd.DataFrame(rows, columns=results.COLUMNS) if not isinstance(rows, pd.DataFrame) else rows, P)
    try:
        if P.notebooks is not None and claim.notebook not in P.notebooks:
            raise NotMeasured(f"the profile does not run notebook {claim.notebook}")
        effect, detail = claim.measure(run)
    except NotMeasured as missing:
        return Measured(None, str(missing))
    return Measured(float(effect), detail, _sanity(run))


def interval(values: list[float]) -> tuple[float, float]:
    """The 95 % Student-t interval of the mean of ``values`` (n >= 2); a point where they are all equal."""
    n, mean = len(values), statistics.fmean(values)
    sem = statistics.stdev(values) / math.sqrt(n)
    if sem == 0:
        return mean, mean
    low, high = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=sem)
    return float(low), float(high)


def verdict(claim: Claim, low: float, high: float) -> str:
    """Reproduced, contradicted or inconclusive: where the interval [low, high] lies against the margin
    (an interval that touches the margin is inconclusive)."""
    if claim.holds(low) and claim.holds(high):
        return REPRODUCED
    beyond = high < claim.margin if claim.direction == ">" else low > claim.margin
    return CONTRADICTED if beyond else INCONCLUSIVE


def _sign(claim: Claim, value: float) -> str:
    return "+" if claim.holds(value) else "-"


def _lookup(targets: pd.DataFrame) -> Callable[..., float]:
    """``t(table, row, ood_dataset, metric, paper="SSOD")``: one published number of ``targets``, as a fraction."""

    def t(table: str, row: str, ood: str, metric: str, paper: str = "SSOD") -> float:
        hit = targets[
            (targets["paper"] == paper)
            & (targets["table"] == table)
            & (targets["row"] == row)
            & (targets["ood_dataset"] == ood)
            & (targets["metric"] == metric)
        ]
        if len(hit) != 1:
            raise KeyError(f"paper_targets.csv holds {len(hit)} numbers for {paper} {table} {row} {ood} {metric}")
        return float(hit["value"].iloc[0]) / 100

    return t


def paper_effect(claim: Claim, P: Params, targets: pd.DataFrame | None = None) -> tuple[float | None, str]:
    """The paper's own effect for a run of ``P``, as a fraction, and where it comes from: the number for the
    profile's ID set; on a stand-in benchmark (:data:`STANDS_IN`), the one for the set it stands in for, else
    the only one the paper gives."""
    if claim.published is None:
        return None, ""
    effects = claim.published(_lookup(results.paper_targets() if targets is None else targets))
    id_set = key = P.data.id_dataset
    if id_set not in effects and id_set in STANDS_IN:
        key = STANDS_IN[id_set] if STANDS_IN[id_set] in effects or len(effects) != 1 else next(iter(effects))
    if key not in effects:
        return None, ""
    value, where = effects[key]
    return value, where + ("" if key == id_set else f" ({key})")


def _metric_text(claim: Claim, P: Params) -> str:
    names = {
        "near": P.checks.near_ood_set,
        "far": ", ".join(P.checks.ssd_auroc_sets) or "none set",
        "background": P.checks.ssod_ood_set,
        "failure": P.checks.ssod_failure_set,
        "ablation": P.ssod.ablation_ood,
    }
    return claim.metric.format(**names)


def judge(claim: Claim, per_seed: dict[int, Measured], P: Params, targets: pd.DataFrame | None = None) -> dict:
    """One row of ``claims.csv``: ``claim`` over the seeds of ``per_seed`` ({seed: its measurement})."""
    measured = {seed: m for seed, m in per_seed.items() if m.effect is not None}
    values = [m.effect for m in measured.values()]
    n = len(values)
    mean = statistics.fmean(values) if values else math.nan
    std = statistics.stdev(values) if n > 1 else math.nan
    low, high = interval(values) if n > 1 else (math.nan, math.nan)
    published, published_where = paper_effect(claim, P, targets)
    notes = []
    broken = {seed: m.broken for seed, m in measured.items() if m.broken}
    if not measured:
        state = NOT_MEASURED
        notes.append("; ".join(dict.fromkeys(m.detail for m in per_seed.values())))
    elif broken:
        state = NOT_COMPARABLE
        notes.append("; ".join(f"seed {seed}: {why}" for seed, why in broken.items()))
    elif n == 1:
        state = ONE_SEED
    else:
        state = verdict(claim, low, high)
    if n == 1:
        notes.append(next(iter(measured.values())).detail)
    missing = sorted(set(per_seed) - set(measured))
    if measured and missing:
        notes.append(f"not measured on seed(s) {', '.join(map(str, missing))}: {per_seed[missing[0]].detail}")
    inside = ""
    if published is not None and n > 1:
        inside = "yes" if low <= published <= high else "no"
    return {
        "claim": claim.id,
        "paper": claim.paper,
        "where": claim.where,
        "statement": claim.statement,
        "metric": _metric_text(claim, P),
        "direction": claim.direction,
        "margin": claim.margin,
        "notebook": claim.notebook,
        "n": n,
        "seeds": ",".join(str(s) for s in sorted(measured)),
        "effect_mean": mean,
        "effect_std": std,
        "ci_low": low,
        "ci_high": high,
        "interval": INTERVAL if n > 1 else "",
        "verdict": state,
        "sign": _sign(claim, mean) if values else "",
        "paper_effect": published,
        "paper_where": published_where,
        "paper_effect_inside": inside,
        "note": "; ".join(notes),
    }


def ledger(per_seed_rows: dict[int, pd.DataFrame], P: Params, notebook: str | None = None) -> pd.DataFrame:
    """Every claim (those of ``notebook``, e.g. "02", if given) judged over the seeds of ``per_seed_rows``
    ({seed: that seed's result rows}), as the rows of ``claims.csv``."""
    targets = results.paper_targets()
    chosen = [c for c in CLAIMS if notebook is None or c.notebook == notebook]
    rows = [judge(c, {seed: measure(c, r, P) for seed, r in per_seed_rows.items()}, P, targets) for c in chosen]
    return pd.DataFrame(rows, columns=COLUMNS)


def _fmt(value: float, signed: bool = True) -> str:
    return "–" if pd.isna(value) else (f"{value:+.3f}" if signed else f"{value:.3f}")


def _effect_text(row) -> str:
    if row["n"] == 0:
        return "–"
    spread_ = "" if pd.isna(row["effect_std"]) else f" ± {row['effect_std']:.3f}"
    return f"{_fmt(row['effect_mean'])}{spread_} (n = {row['n']})"


def _verdict_text(row) -> str:
    if row["verdict"] == ONE_SEED:
        side = "the claim's side" if row["sign"] == "+" else "the other side"
        return f"one seed: {row['sign']} ({side})"
    return row["verdict"] if row["verdict"] != REPRODUCED else f"**{REPRODUCED}**"


def _paper_text(row) -> str:
    if pd.isna(row["paper_effect"]):
        return "–"
    inside = {"yes": ", inside", "no": ", outside"}.get(row["paper_effect_inside"], "")
    return f"{_fmt(row['paper_effect'])} ({row['paper_where']}{inside})"


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """The ledger as a reader sees it (``claims.md``, the notebooks' last cells): claim, statement, metric,
    effect, interval, verdict, the paper's effect, note."""
    return pd.DataFrame(
        {
            "claim": table["claim"],
            "paper": table["paper"] + ", " + table["where"],
            "statement": table["statement"],
            "effect": table["metric"],
            "holds when": [f"{d} {g:g}" for d, g in zip(table["direction"], table["margin"])],
            "measured": [_effect_text(r) for _, r in table.iterrows()],
            "95% interval": [
                "–" if pd.isna(lo) else f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in zip(table["ci_low"], table["ci_high"])
            ],
            "verdict": [_verdict_text(r) for _, r in table.iterrows()],
            "paper's effect": [_paper_text(r) for _, r in table.iterrows()],
            "note": table["note"],
        }
    ).set_index("claim")


LEGEND = (
    "Each claim's effect is measured on every seed from the rows in `results.csv`; over n >= 2 seeds its "
    "95% interval is Student-t (`scipy.stats.t.interval`, n - 1 degrees of freedom, std / sqrt(n)). "
    "**reproduced**: the interval lies wholly on the claim's side of its margin; contradicted: wholly on the "
    "other; inconclusive: it contains the margin; one seed: a single run, its sign only (+: the claim's side); "
    "not comparable: a method of the claim is at or near chance (mean AUROC over the far sets <= 0.55) on some "
    "seed; not measured: the run recorded nothing for it. The paper's effect is the same difference in its "
    "table (the offline profile stands in for CIFAR-10), with whether it lies inside our interval. Claims "
    "never stop a run; the sanity checks in `checks.json` do. Columns: `ssdlib/evaluation/claims.py`."
)


def markdown_lines(table: pd.DataFrame, *, heading: str = "# The papers' claims", smoke: bool = False) -> list[str]:
    """The ledger as Markdown: a heading, the legend, a count of verdicts and the table (:func:`shown`)."""
    counts = table["verdict"].value_counts()
    lines = [heading, ""]
    if smoke:
        lines += ["> **SMOKE RUN: these verdicts mean nothing** (tiny models on tiny generated files).", ""]
    lines += [
        LEGEND,
        "",
        "Verdicts: " + ", ".join(f"{v} {counts[v]}" for v in counts.index) + ".",
        "",
        shown(table).to_markdown(),
        "",
    ]
    return lines


def write(output_dir: str | Path, per_seed_rows: dict[int, pd.DataFrame], P: Params, *, smoke: bool = False):
    """Write ``claims.csv`` and ``claims.md`` of the seeds' rows into ``output_dir``; return the ledger."""
    output_dir = Path(output_dir)
    table = ledger(per_seed_rows, P)
    table.to_csv(output_dir / CSV_FILE, index=False)
    (output_dir / MD_FILE).write_text("\n".join(markdown_lines(table, smoke=smoke)))
    return table


def summary(table: pd.DataFrame) -> str:
    """One line for the end of a run: how many claims got each verdict."""
    counts = table["verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in counts.index)


def for_notebook(output_dir: str | Path, P: Params, notebook: str) -> pd.DataFrame:
    """The claims a notebook measures (``notebook``: its number, e.g. "02"), on the rows recorded so far in
    ``output_dir`` (this run's seed: "one seed" and the effect's sign), as the notebook's last cell shows them."""
    return shown(ledger({P.seed: results.load(output_dir)}, P, notebook=notebook))
