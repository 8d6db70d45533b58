"""Paper-style tables: layout, mean column, bold best, paper targets and differences; the targets file;
results.md as one section of tables per notebook, results.csv as the full flat table."""

import numpy as np
import pandas as pd
import pytest

from ssdlib.evaluation import results
from ssdlib.evaluation.results import MEAN, metric_table, paper_table, paper_targets


def rows_of(values: dict, metric_values=None, id_dataset="cifar10", **extra):
    """Result rows from {(method, ood): (fpr95, auroc)} as fractions."""
    return pd.DataFrame(
        [
            {
                "method": m,
                "ood_dataset": o,
                "id_dataset": id_dataset,
                "setting": None,
                "seed": 0,
                "fpr95": f,
                "auroc": a,
                "id_accuracy": extra.get("acc", {}).get(m),
            }
            for (m, o), (f, a) in values.items()
        ]
    )


SMALL = {
    ("MSP", "svhn"): (0.60, 0.91),
    ("MSP", "textures"): (0.66, 0.885),
    ("KNN", "svhn"): (0.25, 0.96),
    ("KNN", "textures"): (0.30, 0.94),
}


def test_metric_table_is_percent_with_the_mean_of_the_sets():
    table = metric_table(rows_of(SMALL), "auroc")
    assert list(table.columns) == ["svhn", "textures", MEAN]
    assert table.loc["MSP", "svhn"] == pytest.approx(91.0)
    assert table.loc["KNN", MEAN] == pytest.approx(95.0)
    assert table.loc["MSP", MEAN] == pytest.approx((91.0 + 88.5) / 2)


def test_paper_table_bolds_the_best_per_column_and_puts_paper_numbers_beside_ours():
    targets = pd.DataFrame(
        [
            {
                "paper": "P",
                "method": "KNN",
                "id_dataset": "cifar10",
                "ood_dataset": "svhn",
                "metric": "fpr95",
                "value": 24.53,
                "note": "",
            },
            {
                "paper": "P",
                "method": "MSP",
                "id_dataset": "cifar10",
                "ood_dataset": "mean",
                "metric": "auroc",
                "value": 90.90,
                "note": "",
            },
            {
                "paper": "P",
                "method": "MSP",
                "id_dataset": "imagenet",
                "ood_dataset": "svhn",
                "metric": "auroc",
                "value": 50.0,
                "note": "",
            },  # another ID set: never matched
        ]
    )
    rows = rows_of(SMALL, acc={"MSP": 0.9421, "KNN": 0.95})
    table = paper_table(rows, ("fpr95", "auroc"), targets=targets)
    assert list(table.columns) == [
        "svhn FPR95↓",
        "svhn AUROC↑",
        "textures FPR95↓",
        "textures AUROC↑",
        "mean FPR95↓",
        "mean AUROC↑",
        "ID acc↑",
    ]
    assert list(table.index) == ["MSP", "KNN"]
    # FPR95: lower is better, so KNN is bold; 25.00 - 24.53 = +0.47 beside it
    assert table.loc["KNN", "svhn FPR95↓"] == "**25.00** [paper 24.53, +0.47]"
    assert table.loc["MSP", "svhn FPR95↓"] == "60.00"
    # AUROC: higher is better; the mean column is matched to the paper's average
    assert table.loc["KNN", "svhn AUROC↑"] == "**96.00**"
    assert table.loc["MSP", "mean AUROC↑"] == "89.75 [paper 90.90, -1.15]"
    assert table.loc["KNN", "mean AUROC↑"] == "**95.00**"
    assert table.loc["KNN", "ID acc↑"] == "**95.00**"
    assert "[paper 50.00" not in table.to_markdown()


def test_ties_are_all_bold_and_one_metric_gives_plain_set_names():
    rows = rows_of({("A", "svhn"): (0.1, 0.9), ("B", "svhn"): (0.1, 0.8)})
    table = paper_table(rows, "fpr95", accuracy=False)
    assert list(table.columns) == ["svhn", MEAN]
    assert table["svhn"].tolist() == ["**10.00**", "**10.00**"]


def test_missing_cells_show_a_dash_and_keep_the_paper_value():
    rows = rows_of({("A", "svhn"): (0.1, 0.9), ("B", "lsun"): (0.2, 0.8)})
    targets = pd.DataFrame(
        [
            {
                "paper": "P",
                "method": "A",
                "id_dataset": "cifar10",
                "ood_dataset": "lsun",
                "metric": "auroc",
                "value": 93.0,
                "note": "",
            }
        ]
    )
    table = paper_table(rows, "auroc", targets=targets, accuracy=False)
    assert table.loc["A", "lsun"] == "– [paper 93.00]"
    assert table.loc["A", MEAN] == "–"  # a mean over incomplete sets would mislead


def test_tables_refuse_mixed_id_sets_settings_and_ambiguous_targets():
    mixed = pd.concat([rows_of(SMALL), rows_of(SMALL, id_dataset="cifar100")])
    with pytest.raises(ValueError, match="one ID set"):
        paper_table(mixed)
    two = pd.concat([rows_of(SMALL), rows_of(SMALL).assign(setting="k=5")])
    with pytest.raises(ValueError, match="several settings"):
        metric_table(two, "auroc")
    dup = pd.DataFrame(
        [
            {
                "paper": p,
                "method": "KNN",
                "id_dataset": "cifar10",
                "ood_dataset": "svhn",
                "metric": "auroc",
                "value": v,
                "note": "",
            }
            for p, v in (("P", 1.0), ("Q", 2.0))
        ]
    )
    with pytest.raises(ValueError, match="paper="):
        paper_table(rows_of(SMALL), "auroc", targets=dup)
    assert "[paper 1.00" in paper_table(rows_of(SMALL), "auroc", targets=dup, paper="P").loc["KNN", "svhn"]


def test_seeds_are_averaged():
    rows = pd.concat([rows_of(SMALL), rows_of(SMALL).assign(seed=1, auroc=lambda r: r.auroc - 0.02)])
    assert metric_table(rows, "auroc").loc["KNN", "svhn"] == pytest.approx(95.0)


def test_shipped_targets_hold_the_ssod_tables_and_hide_recalled_numbers():
    targets = paper_targets()
    assert {
        "paper",
        "table",
        "row",
        "method",
        "training_mode",
        "arch",
        "id_dataset",
        "ood_dataset",
        "metric",
        "value",
        "note",
    } <= set(targets.columns)
    assert not targets["note"].str.contains("recalled").any()
    assert paper_targets(include_recalled=True)["note"].str.contains("[recalled", regex=False).any()
    key = ["paper", "table", "method", "id_dataset", "ood_dataset", "metric"]
    assert not targets.duplicated(key).any()
    t2 = targets[(targets.paper == "SSOD") & (targets.table == "Table 2")]
    assert len(t2) == 8 * 13  # 8 methods x (5 sets + average) x 2 metrics + ID accuracy
    # a transcription check: each printed average is the mean of its five sets, to the paper's
    # rounding (some averages are printed to one decimal, e.g. MSP's AUROC 90.9 for 90.862)
    for (method, _metric), part in t2[t2.metric != "id_accuracy"].groupby(["method", "metric"]):
        sets = part[part.ood_dataset != "mean"]["value"]
        assert len(sets) == 5
        assert sets.mean() == pytest.approx(part[part.ood_dataset == "mean"]["value"].item(), abs=0.05), method
    t3 = targets[(targets.paper == "SSOD") & (targets.table == "Table 3")].set_index(["method", "metric"])["value"]
    assert t3[("KNN", "fpr95")] == 11.56 and t3[("SSOD", "fpr95")] == 50.02
    assert np.isclose(t3[("SSOD", "fpr95")] - t3[("KNN", "fpr95")], 38.46)  # the paper's "about 38.46%"


def recorded(notebook, method, ood, auroc, fpr95, setting=None, acc=None):
    """A recorded row with hand-set metrics (``results.row`` computes them from scores)."""
    r = {c: None for c in results.COLUMNS}
    r.update(
        notebook=notebook,
        method=method,
        ood_dataset=ood,
        id_dataset="offline",
        setting=setting,
        auroc=auroc,
        fpr95=fpr95,
        id_accuracy=acc,
        params_file="params/offline.yaml",
        seed=0,
    )
    return r


def test_results_md_has_a_section_per_notebook_with_auroc_and_fpr95_pivots(tmp_path):
    results.record(
        tmp_path,
        [  # recorded out of notebook order, as a rerun of one notebook would
            recorded("03_few_shot_ssdk", "SSD_k", "near", 0.9, 0.5, setting="k=5,copies=10"),
            recorded("02_ssd_clustering", "SSD", "near", 0.80, 0.60, setting="clusters=1"),
            recorded("02_ssd_clustering", "SSD", "textures", 0.99, 0.02, setting="clusters=1"),
            recorded("02_ssd_clustering", "SSD", "near", 0.70, 0.70, setting="clusters=4"),
            recorded("02_ssd_clustering", "SSD", "textures", 0.98, 0.05, setting="clusters=4"),
            recorded("02_ssd_clustering", "MSP", "near", 0.85, 0.40, acc=0.9312),
            recorded("02_ssd_clustering", "MSP", "textures", 0.90, 0.30, acc=0.9312),
        ],
    )
    csv_path, md_path = results.write_tables(tmp_path)
    assert len(pd.read_csv(csv_path)) == 7 and list(pd.read_csv(csv_path).columns) == results.COLUMNS
    md = md_path.read_text()
    assert md.index("## 02_ssd_clustering (ID: offline)") < md.index("## 03_few_shot_ssdk (ID: offline)")
    section = md[md.index("## 02") : md.index("## 03")]
    auroc = section[section.index("### AUROC") : section.index("### FPR95")]
    fpr = section[section.index("### FPR95") :]
    lines = [line for line in auroc.splitlines() if line.startswith("|")]
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["method", "near", "textures", "mean", "ID acc↑"]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]] for line in lines[2:]}
    assert cells["SSD (clusters=1)"] == ["80.00", "**99.00**", "**89.50**", "–"]
    assert cells["SSD (clusters=4)"] == ["70.00", "98.00", "84.00", "–"]
    assert cells["MSP"] == ["**85.00**", "90.00", "87.50", "**93.12**"]
    assert "| MSP " in fpr and "**40.00**" in fpr and "ID acc" not in fpr  # FPR95: lower is best
    assert "| SSD_k (k=5,copies=10) | **90.00**" in md


def test_results_md_without_rows(tmp_path):
    _, md_path = results.write_tables(tmp_path)
    assert "No results were recorded." in md_path.read_text()
