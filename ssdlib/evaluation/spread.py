"""Results over several seeds: mean ± std (and n) per method × OOD set × setting, as OpenOOD v1.5 reports
every number over three training runs.

A multi-seed run (``ssdlib reproduce --seeds 0,1,2``) runs the profile once per seed into
``<output_dir>/seed_<n>/``; :func:`write` then gathers their rows into ``<output_dir>/results.csv`` (one
row per notebook, method, training mode, arch, ID set, OOD set and setting, each metric's mean, std and
n), ``results.md`` (the tables of ``results.md``, each cell "mean ± std") and a figure of AUROC per
method with error bars. The std is the sample standard deviation (ddof 1); with one seed it is NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ssdlib.evaluation import results
from ssdlib.project import FIGURES_DIR

KEYS = ["notebook", "method", "training_mode", "arch", "id_dataset", "ood_dataset", "setting"]
METRICS = list(results.METRIC_LABELS)  # every metric column of the results table, ID accuracy last
SEED_DIR = "seed_{seed}"
FIGURE = "auroc_over_seeds"  # written to <output_dir>/figures/, beside the notebooks' figure folders


def seed_folder(output_dir: str | Path, seed: int) -> Path:
    """Where seed ``seed`` of a multi-seed run writes: ``<output_dir>/seed_<seed>``."""
    return Path(output_dir) / SEED_DIR.format(seed=seed)


def gather(folders: dict[int, Path]) -> pd.DataFrame:
    """Every row the runs of ``folders`` ({seed: folder}) recorded, its ``seed`` column set to the folder's seed."""
    parts = [results.load(folder).assign(seed=seed) for seed, folder in folders.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=results.COLUMNS)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per :data:`KEYS` combination: ``n`` (seeds), ``seeds``, and each metric's ``_mean`` and ``_std``.

    A row's metrics are averaged over the seeds that recorded it; a key recorded twice by one seed (a
    detector two notebooks record) is a row per notebook already, as ``notebook`` is a key.
    """
    rows = pd.DataFrame(rows)
    keyed = rows.assign(**{k: rows[k].fillna("").astype(str) for k in KEYS})
    groups = keyed.groupby(KEYS, sort=False)
    metrics = {m: pd.to_numeric(keyed[m], errors="coerce") for m in METRICS}
    out = groups.size().rename("n").to_frame()
    out["seeds"] = groups["seed"].agg(lambda s: ",".join(str(int(v)) for v in sorted(s)))
    for m, values in metrics.items():
        by = values.groupby([keyed[k] for k in KEYS], sort=False)
        out[f"{m}_mean"], out[f"{m}_std"] = by.mean(), by.std(ddof=1)
    return out.reset_index()


def _seeds(table: pd.DataFrame) -> list[int]:
    """The seeds any row of a :func:`summary` table was recorded by, in order."""
    return sorted({int(v) for entry in table["seeds"] for v in entry.split(",") if v})


def cell(mean: float, std: float, decimals: int = 2) -> str:
    """``mean ± std`` in percent (– for no number; the std left out where one seed gave it)."""
    if pd.isna(mean):
        return "–"
    return f"{100 * mean:.{decimals}f}" + ("" if pd.isna(std) else f" ± {100 * std:.{decimals}f}")


def _table(part: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Methods (with their setting) x OOD sets of ``metric`` as "mean ± std" strings, ID accuracy last."""
    part = results.labelled(part)
    part = part.assign(
        label=part["method"], text=[cell(m, s) for m, s in zip(part[f"{metric}_mean"], part[f"{metric}_std"])]
    )
    table = part.pivot_table(index="label", columns="ood_dataset", values="text", aggfunc="first", sort=False)
    if metric == "auroc" and part["id_accuracy_mean"].notna().any():
        acc = part.groupby("label", sort=False)[["id_accuracy_mean", "id_accuracy_std"]].first()
        table[results.METRIC_LABELS["id_accuracy"]] = [cell(m, s) for m, s in acc.itertuples(index=False)]
    table.index.name = "method"
    return table.fillna("–")


def markdown(table: pd.DataFrame, extra: list[str] = ()) -> str:
    """The :func:`summary` as ``results.md`` prints a single run: per notebook, AUROC and FPR95 as
    methods x OOD sets, each cell "mean ± std" in percent over the seeds; ``extra`` lines follow the legend."""
    seeds = [str(seed) for seed in _seeds(table)]
    lines = [
        "# Results over seeds",
        "",
        f"Seeds {', '.join(seeds)} (n = {len(seeds)}; a row recorded by fewer seeds says so in `results.csv`). "
        "Each cell: mean ± std over the seeds, in percent (std: sample standard deviation). Every metric, "
        "with its mean, std and n: `results.csv`; each seed's own run: `seed_<n>/`.",
        "",
        *extra,
    ]
    for notebook in dict.fromkeys(sorted(table["notebook"])):
        for id_set, part in table[table["notebook"] == notebook].groupby("id_dataset", sort=False):
            lines += [f"## {notebook or '(no notebook)'} (ID: {id_set})", ""]
            for metric in ("auroc", "fpr95"):
                lines += [f"### {results.METRIC_LABELS[metric]} (%)", "", _table(part, metric).to_markdown(), ""]
    return "\n".join(lines)


def figure(table: pd.DataFrame):
    """AUROC per method with error bars (± std over the seeds), a panel per OOD set, for the notebook that
    compares the most methods (notebook 05's table in the offline profile)."""
    import matplotlib.pyplot as plt  # local: only the figure needs matplotlib

    counts = table.groupby("notebook")["method"].nunique()
    notebook = counts.idxmax()
    part = table[table["notebook"] == notebook]
    part = results.labelled(part)
    part = part.assign(label=part["method"])
    labels, sets = list(dict.fromkeys(part["label"])), list(dict.fromkeys(part["ood_dataset"]))
    cols = min(4, len(sets))
    rows = -(-len(sets) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols + 2, max(2.5, (0.22 * len(labels) + 1) * rows)), sharey=True, squeeze=False
    )
    y = np.arange(len(labels))
    for ax, name in zip(axes.flat, sets):
        values = part[part["ood_dataset"] == name].set_index("label").reindex(labels)
        ax.barh(y, values["auroc_mean"], xerr=values["auroc_std"].fillna(0), capsize=2, color="tab:blue")
        ax.axvline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_xlim(0, 1.02)
        ax.set_title(name, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.flat[len(sets) :]:
        ax.set_visible(False)
    axes[0, 0].set_yticks(y, labels)
    axes[0, 0].invert_yaxis()
    seeds = _seeds(part)
    fig.supxlabel("AUROC, mean ± std over the seeds (dashed: chance)", fontsize=9)
    fig.suptitle(f"{notebook}: AUROC over seeds {', '.join(map(str, seeds))}", fontsize=10)
    fig.tight_layout()
    return fig


def write(output_dir: str | Path, folders: dict[int, Path], extra: list[str] = ()) -> list[Path]:
    """Write ``results.csv``, ``results.md`` (``extra`` lines under its legend) and
    ``figures/auroc_over_seeds.png`` of the runs in ``folders`` into ``output_dir``; return their paths."""
    from ssdlib import plots  # local: plots imports matplotlib, which only the figure needs

    output_dir = Path(output_dir)
    table = summary(gather(folders))
    csv_path, md_path = output_dir / "results.csv", output_dir / "results.md"
    table.to_csv(csv_path, index=False)
    md_path.write_text(markdown(table, extra))
    written = [csv_path, md_path]
    if not table.empty:
        figures = output_dir / FIGURES_DIR
        figures.mkdir(exist_ok=True)
        caption = "AUROC of each method on each OOD set: the mean over the seeds, with error bars of one std."
        written.append(plots.save(figure(table), figures, FIGURE, caption=caption))
    return written
