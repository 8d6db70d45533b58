"""Every paper profile in params/ runs end to end in smoke mode (``ssdlib reproduce --smoke``): its own
notebooks, architectures, input sizes, detectors and checks, on tiny files in each set's real format,
so that a profile error shows here and not hours into a GPU run. New profiles are picked up by the glob.
"""

import json
from pathlib import Path

import nbformat
import pytest

from ssdlib import checks, params
from ssdlib.cli import reproduce as runner
from ssdlib.evaluation import paper_comparison, results
from ssdlib.experiment import CHECKPOINT_DIR

ROOT = Path(__file__).resolve().parent.parent
# the offline profile runs in full, not cut, as nbval executes the notebooks (./run test)
RUN_IN_FULL = {"offline.yaml"}
PROFILES = [p for p in sorted((ROOT / "params").glob("*.yaml")) if p.name not in RUN_IN_FULL]


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
def test_profile_runs_end_to_end_in_smoke_mode(path, tmp_path):
    P = params.load(path)
    out = runner.reproduce(path, tmp_path / "out", smoke=True)

    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["smoke"] is True
    assert [name[:2] for name in run["notebooks"]] == P.notebooks
    used = params.load(out / "params.yaml")
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
