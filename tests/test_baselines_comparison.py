"""Notebook 05's helpers: the most trusted OOD images, their counts per set, and rows beside a paper table
(SSOD's failure case is the claim ``ssod_fails_on_textures``, tests/test_claims.py)."""

import numpy as np
import pandas as pd
import pytest

from ssdlib import plots
from ssdlib.evaluation.baselines import Scored
from ssdlib.evaluation.comparison import (
    below_chance,
    beside_paper,
    most_trusted,
    trusted_counts,
)


def scored(method="M"):
    return Scored(
        method, "", np.array([0.0, 1.0, 2.0, 3.0]), {"a": np.array([5.0, -1.0]), "b": np.array([2.5, 0.5, 3.0])}
    )


def test_most_trusted_ranks_ood_images_over_all_sets_with_their_id_percentile():
    top = most_trusted(scored(), top=3)
    assert top["ood_dataset"].tolist() == ["a", "b", "b"]
    assert top["index"].tolist() == [0, 2, 0]
    np.testing.assert_allclose(top["score"], [5.0, 3.0, 2.5])
    # ID scores strictly below: 4 of 4, 3 of 4 (a tie at 3.0 does not count), 3 of 4
    np.testing.assert_allclose(top["id_percentile"], [100.0, 75.0, 75.0])


def test_below_chance_keeps_auroc_under_half_worst_first_and_plots_each_pair():
    rows = [
        {"method": "X", "ood_dataset": "a", "auroc": 0.4, "fpr95": 0.9},
        {"method": "X", "ood_dataset": "b", "auroc": 0.5, "fpr95": 0.6},  # chance itself is not below it
        {"method": "Y", "ood_dataset": "a", "auroc": 0.1, "fpr95": 1.0},
        {"method": "Y", "ood_dataset": "b", "auroc": 0.9, "fpr95": 0.2},
    ]
    low = below_chance(rows)
    assert list(zip(low["method"], low["ood_dataset"])) == [("Y", "a"), ("X", "a")]
    fig = plots.below_chance_histograms([scored("X"), scored("Y")], low, cols=2)
    assert [ax.get_title() for ax in fig.axes] == ["Y on a: AUROC 0.10", "X on a: AUROC 0.40"]


def test_below_chance_histograms_say_so_when_no_pair_is_below_chance():
    none = below_chance([{"method": "X", "ood_dataset": "a", "auroc": 0.9, "fpr95": 0.2}])
    fig = plots.below_chance_histograms([scored("X")], none)
    assert none.empty and "no method scores an OOD set below chance" in [t.get_text() for t in fig.axes[0].texts]


def test_trusted_counts_per_set_keep_the_method_order():
    counts = trusted_counts([scored("X"), scored("Y")], top=4)
    assert counts.index.tolist() == ["X", "Y"]
    assert counts.loc["X"].to_dict() == {"a": 1, "b": 3}


def test_beside_paper_names_both_id_sets_and_matches_on_method():
    rows = pd.DataFrame(
        [
            {"method": "KNN", "ood_dataset": "textures", "id_dataset": "offline", "fpr95": 0.2, "auroc": 0.9},
            {"method": "KNN", "ood_dataset": "scenes", "id_dataset": "offline", "fpr95": 0.5, "auroc": 0.5},
        ]
    )
    targets = pd.DataFrame(
        [
            {
                "paper": "SSOD",
                "table": "Table 3",
                "method": m,
                "id_dataset": "imagenet",
                "ood_dataset": "textures",
                "metric": k,
                "value": v,
            }
            for m, k, v in [
                ("KNN", "fpr95", 11.56),
                ("KNN", "auroc", 97.18),
                ("SSOD", "fpr95", 50.02),
                ("SSOD", "auroc", 86.11),
            ]
        ]
    )
    table = beside_paper(rows, targets, paper="SSOD", table="Table 3", ood_dataset="textures")
    assert table.columns.tolist() == [
        "ours fpr95 (offline)",
        "ours auroc (offline)",
        "SSOD Table 3 fpr95 (imagenet)",
        "SSOD Table 3 auroc (imagenet)",
    ]
    assert table.loc["KNN"].tolist() == pytest.approx([20.0, 90.0, 11.56, 97.18])
    assert np.isnan(table.loc["SSOD", "ours fpr95 (offline)"])
    with pytest.raises(ValueError, match="no targets"):
        beside_paper(rows, targets, paper="SSOD", table="Table 9", ood_dataset="textures")
