"""Every paper profile in params/ runs end to end in smoke mode (``ssdlib reproduce --smoke``): its own
notebooks, architectures, input sizes, detectors and checks, on tiny files in each set's real format,
so that a profile error shows here and not hours into a GPU run. New profiles are picked up by the glob.

The runs start together, as ``ssdlib reproduce --smoke`` processes of one thread each, as soon as
pytest has collected this module's tests (``conftest.py``), so they run beside the fast tests: three at
once took 410 s against 528 s one after another, measured on 2 cores.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from pages import browser, executed_notebook_problems, page_problems

from ssdlib import checks, profiles
from ssdlib.evaluation import paper_comparison, results
from ssdlib.experiment import CHECKPOINT_DIR

ROOT = Path(__file__).resolve().parent.parent
# the offline profile runs in full, not cut, as nbval executes the notebooks (./run test)
RUN_IN_FULL = {"offline.yaml"}
PROFILES = [p for p in sorted((ROOT / "params").glob("*.yaml")) if p.name not in RUN_IN_FULL]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
TIMEOUT = 1500  # seconds for the slowest profile; CI's whole test budget is 20 minutes
SMOKE_RUNS = pytest.StashKey[dict]()


def start(folder: Path) -> dict:
    """Profile -> (process, output folder, log file) of its smoke run, all started at once."""
    env = {**os.environ, **ONE_THREAD}
    started = {}
    for path in PROFILES:
        out, log = folder / path.stem, folder / f"{path.stem}.log"
        with log.open("w") as sink:
            command = [sys.executable, "-m", "ssdlib.cli", "reproduce", "--params", str(path), "--smoke"]
            process = subprocess.Popen(
                [*command, "--output-dir", str(out)], stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT, env=env
            )
        started[path.name] = (process, out, log)
    return started


def stop(started: dict, folder: Path | None = None) -> None:
    """Kill the runs still going (a session ended early), and remove ``folder``."""
    for process, _, _ in started.values():
        if process.poll() is None:
            process.kill()
            process.wait()
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def smoke_runs(request, tmp_path_factory):
    """The runs ``conftest.py`` started after collection (or, when it did not, started now)."""
    started = request.config.stash.get(SMOKE_RUNS, None)
    if started is not None:
        yield started
        return
    started = start(tmp_path_factory.mktemp("smoke"))
    yield started
    stop(started)


def trained_models(out: Path) -> list[Path]:
    """The final checkpoints a run left (shared SSOD warm-ups and set-aside files aside)."""
    return [
        p
        for p in (out / CHECKPOINT_DIR).glob("*.pt")
        if not p.name.startswith("ssod-warmup_") and ".other-params-" not in p.name
    ]


def test_every_profile_is_covered():
    covered = {p.name for p in PROFILES} | RUN_IN_FULL
    assert covered == {p.name for p in (ROOT / "params").glob("*.yaml")}
    assert len(PROFILES) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_profile_runs_end_to_end_in_smoke_mode(path, smoke_runs):
    P = profiles.load(path)
    process, out, log = smoke_runs[path.name]
    code = process.wait(timeout=TIMEOUT)
    assert code == 0, f"ssdlib reproduce --smoke of {path.name} failed:\n" + log.read_text()[-3000:]

    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["smoke"] is True
    assert [name[:2] for name in run["notebooks"]] == P.notebooks
    used = profiles.load(out / "params.yaml")
    assert used.checks.enforce is False and used.device == "cpu"
    assert (used.encoder.arch, used.ssod.backbone, used.ssod.input_size, used.ssod.stem) == (
        P.encoder.arch,
        P.ssod.backbone,
        P.ssod.input_size,
        P.ssod.stem,
    )  # what a smoke run keeps of the profile
    for name in run["notebooks"]:
        executed = nbformat.read(out / name, as_version=4)
        assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)

    numbers_with_checks = [n for n in P.notebooks if n != "00"]
    assert {c.notebook[:2] for c in checks.read(out)} == set(numbers_with_checks)
    if set(P.notebooks) - {"00", "01"}:
        assert len(results.load(out)) > 0
    assert len(trained_models(out)) == len(run["plan"]), [m["name"] for m in run["plan"]]  # the plan said so

    comparison = out / "paper_comparison.md"
    assert comparison.is_file() == (len(paper_comparison.covered_targets(P)) > 0)
    if comparison.is_file():
        assert "smoke" in comparison.read_text().lower()


@pytest.mark.slow
@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_a_readers_view_of_the_smoke_run(path, smoke_runs):
    """What a reader opens: executed notebooks with their figures and a few lines each, and the report and
    notebook pages in a real browser, every image loaded, no console error, no table wider than the page."""
    process, out, log = smoke_runs[path.name]
    assert process.wait(timeout=TIMEOUT) == 0, log.read_text()[-3000:]
    run = json.loads((out / "run.json").read_text())
    for name in run["notebooks"]:
        assert executed_notebook_problems(out / name) == [], name
    pages = ["report.html", *(Path(name).with_suffix(".html").name for name in run["notebooks"])]
    with browser() as b:
        for page in pages:
            assert page_problems(b, (out / page).as_uri()) == [], page
