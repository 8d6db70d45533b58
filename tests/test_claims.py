"""The papers' claims: the Student-t interval and every verdict against hand computations, claims measured on a
hand-written results table, and a run that a failed claim does not stop while a failed sanity check does."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ssdlib import checks, profiles
from ssdlib.cli import reproduce as runner
from ssdlib.evaluation import claims, paper_comparison, results

OFFLINE = profiles.load("params/offline.yaml")
BY_ID = {c.id: c for c in claims.CLAIMS}
T_975_2DF = 4.302652729749464  # Student-t quantile 0.975 with 2 degrees of freedom (printed tables: 4.303)


def _row(method, mode, setting, ood, *, auroc=None, fpr95=None, acc=None, notebook="02_ssd_clustering", seed=0):
    return {
        **{c: None for c in results.COLUMNS},
        "notebook": notebook,
        "method": method,
        "training_mode": mode,
        "id_dataset": "offline",
        "ood_dataset": ood,
        "setting": setting,
        "auroc": auroc,
        "fpr95": fpr95,
        "id_accuracy": acc,
        "seed": seed,
    }


def _seed(ssd_near=0.70, plus_near=0.78, msp=0.30, ssod=0.05, acc=(0.99, 0.97), csi_far=0.90):
    """One seed's rows: SSD and SSD+ (notebook 02), vanilla MSP and SSOD (04), KNN and CSI (05), on the
    offline profile's sets; far sets at AUROC 0.95 except CSI's (``csi_far``)."""
    far = OFFLINE.checks.ssd_auroc_sets
    ssod_setting = "alpha=1.5,balance=LWB"
    rows = [_row("SSD", "SimCLR", "clusters=1", "near", auroc=ssd_near)]
    rows += [_row("SSD", "SimCLR", "clusters=1", s, auroc=0.95) for s in far]
    rows += [_row("SSD+", "SupCon", "clusters=1", "near", auroc=plus_near)]
    nb4 = "04_ssod_joint_training"
    rows += [_row("MSP", "CE", "vanilla", "scenes", fpr95=msp, auroc=0.9, acc=acc[0], notebook=nb4)]
    rows += [_row("SSOD", "SSOD", ssod_setting, "scenes", fpr95=ssod, auroc=0.99, acc=acc[1], notebook=nb4)]
    rows += [_row("SSOD", "SSOD", ssod_setting, s, fpr95=0.5, auroc=0.8, acc=acc[1], notebook=nb4) for s in far]
    nb5 = "05_failure_cases"
    rows += [_row("KNN", "SupCE", None, s, fpr95=0.2, auroc=0.95, notebook=nb5) for s in ["scenes", *far]]
    rows += [_row("CSI", "CSI", None, "scenes", fpr95=0.9, auroc=0.4, notebook=nb5)]
    rows += [_row("CSI", "CSI", None, s, fpr95=0.9, auroc=csi_far, notebook=nb5) for s in far]
    return pd.DataFrame(rows)


def test_the_interval_is_students_t_of_the_mean_by_hand():
    low, high = claims.interval([0.2, 0.3, 0.4])  # mean 0.3, sample std 0.1, standard error 0.1 / sqrt(3)
    half = T_975_2DF * 0.1 / math.sqrt(3)  # 0.24841
    assert (low, high) == pytest.approx((0.3 - half, 0.3 + half))
    assert claims.interval([0.1, 0.1]) == (0.1, 0.1)  # no spread: a point, not NaN


@pytest.mark.parametrize(
    ("claim", "low", "high", "expected"),
    [
        ("ssd_plus_near", 0.0516, 0.5484, claims.REPRODUCED),  # > 0: wholly above
        ("ssd_plus_near", -0.5484, -0.0516, claims.CONTRADICTED),  # wholly below
        ("ssd_plus_near", -0.0484, 0.4484, claims.INCONCLUSIVE),  # straddles 0
        ("ssd_plus_near", -0.2, 0.0, claims.INCONCLUSIVE),  # touches the margin
        ("ssod_keeps_accuracy", -0.01, 0.02, claims.REPRODUCED),  # < 0.03: wholly below
        ("ssod_keeps_accuracy", 0.04, 0.06, claims.CONTRADICTED),
        ("ssod_keeps_accuracy", 0.02, 0.04, claims.INCONCLUSIVE),
        ("ssd_vs_supervised", -0.019, 0.1, claims.REPRODUCED),  # > -0.02
    ],
)
def test_verdict_by_where_the_interval_lies_against_the_margin(claim, low, high, expected):
    assert claims.verdict(BY_ID[claim], low, high) == expected


def test_claims_measured_on_a_hand_written_table():
    rows = _seed()
    plus = claims.measure(BY_ID["ssd_plus_near"], rows, OFFLINE)
    assert plus.effect == pytest.approx(0.08) and not plus.broken
    assert plus.detail == "AUROC↑ on near: SSD+ 0.780, SSD 0.700"
    assert claims.measure(BY_ID["ssod_beats_msp"], rows, OFFLINE).effect == pytest.approx(0.25)
    assert claims.measure(BY_ID["ssod_keeps_accuracy"], rows, OFFLINE).effect == pytest.approx(0.02)
    assert claims.measure(BY_ID["ssod_beats_knn"], rows, OFFLINE).effect == pytest.approx(0.15)
    assert claims.measure(BY_ID["ssod_fails_on_textures"], rows, OFFLINE).effect == pytest.approx(0.3)  # 0.5 - 0.2
    assert claims.measure(BY_ID["ssd_far_ood"], rows, OFFLINE).effect == pytest.approx(0.95)
    missing = claims.measure(BY_ID["ssdk_near"], rows, OFFLINE)
    assert missing.effect is None and missing.detail == "no rows of SSD_k (k=5, copies=10)"


def test_one_seed_gives_the_sign_and_no_verdict():
    table = claims.ledger({0: _seed(plus_near=0.65)}, OFFLINE).set_index("claim")
    plus = table.loc["ssd_plus_near"]
    assert plus["verdict"] == claims.ONE_SEED and plus["sign"] == "-" and plus["n"] == 1
    assert plus["effect_mean"] == pytest.approx(-0.05) and math.isnan(plus["ci_low"]) and plus["interval"] == ""
    assert "SSD+ 0.650, SSD 0.700" in plus["note"]
    msp = table.loc["ssod_beats_msp"]
    assert msp["sign"] == "+" and msp["paper_effect"] == pytest.approx(0.6246 - 0.1763)  # Table 2, Places
    assert msp["paper_effect_inside"] == "" and "Table 2, Places (cifar10)" == msp["paper_where"]


def test_over_seeds_each_verdict_with_the_papers_effect_beside_it():
    per_seed = {s: _seed(plus_near=0.70 + d, msp=0.30 + d) for s, d in zip((1, 2, 3), (0.2, 0.3, 0.4))}
    table = claims.ledger(per_seed, OFFLINE).set_index("claim")
    plus = table.loc["ssd_plus_near"]  # effects 0.2, 0.3, 0.4
    half = T_975_2DF * 0.1 / math.sqrt(3)
    assert plus["n"] == 3 and plus["seeds"] == "1,2,3" and plus["interval"] == claims.INTERVAL
    assert plus["effect_mean"] == pytest.approx(0.3) and plus["effect_std"] == pytest.approx(0.1)
    assert (plus["ci_low"], plus["ci_high"]) == pytest.approx((0.3 - half, 0.3 + half))
    assert plus["verdict"] == claims.REPRODUCED
    msp = table.loc["ssod_beats_msp"]  # 0.45, 0.55, 0.65 over seeds; Table 2's 0.4483 lies inside [0.30, 0.80]
    assert msp["verdict"] == claims.REPRODUCED and msp["paper_effect_inside"] == "yes"
    accuracy = table.loc["ssod_keeps_accuracy"]  # 0.02 on every seed: the interval is the point 0.02 < 0.03
    assert accuracy["verdict"] == claims.REPRODUCED and accuracy["paper_effect_inside"] == "no"
    contradicted = claims.ledger({s: _seed(plus_near=0.5 + 0.01 * s) for s in (1, 2, 3)}, OFFLINE)
    assert contradicted.set_index("claim").loc["ssd_plus_near", "verdict"] == claims.CONTRADICTED
    mixed = claims.ledger({s: _seed(plus_near=p) for s, p in zip((1, 2, 3), (0.65, 0.75, 0.78))}, OFFLINE)
    assert mixed.set_index("claim").loc["ssd_plus_near", "verdict"] == claims.INCONCLUSIVE


def test_a_method_at_chance_on_the_far_sets_is_not_comparable_and_says_why():
    per_seed = {1: _seed(), 2: _seed(csi_far=0.52)}  # CSI at 0.52 on every far set on seed 2: <= 0.5 + 0.05
    table = claims.ledger(per_seed, OFFLINE).set_index("claim")
    csi = table.loc["ssod_beats_csi"]
    assert csi["verdict"] == claims.NOT_COMPARABLE and csi["n"] == 2
    assert csi["note"] == "seed 2: CSI's mean AUROC over the far sets is 0.520 (chance 0.5)"
    assert table.loc["ssod_beats_knn", "verdict"] != claims.NOT_COMPARABLE  # SSOD's far sets at 0.8 pass


def test_a_claim_the_profile_does_not_measure_says_why():
    ssod_profile = profiles.load("params/cifar10_ssod.yaml")
    table = claims.ledger({0: pd.DataFrame(columns=results.COLUMNS)}, ssod_profile).set_index("claim")
    assert table.loc["ssd_plus_near", "note"] == "the profile does not run notebook 02"
    textures = table.loc["ssod_fails_on_textures"]
    assert textures["verdict"] == claims.NOT_MEASURED and "Table 2 has SSOD ahead of KNN" in textures["note"]
    assert list(table.reset_index().columns) == claims.COLUMNS


def test_a_paper_profiles_comparison_page_ends_with_the_claims_verdicts(tmp_path):
    ssod_profile = profiles.load("params/cifar10_ssod.yaml")
    table = claims.ledger({0: pd.DataFrame(columns=results.COLUMNS)}, ssod_profile)
    extra = claims.markdown_lines(table, heading="## The papers' claims")
    page = paper_comparison.write(tmp_path, ssod_profile, extra=extra).read_text()
    assert page.index("## SSOD (Pei et al. 2023), Table 2") < page.index("## The papers' claims")
    assert "| ssod_beats_msp " in page and "not measured" in page


def test_every_claim_is_declared_once_with_its_source():
    assert len(BY_ID) == len(claims.CLAIMS)
    for c in claims.CLAIMS:
        assert c.paper in ("SSD", "SSOD") and c.where and c.statement.endswith(".") and c.direction in "<>"


TINY = {"profile": "tiny", "notebooks": ["02"], "data": {"ood_datasets": ["near", "blobs"], "synthetic_per_set": 10}}
TINY["data"]["offline"] = {"train_per_class": 2, "test_per_class": 2}
TINY["checks"] = {"near_ood_set": "near", "ssd_auroc_sets": ["blobs"]}


@pytest.fixture
def claimed_run(tmp_path, monkeypatch):
    """A one-notebook profile whose notebook 02 stands in as a function: SSD+ below SSD on ``near`` on every
    seed (the claim fails) and a sanity check that fails on the seeds listed in ``failing``."""
    notebook_dir = tmp_path / "notebooks"
    notebook_dir.mkdir()
    (notebook_dir / "02_toy.ipynb").write_text("{}")
    profile = tmp_path / "tiny.yaml"
    profile.write_text(yaml.safe_dump(TINY))
    failing = []

    def execute(notebook, output_dir, parameters, log_output):
        P = profiles.load(profile, parameters["overrides"])
        rows = [
            _row("SSD", "SimCLR", "clusters=1", "near", auroc=0.8 + 0.01 * P.seed, seed=P.seed),
            _row("SSD", "SimCLR", "clusters=1", "blobs", auroc=0.95, seed=P.seed),
            _row("SSD+", "SupCon", "clusters=1", "near", auroc=0.7, seed=P.seed),
        ]
        results.record(output_dir, rows)
        c = checks.Checks(output_dir, "02", enforce=P.checks.enforce)
        c.holds("pipeline_ran", P.seed not in failing)
        c.conclude()
        return 0.1

    monkeypatch.setattr(runner, "execute", execute)
    monkeypatch.setattr(runner, "declared_parameters", lambda nb: {"params_file", "output_dir", "overrides"})
    return profile, notebook_dir, failing


def test_a_failed_claim_does_not_stop_a_run_and_a_failed_sanity_check_does(claimed_run, tmp_path):
    profile, notebook_dir, failing = claimed_run
    single = runner.reproduce(profile, tmp_path / "single", notebook_dir=notebook_dir)
    assert json.loads((single / "run.json").read_text())["status"] == "finished"
    ledger = pd.read_csv(single / claims.CSV_FILE).set_index("claim")
    assert ledger.loc["ssd_plus_near", "verdict"] == claims.ONE_SEED and ledger.loc["ssd_plus_near", "sign"] == "-"
    assert "one seed: - (the other side)" in (single / claims.MD_FILE).read_text()

    seeds = runner.reproduce(profile, tmp_path / "seeds", notebook_dir=notebook_dir, seeds=[0, 1, 2])
    assert json.loads((seeds / "run.json").read_text())["status"] == "finished"
    ledger = pd.read_csv(seeds / claims.CSV_FILE).set_index("claim")
    assert ledger.loc["ssd_plus_near", "verdict"] == claims.CONTRADICTED and ledger.loc["ssd_plus_near", "n"] == 3

    failing.append(1)
    with pytest.raises(runner.RunError, match="1 checks failed over the seeds: pipeline_ran"):
        runner.reproduce(profile, tmp_path / "failed", notebook_dir=notebook_dir, seeds=[0, 1, 2])
    assert (tmp_path / "failed" / claims.CSV_FILE).is_file()  # the ledger is written before the run fails


LEDGER = Path("docs/ledger")


# The profile's threshold for each check of the ledger (checks.py names them in the notebooks)
THRESHOLD_OF = {
    "simclr_knn_accuracy": "min_knn_accuracy",
    "supcon_knn_accuracy": "min_supcon_knn_accuracy",
    "classifier_accuracy": "min_classifier_accuracy",
    "ssd_near_auroc": "min_near_auroc",
    "msp_near_auroc": "min_near_auroc",
    "ssod_background_offset": "min_ssod_background_offset",
}


def test_the_committed_ledger_is_of_the_committed_profile_and_clears_its_sanity_thresholds_on_every_seed():
    """docs/ledger is the offline profile's run over 8 fresh seeds: a change to the profile's recipe leaves it
    stale, and this says so; and every value it recorded clears the profile's sanity threshold for it."""
    ran = profiles.load(LEDGER / "params.yaml")
    same = {"exclude": {"seed", "seeds", "checks"}}
    assert ran.model_dump(**same) == OFFLINE.model_dump(**same), (
        "params/offline.yaml changed since docs/ledger was written: rerun the command in docs/ledger/README.md"
    )
    over_seeds = json.loads((LEDGER / "checks_over_seeds.json").read_text())
    assert len(ran.seeds) == 8 and over_seeds
    assert all(c["passed"] and sorted(map(int, c["values"])) == sorted(ran.seeds) for c in over_seeds)
    below = []
    for c in (c for c in over_seeds if c["relation"] == ">="):
        key = "min_ssd_auroc" if c["name"].startswith(("ssd_auroc_", "ssdk_auroc_")) else THRESHOLD_OF[c["name"]]
        worst = min(c["values"].values())
        if worst < getattr(OFFLINE.checks, key):
            below.append(f"{c['notebook']} {c['name']}: worst {worst:.3f} < {key} {getattr(OFFLINE.checks, key)}")
    assert not below


def test_the_committed_ledger_is_what_the_claims_module_computes_from_its_seeds_rows():
    ran = profiles.load(LEDGER / "params.yaml")
    per_seed = {seed: pd.read_csv(LEDGER / f"seed_{seed}" / "results.csv") for seed in ran.seeds}
    rebuilt = claims.ledger(per_seed, ran).set_index("claim")
    committed = pd.read_csv(LEDGER / claims.CSV_FILE).set_index("claim")
    assert list(rebuilt.index) == list(committed.index)
    assert (rebuilt["verdict"] == committed["verdict"]).all()
    measured = committed["effect_mean"].notna()
    assert rebuilt.loc[measured, "effect_mean"].to_numpy() == pytest.approx(committed.loc[measured, "effect_mean"])
