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
    "notebook", "method", "training_mode", "arch", "id_dataset", "ood_dataset", "setting",
    "fpr95", "fpr95_ood_tpr", "auroc", "aupr_in", "aupr_out", "id_accuracy", "params_file", "seed",
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
    """Write ``results.csv`` and ``results.md`` from the recorded rows."""
    output_dir = Path(output_dir)
    table = load(output_dir)
    csv_path, md_path = output_dir / "results.csv", output_dir / "results.md"
    table.to_csv(csv_path, index=False)
    md_path.write_text(table.to_markdown(index=False, floatfmt=".4f") + "\n")
    return csv_path, md_path
