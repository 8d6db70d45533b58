"""The results table: every evaluation appends rows; runs gather them into CSV and Markdown.

Notebooks call :func:`record` with rows built by :func:`row`; the runner calls
:func:`write_tables` once all notebooks of a profile have run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ssdlib.metrics import evaluate

RESULTS_FILE = "results.jsonl"
COLUMNS = [
    "notebook",
    "method",
    "training_mode",
    "arch",
    "id_dataset",
    "ood_dataset",
    "setting",
    "fpr95",
    "fpr95_ood_tpr",
    "auroc",
    "aupr_in",
    "aupr_out",
    "aupr_in_trapz",
    "aupr_out_trapz",
    "id_accuracy",
    "params_file",
    "seed",
]


def row(method: str, id_scores, ood_scores, *, ood_dataset: str, id_dataset: str, **info: Any) -> dict[str, Any]:
    """One result row: the metrics of ``id_scores`` vs ``ood_scores`` plus what produced them.

    ``info`` may hold training_mode, arch, setting (e.g. "clusters=4"), id_accuracy, params_file,
    seed and notebook; unknown names are rejected so that the table keeps one schema.
    """
    unknown = set(info) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown result columns {sorted(unknown)}; allowed: {COLUMNS}")
    out = {c: None for c in COLUMNS}
    out.update(info, method=method, id_dataset=id_dataset, ood_dataset=ood_dataset)
    out.update(evaluate(id_scores, ood_scores))
    return out


def record(output_dir: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Append rows to ``<output_dir>/results.jsonl`` and return its path."""
    path = Path(output_dir) / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def load(output_dir: str | Path) -> pd.DataFrame:
    """All rows recorded under ``output_dir`` (an empty table if none)."""
    path = Path(output_dir) / RESULTS_FILE
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return pd.DataFrame(rows, columns=COLUMNS)


def write_tables(output_dir: str | Path) -> tuple[Path, Path]:
    """Write ``results.csv`` (every recorded row and column) and ``results.md`` (:func:`markdown`)."""
    output_dir = Path(output_dir)
    table = load(output_dir)
    csv_path, md_path = output_dir / "results.csv", output_dir / "results.md"
    table.to_csv(csv_path, index=False)
    md_path.write_text(markdown(table))
    return csv_path, md_path


def labelled(rows) -> pd.DataFrame:
    """The rows with ``method`` renamed "method (setting)" where a setting is given, so that the rows
    of one method in several settings (SSD's clusters, SSD_k's k and copies) get a table row each."""
    rows = pd.DataFrame(rows).copy()
    setting = rows["setting"].fillna("").astype(str)
    rows["method"] = rows["method"].where(setting == "", rows["method"] + " (" + setting + ")")
    rows["setting"] = None
    return rows


def markdown(rows) -> str:
    """The results as the papers print them: one section per notebook (in notebook order), each with
    a methods x OOD sets table of AUROC (plus ID accuracy where recorded) and one of FPR95, in percent."""
    rows = pd.DataFrame(rows, columns=COLUMNS) if not isinstance(rows, pd.DataFrame) else rows
    lines = ["# Results", ""]
    if rows.empty:
        return "\n".join(lines + ["No results were recorded.", ""])
    lines += [
        "AUROC and FPR95 in percent; **bold**: the best of a column; `mean`: over the OOD sets shown; "
        "a method run in several settings has a row per setting. Every row and column: `results.csv`.",
        "",
    ]
    rows = rows.assign(notebook=rows["notebook"].fillna("(no notebook)"), id_dataset=rows["id_dataset"].fillna("?"))
    for notebook in sorted(rows["notebook"].unique()):
        for id_set, part in rows[rows["notebook"] == notebook].groupby("id_dataset", sort=False):
            part = labelled(part)
            lines += [f"## {notebook} (ID: {id_set})", ""]
            for metric in ("auroc", "fpr95"):
                table = paper_table(part, metric, accuracy=metric == "auroc")
                lines += [f"### {METRIC_LABELS[metric]} (%)", "", table.to_markdown(), ""]
    return "\n".join(lines)


# -- Tables laid out like the papers' ---------------------------------------------------------------

TARGETS_FILE = Path(__file__).with_name("paper_targets.csv")
LOWER_IS_BETTER = {"fpr95", "fpr95_ood_tpr"}
METRIC_LABELS = {
    "fpr95": "FPR95↓",
    "fpr95_ood_tpr": "FPR95(OOD-TPR)↓",
    "auroc": "AUROC↑",
    "aupr_in": "AUPR-In↑",
    "aupr_out": "AUPR-Out↑",
    "aupr_in_trapz": "AUPR-In(trapz)↑",
    "aupr_out_trapz": "AUPR-Out(trapz)↑",
    "id_accuracy": "ID acc↑",
}
MEAN = "mean"  # the column averaging the OOD sets shown (the papers' "Average")


def paper_targets(path: str | Path = TARGETS_FILE, *, include_recalled: bool = False) -> pd.DataFrame:
    """Published numbers to compare with, in percent: one row per (paper, table, method, ID set, OOD set, metric).

    Numbers quoted from memory and not checked against their paper (``[recalled]`` in ``note``) are left out
    unless asked for.
    ``ood_dataset`` is ``mean`` for a paper's average over its OOD sets and empty for ID accuracy.
    """
    targets = pd.read_csv(path, keep_default_na=False, dtype={"value": float})
    if not include_recalled:
        targets = targets[~targets["note"].str.contains("[recalled", regex=False)]
    return targets.reset_index(drop=True)


def _one_id_set(rows: pd.DataFrame) -> str:
    id_sets = rows["id_dataset"].dropna().unique()
    if len(id_sets) != 1:
        raise ValueError(
            f"a paper table shows one ID set, these rows hold {sorted(id_sets)}: "
            "filter them, e.g. rows[rows.id_dataset == 'cifar10']"
        )
    return id_sets[0]


def metric_table(rows, metric: str, *, methods=None, ood_sets=None, aggfunc: str = "mean") -> pd.DataFrame:
    """``metric`` in percent as methods x OOD sets, plus a ``mean`` column over the sets shown.

    Rows of one method and set that differ only in seed are averaged (``aggfunc``: or their
    ``std``, ``min``, ``max``; the ``mean`` column is then that of each seed's mean over the sets);
    rows that differ in ``setting`` are an error (filter to one setting first).
    """
    rows = pd.DataFrame(rows)
    if metric not in rows.columns:
        raise ValueError(f"unknown metric {metric!r}; the rows have {[c for c in rows.columns if c in METRIC_LABELS]}")
    clash = rows.groupby(["method", "ood_dataset"])["setting"].nunique(dropna=False)
    if (clash > 1).any():
        (method, ood), _ = next(iter(clash[clash > 1].items()))
        raise ValueError(
            f"{method} on {ood} has rows of several settings: keep one setting per method "
            f"(e.g. rows[rows.setting == ...]) before tabulating"
        )
    methods = list(methods) if methods is not None else list(dict.fromkeys(rows["method"]))
    ood_sets = list(ood_sets) if ood_sets is not None else list(dict.fromkeys(rows["ood_dataset"]))
    if aggfunc != "mean":  # the spread over seeds of each cell, and of each seed's mean over the sets
        per_seed = [metric_table(part, metric, methods=methods, ood_sets=ood_sets) for _, part in _by_seed(rows)]
        return pd.concat(per_seed).groupby(level=0, sort=False).agg(aggfunc).reindex(index=methods)
    table = 100 * rows.pivot_table(index="method", columns="ood_dataset", values=metric, aggfunc="mean")
    table = table.reindex(index=methods, columns=ood_sets)
    table[MEAN] = table[ood_sets].mean(axis=1, skipna=False)
    return table


def _by_seed(rows: pd.DataFrame):
    seed = rows["seed"] if "seed" in rows.columns else pd.Series(0, index=rows.index)
    return rows.groupby(seed.fillna(-1), sort=True)


def seed_count(rows) -> int:
    """How many seeds ``rows`` hold (at least one: rows without a seed are one run)."""
    rows = pd.DataFrame(rows)
    return 1 if "seed" not in rows.columns else max(1, rows["seed"].dropna().nunique())


def _best(values: pd.Series, metric: str, decimals: int) -> pd.Series:
    """Which entries are best at the shown precision (ties all count)."""
    shown = values.round(decimals)
    best = shown.min() if metric in LOWER_IS_BETTER else shown.max()
    return shown == best


def _cell(value: float, bold: bool, target: float | None, decimals: int, spread: tuple | None = None) -> str:
    """``ours [paper P, ours - P]``; with ``spread`` (std, min, max over seeds) ``ours ± std``, and whether P
    lies inside the seeds' range (min to max)."""
    text = "–" if pd.isna(value) else f"{value:.{decimals}f}"
    has_spread = spread is not None and not pd.isna(value) and not pd.isna(spread[0])
    if has_spread:
        text += f" ± {spread[0]:.{decimals}f}"
    if bold:
        text = f"**{text}**"
    if target is not None:
        diff = "" if pd.isna(value) else f", {value - target:+.{decimals}f}"
        inside = ""
        if has_spread:
            inside = ", inside the seeds' range" if spread[1] <= target <= spread[2] else ", outside the seeds' range"
        text += f" [paper {target:.{decimals}f}{diff}{inside}]"
    return text


def paper_table(
    rows,
    metrics=("fpr95", "auroc"),
    *,
    targets: pd.DataFrame | None = None,
    paper: str | None = None,
    methods=None,
    ood_sets=None,
    accuracy: bool = True,
    decimals: int = 2,
) -> pd.DataFrame:
    """Rows of one ID set as a paper prints them: methods x (OOD set, metric), a ``mean`` per metric last,
    the best of each column in bold, percentages; ID accuracy last when the rows have it.

    Where ``targets`` (see :func:`paper_targets`, optionally only ``paper``'s) has a number for the
    same method, ID set, OOD set and metric, the cell reads ``ours [paper P, ours - P]``. The
    paper's "Average" is matched to the ``mean`` column, which averages the sets *shown*: compare
    them only when the table shows the paper's sets. Returns strings; ``.to_markdown()`` prints it.
    """
    rows = pd.DataFrame(rows)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    id_set = _one_id_set(rows)
    lookup = _target_lookup(targets, paper, id_set)
    tables = {metric: metric_table(rows, metric, methods=methods, ood_sets=ood_sets) for metric in metrics}
    several = seed_count(rows) > 1
    spreads = {
        metric: [metric_table(rows, metric, methods=methods, ood_sets=ood_sets, aggfunc=f) for f in SPREAD]
        for metric in metrics
        if several
    }
    columns = {}  # per OOD set (the mean last), its metrics side by side, as the papers print them
    for ood in tables[metrics[0]].columns:
        for metric, table in tables.items():
            name = ood if len(metrics) == 1 else f"{ood} {METRIC_LABELS.get(metric, metric)}"
            spread = [t[ood].reindex(table.index) for t in spreads[metric]] if several else None
            columns[name] = (table[ood], metric, ood, spread)
    if accuracy and rows["id_accuracy"].notna().any():
        index = next(iter(columns.values()))[0].index
        acc, spread = (100 * rows.groupby("method")["id_accuracy"].mean()).reindex(index), None
        if several:  # each seed's accuracy, then their mean and spread
            per_seed = pd.concat([100 * part.groupby("method")["id_accuracy"].mean() for _, part in _by_seed(rows)])
            acc = per_seed.groupby(level=0).mean().reindex(index)
            spread = [per_seed.groupby(level=0).agg(f).reindex(index) for f in SPREAD]
        columns[METRIC_LABELS["id_accuracy"]] = (acc, "id_accuracy", "", spread)
    out = {}
    for name, (values, metric, ood, spread) in columns.items():
        best = _best(values, metric, decimals)
        cells = zip(values.index, values, best, *(spread or [[None] * len(values)] * 3))
        out[name] = [
            _cell(v, bool(b), lookup.get((method, ood, metric)), decimals, None if spread is None else (s, lo, hi))
            for method, v, b, s, lo, hi in cells
        ]
    return pd.DataFrame(out, index=next(iter(columns.values()))[0].index)


SPREAD = ("std", "min", "max")  # what paper_table shows of a number over seeds: std, and the range


def _target_lookup(targets: pd.DataFrame | None, paper: str | None, id_set: str) -> dict[tuple, float]:
    """(method, OOD set, metric) -> the paper's value, for one ID set; several values for one key are an error."""
    if targets is None:
        return {}
    chosen = targets[targets["id_dataset"] == id_set]
    if paper is not None:
        chosen = chosen[chosen["paper"] == paper]
    keys = ["method", "ood_dataset", "metric"]
    repeated = chosen[chosen.duplicated(keys, keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        raise ValueError(
            f"several targets for {first['method']} on {first['ood_dataset']} ({first['metric']}) from "
            f"{sorted(repeated['paper'].unique())}: pass paper=... to choose one"
        )
    return {tuple(k): v for k, v in zip(chosen[keys].itertuples(index=False), chosen["value"])}
