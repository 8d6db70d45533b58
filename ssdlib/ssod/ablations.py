"""The SSOD paper's ablations (Tables 4-6) on one OOD set: one run per value of ``ssod.alphas``,
``ssod.balances`` or ``ssod.backbones``, each trained once per output folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ssdlib.params import Params
from ssdlib.ssod.runs import trained
from ssdlib.ssod.scoring import evaluate

if TYPE_CHECKING:
    from ssdlib.data.registry import DatasetBundle


ABLATIONS = {"alpha": "alphas", "balance": "balances", "backbone": "backbones"}


def ablation(
    P: Params,
    bundle: DatasetBundle,
    output_dir: str | Path,
    field: str,
    *,
    notebook: str = "",
    params_file: str | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Results rows of the ablation over ``field`` ("alpha", "balance" or "backbone") on ``P.ssod.ablation_ood``.

    Each value of the matching list (``alphas``, ``balances``, ``backbones``) is one run, the rest
    of ``P.ssod`` unchanged; ``setting`` names it (e.g. ``"balance=DR"``). For backbones each also
    gets its vanilla classifier (alpha 0, scored by MSP; released or fine-tuned as ``vanilla`` says),
    as Table 6 compares the two.
    """
    if field not in ABLATIONS:
        raise ValueError(f"unknown ablation {field!r}; choose one of {', '.join(ABLATIONS)}")
    bundle.require_ood("ssod.ablation_ood", P.ssod.ablation_ood)
    rows = []
    for value in getattr(P.ssod, ABLATIONS[field]):
        variants = [{field: value}] + ([{field: value, "alpha": 0.0}] if field == "backbone" else [])
        for overrides in variants:
            run = trained(P, bundle, output_dir, log=log, progress=progress, **overrides)
            rows += evaluate(
                run,
                P,
                bundle,
                sets=[P.ssod.ablation_ood],
                setting=f"{field}={value}",
                notebook=notebook,
                params_file=params_file,
            )
    return rows


def ablation_table(rows: list[dict[str, Any]], field: str) -> pd.DataFrame:
    """The rows of one ablation as a table: the ablated value (column ``field``), method, FPR95,
    AUROC and ID accuracy, in the order the runs were made."""
    table = pd.DataFrame(rows)
    table = table[table["setting"].str.startswith(f"{field}=")].copy()
    values = table["setting"].str.split("=", n=1).str[1]
    table[field] = pd.to_numeric(values) if field == "alpha" else values
    return table[[field, "method", "ood_dataset", "fpr95", "auroc", "id_accuracy"]].reset_index(drop=True)
