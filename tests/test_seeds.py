"""Runs over several seeds: mean ± std tables against hand computations, checks judged on the means and on
every seed, the paper comparison's spread, and the runner's ``--seeds`` (notebooks stood in by a function
that records what a seed's notebook would, so no kernel starts)."""

import json
import math

import pandas as pd
import pytest
import yaml

from ssdlib import checks, profiles
from ssdlib import params as params_mod
from ssdlib.cli import reproduce as runner
from ssdlib.evaluation import paper_comparison, results, spread


def _record(folder, seed, auroc, method="toy", ood="noise", notebook="05"):
    """One row whose AUROC is ``auroc`` (ID scores above the OOD ones for that share of the pairs)."""
    folder.mkdir(parents=True, exist_ok=True)
    n_ood = 4
    above = round(auroc * n_ood)
    ood_scores = [0.0] * above + [2.0] * (n_ood - above)
    results.record(
        folder,
        [results.row(method, [1.0], ood_scores, id_dataset="offline", ood_dataset=ood, seed=seed, notebook=notebook)],
    )


def test_summary_gives_mean_sample_std_and_n_per_row(tmp_path):
    folders = {s: tmp_path / f"seed_{s}" for s in (0, 1, 2)}
    for (seed, folder), auroc in zip(folders.items(), (0.5, 0.75, 1.0)):
        _record(folder, seed, auroc)
    _record(folders[0], 0, 0.25, method="other")  # a row only seed 0 recorded
    table = spread.summary(spread.gather(folders)).set_index("method")
    assert table.loc["toy", "n"] == 3 and table.loc["toy", "seeds"] == "0,1,2"
    assert table.loc["toy", "auroc_mean"] == pytest.approx(0.75)
    assert table.loc["toy", "auroc_std"] == pytest.approx(math.sqrt((0.25**2 + 0 + 0.25**2) / 2))
    assert table.loc["other", "n"] == 1 and math.isnan(table.loc["other", "auroc_std"])
    md = spread.markdown(spread.summary(spread.gather(folders)))
    assert "| toy " in md and "75.00 ± 25.00" in md and "25.00 " in md and "Seeds 0, 1, 2 (n = 3" in md


def _check(notebook, name, value, threshold, relation=">=", passed=None):
    test = checks.RELATIONS[relation][0] if relation != "holds" else None
    ok = passed if passed is not None else test(value, threshold)
    return checks.Check(notebook, name, value, threshold, relation, ok)


def test_a_check_passing_on_the_mean_but_failing_on_one_seed_is_failed_and_says_where():
    per_seed = {
        0: [_check("02", "gain", 0.20, 0.15), _check("02", "done", None, None, "holds", True)],
        1: [_check("02", "gain", 0.10, 0.15), _check("02", "done", None, None, "holds", True)],
        2: [_check("02", "gain", 0.30, 0.15), _check("02", "done", None, None, "holds", True)],
    }
    over = {c.name: c for c in checks.over_seeds(per_seed)}
    gain = over["gain"]
    assert gain.mean == pytest.approx(0.2) and gain.std == pytest.approx(0.1)
    assert gain.passed_on_mean and gain.failed_seeds == [1] and not gain.passed
    assert "FAILED gain" in gain.describe() and "failed on seed(s) 1" in gain.describe()
    assert over["done"].passed and over["done"].passed_on_mean


def test_a_check_failing_on_the_mean_and_one_missing_on_a_seed_fail():
    per_seed = {0: [_check("04", "gap", 0.0, 0.1), _check("04", "x", 1.0, 0.5)], 1: [_check("04", "gap", 0.05, 0.1)]}
    over = {c.name: c for c in checks.over_seeds(per_seed)}
    assert not over["gap"].passed_on_mean and over["gap"].failed_seeds == [0, 1]
    assert over["x"].missing_seeds == [1] and not over["x"].passed
    # the thresholds of checks that compare two measured values (e.g. SSOD's against KNN's FPR95) are averaged too
    varying = checks.over_seeds({0: [_check("05", "t", 0.6, 0.2, ">")], 1: [_check("05", "t", 0.3, 0.4, ">")]})[0]
    assert varying.threshold_mean == pytest.approx(0.3) and varying.passed_on_mean and varying.failed_seeds == [1]


def test_paper_table_shows_the_spread_and_whether_the_paper_lies_inside_it():
    rows = pd.DataFrame(
        [
            {"method": "MSP", "ood_dataset": "svhn", "auroc": a, "fpr95": 0.5, "id_dataset": "c", "seed": s}
            for s, a in ((0, 0.90), (1, 0.92), (2, 0.94))
        ]
    ).assign(id_accuracy=float("nan"), setting=None)
    targets = pd.DataFrame(
        [{"method": "MSP", "ood_dataset": "svhn", "metric": "auroc", "value": 91.0, "id_dataset": "c", "paper": "P"}]
    )
    cell = results.paper_table(rows, "auroc", targets=targets).loc["MSP", "svhn"]
    assert cell.startswith("**92.00 ± 2.00**") and "paper 91.00, +1.00, inside the seeds' range" in cell
    outside = results.paper_table(rows, "auroc", targets=targets.assign(value=95.0)).loc["MSP", "svhn"]
    assert "outside the seeds' range" in outside
    single = results.paper_table(rows[rows.seed == 0], "auroc", targets=targets).loc["MSP", "svhn"]
    assert single == "**90.00** [paper 91.00, -1.00]"  # one seed: as before, no spread


def test_seed_lists_are_checked_where_params_are():
    with pytest.raises(params_mod.ParamsError, match="twice"):
        profiles.validate({"profile": "p", "seeds": [0, 0]})
    with pytest.raises(runner.RunError, match="whole numbers"):
        runner._seed_list("0,one")
    assert runner._seed_list("0, 1,2") == [0, 1, 2]
    assert runner.seed_overrides(3) == {"seed": 3, "data": {"offline": {"seed": 3}}, "checks": {"enforce": False}}


TINY = {"profile": "tiny", "notebooks": ["00"], "data": {"ood_datasets": ["blobs"], "synthetic_per_set": 10}}
TINY["data"]["offline"] = {"train_per_class": 2, "test_per_class": 2}


@pytest.fixture
def seeded_run(tmp_path, monkeypatch):
    """A one-notebook profile whose notebook stands in as a function recording a seed-dependent row and check."""
    notebook_dir = tmp_path / "notebooks"
    notebook_dir.mkdir()
    (notebook_dir / "00_toy.ipynb").write_text("{}")
    profile = tmp_path / "tiny.yaml"
    profile.write_text(yaml.safe_dump(TINY))
    seen = []

    def execute(notebook, output_dir, parameters, log_output):
        P = profiles.load(profile, parameters["overrides"])
        seen.append((P.seed, P.data.offline.seed, P.checks.enforce, output_dir.name))
        _record(output_dir, P.seed, {0: 0.5, 1: 1.0, 2: 0.75}[P.seed], notebook="00")
        c = checks.Checks(output_dir, "00", enforce=P.checks.enforce)
        c.at_least("toy_auroc", {0: 0.5, 1: 1.0, 2: 0.75}[P.seed], 0.6)
        c.conclude()
        return 0.1

    monkeypatch.setattr(runner, "execute", execute)
    monkeypatch.setattr(runner, "declared_parameters", lambda nb: {"params_file", "output_dir", "overrides"})
    return profile, notebook_dir, seen


def test_a_multi_seed_run_writes_each_seed_then_the_tables_and_fails_on_a_seed_that_fails(seeded_run, tmp_path):
    profile, notebook_dir, seen = seeded_run
    out = tmp_path / "out"
    with pytest.raises(runner.RunError, match="1 checks failed over the seeds: toy_auroc"):
        runner.reproduce(profile, out, notebook_dir=notebook_dir, seeds=[0, 1, 2])
    assert seen == [(s, s, False, f"seed_{s}") for s in (0, 1, 2)]  # global and generator seed; every seed ran
    table = pd.read_csv(out / "results.csv")
    assert table.loc[0, "n"] == 3 and table.loc[0, "auroc_mean"] == pytest.approx(0.75)
    assert table.loc[0, "auroc_std"] == pytest.approx(0.25)
    md = (out / "results.md").read_text()
    assert "75.00 ± 25.00" in md and "| 00 | toy_auroc | 0.75 ± 0.25 | >= | 0.6 | yes | 0 | **no** |" in md
    over = json.loads((out / checks.SEEDS_FILE).read_text())
    assert over[0]["failed_seeds"] == [0] and over[0]["passed_on_mean"] and not over[0]["passed"]
    assert (out / "figures" / f"{spread.FIGURE}.png").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and run["seeds"] == [0, 1, 2] and set(run["runs"]) == {"0", "1", "2"}
    for s in (0, 1, 2):
        assert json.loads((out / f"seed_{s}" / "run.json").read_text())["status"] == "finished"


def test_seeds_from_the_profile_and_a_passing_run_finishes(seeded_run, tmp_path):
    profile, notebook_dir, seen = seeded_run
    profile.write_text(yaml.safe_dump({**TINY, "seeds": [1, 2]}))
    out = runner.reproduce(profile, tmp_path / "out", notebook_dir=notebook_dir)
    assert [s[0] for s in seen] == [1, 2]
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    assert not paper_comparison.covered_targets(profiles.load(profile)).shape[0]  # offline: no paper numbers


def test_a_rerun_reuses_the_seeds_it_finished_and_runs_the_others(seeded_run, tmp_path):
    profile, notebook_dir, seen = seeded_run
    out = tmp_path / "out"
    runner.reproduce(profile, out, notebook_dir=notebook_dir, seeds=[1])
    seen.clear()
    with pytest.raises(runner.RunError, match="failed over the seeds"):  # seed 0's check fails
        runner.reproduce(profile, out, notebook_dir=notebook_dir, seeds=[1, 0], overwrite=True)
    assert [s[0] for s in seen] == [1, 0]  # --overwrite: every seed again
    seen.clear()
    with pytest.raises(runner.RunError, match="failed over the seeds"):
        runner.reproduce(profile, out, notebook_dir=notebook_dir, seeds=[1, 0, 2])
    assert [s[0] for s in seen] == [2]  # seeds 1 and 0 finished with these params: reused
    assert pd.read_csv(out / "results.csv").loc[0, "n"] == 3
