"""The report page and the executed notebooks' pages, from the files of a run folder written here.

The pages are checked in a real browser elsewhere (``tests/test_browser.py``); these tests check what
the page holds and that it stands alone: every image embedded, nothing loaded from the network.
"""

import base64
import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from ssdlib import checks, plots, report
from ssdlib.cli import main
from ssdlib.evaluation import spread

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def executed_notebook(path):
    """A small executed notebook: text, a code cell with a table and an inline figure."""
    code = new_code_cell("show()", execution_count=1)
    code.outputs = [
        new_output("display_data", data={"image/png": base64.b64encode(PNG_1PX).decode(), "text/plain": "<Image>"}),
        new_output("execute_result", data={"text/html": "<table><tr><td>0.97</td></tr></table>"}, execution_count=1),
    ]
    nb = new_notebook(cells=[new_markdown_cell("# 00 · The data\nWhat and why."), code])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def run_folder(folder, *, seed=0, status="finished"):
    """What ``ssdlib reproduce`` leaves: run.json, checks.json, results.md, a figure and a notebook."""
    folder.mkdir(parents=True, exist_ok=True)
    run = {
        "status": status,
        "seed": seed,
        "profile": "offline",
        "params_file": "params/offline.yaml",
        "smoke": False,
        "git_commit": "abc123",
        "device": "CPU, 2 threads",
        "started": "2026-12-07T10:00:00+00:00",
        "finished": "2026-12-07T10:08:00+00:00",
        "notebooks": {"00_data.ipynb": 12.4},
    }
    (folder / "run.json").write_text(json.dumps(run))
    c = checks.Checks(folder, "02_ssd_clustering", enforce=False)
    c.at_least("ssd_auroc_blobs", 0.95, 0.9, detail="far OOD")
    c.at_least("ssd_near_auroc", 0.6, 0.7, detail="SSD on near")
    c.conclude()
    (folder / "results.md").write_text("## 02_ssd_clustering\n\n| method | near |\n|---|---|\n| SSD | 74.1 |\n")
    figures = folder / "figures" / "02_ssd_clustering"
    figures.mkdir(parents=True)
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    plots.save(fig, figures, "roc_SimCLR", caption="SSD: ROC curve of the ID test set against each OOD set.")
    executed_notebook(folder / "00_data.ipynb")
    return folder


def test_the_report_holds_what_ran_the_checks_the_results_and_every_figure(tmp_path):
    folder = run_folder(tmp_path / "offline")
    page = report.write(folder).read_text()
    for shown in ("offline", "abc123", "CPU, 2 threads", "ssd_auroc_blobs", "ssd_near_auroc", "74.1", "00_data.html"):
        assert shown in page, shown
    assert 'class="failed"' in page and page.count('class="failed"') == 1  # the one failed check, marked
    assert "SSD: ROC curve of the ID test set against each OOD set." in page  # the caption from the PNG
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 1 and images[0].startswith("data:image/png;base64,")  # embedded: the folder can move
    assert (
        base64.b64decode(images[0].split(",", 1)[1])
        == (folder / "figures/02_ssd_clustering/roc_SimCLR.png").read_bytes()
    )


def test_pages_load_nothing_from_the_network(tmp_path):
    folder = run_folder(tmp_path / "offline")
    report.write(folder)
    for page in (folder / "report.html", folder / "00_data.html"):
        text = page.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', text), page.name
    notebook_page = (folder / "00_data.html").read_text()
    folded = notebook_page[notebook_page.index('<details class="ssdlib-code">') :]
    assert ">show<" in folded[: folded.index("</details>")]  # the code is folded, not lost
    assert "data:image/png;base64," in notebook_page and 'href="report.html"' in notebook_page


def test_a_stopped_run_has_a_report_saying_so(tmp_path):
    folder = run_folder(tmp_path / "offline", status="failed")
    (folder / "results.md").unlink()
    page = report.write(folder).read_text()
    assert "failed" in page and "No results table was written" in page


def test_a_multi_seed_report_shows_the_spread_and_links_each_seed(tmp_path):
    top = tmp_path / "offline"
    for seed in (0, 1):
        report.write(run_folder(spread.seed_folder(top, seed), seed=seed))
    run = {"status": "finished", "profile": "offline", "smoke": False, "seeds": [0, 1], "runs": {"0": {}, "1": {}}}
    (top / "run.json").write_text(json.dumps(run))
    over = checks.over_seeds({s: checks.read(spread.seed_folder(top, s)) for s in (0, 1)})
    checks.write_over_seeds(top / checks.SEEDS_FILE, over)
    (top / "results.md").write_text(
        "\n".join(checks.seeds_markdown(over)) + "\n## 02\n\n| a |\n|---|\n| 74.1 ± 0.2 |\n"
    )
    (top / "paper_comparison.md").write_text("| method | paper |\n|---|---|\n| SSD | 90.6 |\n")
    page = report.write(top).read_text()
    assert "2 seeds (0, 1)" in page and "74.1 ± 0.2" in page and "90.6" in page
    assert 'href="seed_0/report.html"' in page and 'href="seed_1/report.html"' in page
    assert 'href="seed_0/00_data.html"' in page and 'href="seed_1/00_data.html"' in page  # each seed's notebook
    assert page.count("Checks over seeds") == 0  # shown once, as the page's own checks table
    assert "0 of 2 checks hold on the mean and on every seed" in page or "1 of 2 checks hold" in page


def test_ssdlib_report_rebuilds_a_page_and_refuses_a_folder_that_is_no_run(tmp_path, capsys):
    folder = run_folder(tmp_path / "offline")
    assert main(["report", str(folder)]) == 0 and (folder / "report.html").is_file()
    assert main(["report", str(tmp_path / "nothing")]) == 1
    assert "holds no run.json" in capsys.readouterr().err


def test_show_saves_the_figure_with_its_caption_and_closes_it(tmp_path):
    fig, _ = plt.subplots()
    plots.show(fig, tmp_path, "curve", caption="A caption.")
    assert plots.caption_of(tmp_path / "curve.png") == "A caption." and not plt.fignum_exists(fig.number)


@pytest.mark.parametrize("flag, written", [([], True), (["--no-report"], False)])
def test_reproduce_writes_the_report_unless_told_not_to(tmp_path, monkeypatch, flag, written):
    """The switch reaches the run (the run itself is tested end to end in test_runner and the smoke runs)."""
    from ssdlib.cli import reproduce as cli

    seen = {}
    monkeypatch.setattr(cli, "reproduce", lambda *a, **kw: seen.update(kw) or tmp_path)
    assert main(["reproduce", "--params", "params/offline.yaml", *flag]) == 0
    assert seen["write_report"] is written


def test_the_claims_show_with_their_verdicts(tmp_path):
    """The ledger the run wrote (claims.csv) is on the page, a row per claim, coloured by its verdict."""
    import pandas as pd

    from ssdlib.evaluation import claims

    folder = run_folder(tmp_path / "offline")
    base = dict.fromkeys(claims.COLUMNS, None) | {"paper": "SSD", "direction": ">", "margin": 0.0, "n": 3}
    rows = [
        base | {"claim": "ssd_plus_near", "where": "Sec. 3.1", "statement": "SSD+ beats SSD on near OOD.",
                "metric": "AUROC of SSD+ minus SSD's on near", "effect_mean": 0.08, "effect_std": 0.02,
                "ci_low": 0.03, "ci_high": 0.13, "verdict": "reproduced"},
        base | {"claim": "ssod_beats_msp", "where": "Table 2", "statement": "SSOD beats MSP on scenes.",
                "metric": "FPR95 of MSP minus SSOD's", "effect_mean": 0.2, "effect_std": 0.3,
                "ci_low": -0.5, "ci_high": 0.9, "verdict": "inconclusive"},
    ]  # fmt: skip
    pd.DataFrame(rows, columns=claims.COLUMNS).to_csv(folder / claims.CSV_FILE, index=False)
    page = report.write(folder).read_text()
    assert "1 reproduced, 1 inconclusive" in page or "1 inconclusive, 1 reproduced" in page
    assert page.count('class="verdict-ok"') == 1 and page.count('class="verdict-neutral"') == 1
    assert "SSD+ beats SSD on near OOD." in page and "[+0.030, +0.130]" in page
