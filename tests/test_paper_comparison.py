"""paper_comparison.md: the targets a profile covers, our rows under the papers' names, each cell
ours [paper P, ours - P], the smoke banner, and a mapping that names only methods the targets hold."""

import pandas as pd

from ssdlib import profiles
from ssdlib.evaluation import paper_comparison as pc
from ssdlib.evaluation import results

SSOD_CIFAR = profiles.load("params/cifar10_ssod.yaml")
SSOD_IMAGENET = profiles.load("params/imagenet_ssod.yaml")
SSD_CIFAR = profiles.load("params/cifar10.yaml")
TARGETS = results.paper_targets()


def our_row(method, training_mode, ood, fpr95, auroc, *, setting=None, notebook="05_failure_cases", **extra):
    """One recorded result row (metrics as fractions), as a notebook writes it."""
    return {
        "notebook": notebook,
        "method": method,
        "training_mode": training_mode,
        "arch": "resnet18",
        "id_dataset": extra.pop("id_dataset", "cifar10"),
        "ood_dataset": ood,
        "setting": setting,
        "fpr95": fpr95,
        "auroc": auroc,
        "id_accuracy": extra.pop("id_accuracy", None),
        **extra,
    }


def section(page: str, heading: str) -> pd.DataFrame:
    """The Markdown table under ``## <heading>`` as cells (method x column)."""
    lines = page.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0].splitlines()
    table = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    header, body = table[0], table[2:]
    return pd.DataFrame([r[1:] for r in body], index=[r[0] for r in body], columns=header[1:])


def unbold(text: str) -> str:
    return text.replace("**", "")


def paper_value(paper, table, row, ood, metric) -> float:
    chosen = TARGETS[
        (TARGETS["paper"] == paper)
        & (TARGETS["table"] == table)
        & (TARGETS["row"] == row)
        & (TARGETS["ood_dataset"] == ood)
        & (TARGETS["metric"] == metric)
    ]
    assert len(chosen) == 1, (paper, table, row, ood, metric)
    return float(chosen["value"].iloc[0])


def cell(ours: float, target: float) -> str:
    return f"{ours:.2f} [paper {target:.2f}, {ours - target:+.2f}]"


# -- which targets a profile covers ------------------------------------------------------------


def test_set_names_of_a_profile_map_to_the_targets_names():
    assert pc.set_key("imagefolder:iNaturalist") == "inaturalist"
    assert pc.set_key("imagefolder:/data/ood/SUN/") == "sun"
    assert pc.set_key("places365") == pc.set_key("places") == pc.set_key("Places")


def test_an_imagenet_profile_covers_its_image_folders_places_and_id_accuracy():
    covered = pc.covered_targets(SSOD_IMAGENET)
    table1 = covered[(covered["paper"] == "SSOD") & (covered["table"] == "Table 1")]
    assert list(dict.fromkeys(table1["ood_dataset"])) == ["inaturalist", "sun", "places", ""]
    assert set(covered["id_dataset"]) == {"imagenet"}
    assert {("KNN", "Table 2"), ("SSOD", "Table 3")} <= set(zip(covered["paper"], covered["table"]))


def test_the_average_is_covered_only_where_the_profile_loads_all_the_tables_sets():
    def sets(P):
        covered = pc.covered_targets(P)
        return set(covered[(covered["paper"] == "SSOD") & (covered["table"] == "Table 2")]["ood_dataset"])

    assert sets(SSOD_CIFAR) == {"svhn", "lsun", "isun", "textures", "places365", "mean", ""}
    assert sets(SSD_CIFAR) == {"svhn", "textures", ""}  # no LSUN, iSUN, Places: no Average


# -- the page ------------------------------------------------------------------------------------


def test_a_cell_shows_ours_in_percent_the_papers_number_and_the_difference():
    rows = [
        our_row("SSOD", "SSOD", "svhn", 0.1234, 0.97, setting="alpha=1.5,balance=LWB", id_accuracy=0.95),
        our_row("Mahalanobis", "SupCE", "places365", 0.80, 0.85, setting="mahalanobis_epsilon=0.0"),
        our_row("MSP", "CE", "lsun", 0.40, 0.95, setting="vanilla", notebook="04_ssod_joint_training"),
    ]
    table = section(pc.markdown(rows, SSOD_CIFAR, smoke=False), "SSOD (Pei et al. 2023), Table 2")
    fpr = paper_value("SSOD", "Table 2", "SSOD", "svhn", "fpr95")
    assert unbold(table.loc["SSOD", "svhn FPR95↓"]) == cell(12.34, fpr)
    assert unbold(table.loc["SSOD", "ID acc↑"]) == cell(95.0, 93.91)
    assert unbold(table.loc["MaDist", "places365 AUROC↑"]) == cell(85.0, 83.50)
    assert unbold(table.loc["MSP", "lsun FPR95↓"]) == cell(40.0, 45.21)
    assert list(table.index) == ["MSP", "MaDist", "ODIN", "GODIN", "Energy", "CSI", "KNN", "SSOD"]  # the paper's order


# Table 2's baseline columns that need no training method of their own, as notebook 05 records them on
# params/cifar10_ssod.yaml: the paper's name -> (our method, training mode)
TABLE_2_BASELINES = {
    "MaDist": ("Mahalanobis", "SupCE"),
    "ODIN": ("ODIN", "SupCE"),
    "GODIN": ("GODIN", "GODIN"),
    "Energy": ("Energy", "SupCE"),
    "KNN": ("KNN", "SupCE"),
    "MSP": ("MSP", "SupCE"),  # without notebook 04's vanilla classifier
}
TABLE_2_SETS = ["svhn", "lsun", "isun", "textures", "places365"]


def test_table_2s_baseline_columns_are_notebook_05s_rows():
    rows = [
        our_row(method, mode, ood, 0.1 + 0.01 * i + 0.1 * j, 0.9, id_accuracy=0.93)
        for i, (method, mode) in enumerate(TABLE_2_BASELINES.values())
        for j, ood in enumerate(TABLE_2_SETS)
    ]
    rows.append(our_row("KNN+", "SupCon", "svhn", 0.03, 0.99))  # KNN w/: the KNN paper's Table 1
    page = pc.markdown(rows, SSOD_CIFAR, smoke=False)
    table = section(page, "SSOD (Pei et al. 2023), Table 2")
    for i, name in enumerate(TABLE_2_BASELINES):
        for j, ood in enumerate(TABLE_2_SETS):
            ours = 100 * (0.1 + 0.01 * i + 0.1 * j)
            assert unbold(table.loc[name, f"{ood} FPR95↓"]) == cell(
                ours, paper_value("SSOD", "Table 2", name, ood, "fpr95")
            )
        mean = 100 * (0.1 + 0.01 * i + 0.2)  # over the five sets, as the paper's Average
        assert unbold(table.loc[name, "mean FPR95↓"]) == cell(
            mean, paper_value("SSOD", "Table 2", name, "mean", "fpr95")
        )
        assert unbold(table.loc[name, "ID acc↑"]) == cell(93.0, paper_value("SSOD", "Table 2", name, "", "id_accuracy"))
    assert table.loc["CSI", "svhn FPR95↓"].startswith("–")  # a training method of its own: no row of ours
    knn = section(page, "KNN (Sun et al. 2022), Table 1")
    assert unbold(knn.loc["KNN+", "svhn FPR95↓"]) == cell(3.0, paper_value("KNN", "Table 1", "KNN+", "svhn", "fpr95"))


def test_image_folder_sets_appear_under_the_papers_names():
    rows = [
        our_row("SSOD", "SSOD", "imagefolder:iNaturalist", 0.30, 0.92, setting="alpha=1.5,balance=LWB"),
        our_row("KNN+", "SupCon", "places365", 0.60, 0.85, setting="knn_k=1000"),
    ]
    rows = [{**r, "id_dataset": "imagenet"} for r in rows]
    with_supcon = {**rows[0], "method": "SSOD+", "training_mode": "SSOD+SupCon", "setting": "alpha=1.5,supcon=1"}
    page = pc.markdown([*rows, {**with_supcon, "fpr95": 0.2}], SSOD_IMAGENET, smoke=False)
    assert unbold(section(page, "SSOD (Pei et al. 2023), Table 1").loc["SSOD (w/)", "inaturalist FPR95↓"]) == cell(
        20.0, 20.32
    )
    page = pc.markdown(rows, SSOD_IMAGENET, smoke=False)
    table1 = section(page, "SSOD (Pei et al. 2023), Table 1")
    assert list(table1.columns[:6:2]) == ["inaturalist FPR95↓", "sun FPR95↓", "places FPR95↓"]
    assert unbold(table1.loc["SSOD (w/o)", "inaturalist FPR95↓"]) == cell(30.0, 31.70)
    assert table1.loc["SSOD (w/)", "inaturalist FPR95↓"].startswith("–")  # SSOD (w/) is a row of its own
    assert unbold(table1.loc["KNN (w/)", "places AUROC↑"]) == cell(85.0, 84.71)
    knn = section(page, "KNN (Sun et al. 2022), Table 2")
    assert unbold(knn.loc["KNN+ (SupCon)", "places FPR95↓"]) == cell(60.0, 60.02)


def test_targets_without_a_row_of_ours_show_no_number_of_ours():
    rows = [our_row("SSOD", "SSOD", "places365", 0.55, 0.84, setting="alpha=1.5,balance=LWB", id_dataset="imagenet")]
    table = section(pc.markdown(rows, SSOD_IMAGENET, smoke=False), "SSOD (Pei et al. 2023), Table 1")
    assert table.loc["SSOD (w/)", "places FPR95↓"] == "– [paper 41.44]"  # this run trained no SSOD (w/)
    assert table.loc["MSP", "inaturalist AUROC↑"] == "– [paper 87.74]"  # not recorded by this run
    mos = section(pc.markdown(rows, SSOD_IMAGENET, smoke=False), "SSOD (Pei et al. 2023), Table 3")
    assert mos.loc["MOS", "textures FPR95↓"] == "– [paper 60.43]"


def test_ssd_is_one_cluster_from_the_first_notebook_and_ssod_the_profiles_run_not_an_ablation():
    rows = [
        our_row("SSD", "SimCLR", "svhn", 0.02, 0.996, setting="clusters=1", notebook="02_ssd_clustering"),
        our_row("SSD", "SimCLR", "svhn", 0.50, 0.70, setting="clusters=4", notebook="02_ssd_clustering"),
        our_row("SSD", "SimCLR", "svhn", 0.90, 0.60, setting="clusters=1", notebook="05_failure_cases"),
        our_row("SSOD", "SSOD", "svhn", 0.90, 0.60, setting="alpha=0.7"),
        our_row("SSOD", "SSOD", "svhn", 0.20, 0.95, setting="alpha=1.5,balance=LWB"),
    ]
    page = pc.markdown(rows, SSD_CIFAR, smoke=False)
    readme = section(page, "SSD (Sehwag et al. 2021), README")
    auroc = paper_value("SSD", "README", "SSD", "svhn", "auroc")
    assert unbold(readme.loc["SSD", "svhn AUROC↑"]) == cell(99.6, auroc)
    assert section(page, "SSOD (Pei et al. 2023), Table 2").loc["SSOD", "svhn FPR95↓"].startswith("**20.00**")


def test_the_smoke_banner_is_on_smoke_runs_only():
    rows = [our_row("SSOD", "SSOD", "svhn", 0.2, 0.95, setting="alpha=1.5,balance=LWB")]
    assert "SMOKE RUN" in pc.markdown(rows, SSOD_CIFAR, smoke=True)
    assert "SMOKE RUN" not in pc.markdown(rows, SSOD_CIFAR, smoke=False)
    assert "notebooks run: 05_failure_cases." in pc.markdown(rows, SSOD_CIFAR, smoke=False)


def test_a_profile_covering_no_target_says_so_in_one_line():
    offline = profiles.validate({"profile": "offline", "data": {"id_dataset": "offline", "ood_datasets": ["near"]}})
    page = pc.markdown([], offline, smoke=False)
    assert "Profile offline covers no published number: nothing to compare." in page
    assert "##" not in page


def test_write_puts_the_page_beside_the_recorded_rows(tmp_path):
    results.record(tmp_path, [our_row("SSOD", "SSOD", "textures", 0.1, 0.97, setting="alpha=1.5,balance=LWB")])
    path = pc.write(tmp_path, SSOD_CIFAR, smoke=True)
    assert path == tmp_path / "paper_comparison.md"
    table = section(path.read_text(), "SSOD (Pei et al. 2023), Table 2")
    assert unbold(table.loc["SSOD", "textures FPR95↓"]) == cell(10.0, 14.39)


# -- the mapping ---------------------------------------------------------------------------------


def test_every_mapped_method_is_a_method_of_its_paper_in_the_targets():
    every = results.paper_targets(include_recalled=True)
    named = set(zip(every["paper"], every["row"]))
    assert set(pc.COUNTERPARTS) <= named, sorted(set(pc.COUNTERPARTS) - named)


def test_the_mapping_agrees_with_the_targets_method_column():
    every = results.paper_targets(include_recalled=True)
    ours = every.groupby(["paper", "row"])["method"].unique()
    for key, counterparts in pc.COUNTERPARTS.items():
        assert list(ours[key]) == [counterparts[0].method], key
