"""The papermill runner on tiny notebooks: order, results table, checks, failures, no silent overwrite;
and, without papermill, the recorded params path and what a new run clears."""

import json
from pathlib import Path

import nbformat
import pytest
import yaml

from ssdlib import checks, locks, progress
from ssdlib.cli import reproduce as runner
from ssdlib.evaluation import results
from ssdlib.project import project_path

ROOT = Path(__file__).resolve().parent.parent

PARAMS_CELL = 'output_dir = "unset"\nparams_file = "unset"\noverrides = {}\nseed = 0'
TINY = {  # a profile of the two tiny notebooks, on a small offline benchmark
    "profile": "tiny",
    "notebooks": ["00", "01"],
    "data": {
        "ood_datasets": ["blobs"],
        "synthetic_per_set": 10,
        "offline": {"train_per_class": 2, "test_per_class": 2},
    },
}
RECORD_CELL = (
    "from ssdlib.evaluation import results\n"
    "results.record(output_dir, [results.row('toy', [1.0, 2.0], [0.0], id_dataset='offline', "
    "ood_dataset='noise', seed=seed, notebook='{name}', params_file=params_file)])\n"
    "from ssdlib import checks\n"
    "c = checks.Checks(output_dir, '{name}')\n"
    "c.at_least('toy_auroc', 1.0, 0.5)\n"
    "c.conclude()"
)


def make_notebook(path: Path, *cells: str) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMS_CELL)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def profile(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture
def notebooks(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    make_notebook(d / "00_first.ipynb", RECORD_CELL.format(name="00"))
    make_notebook(d / "01_second.ipynb", RECORD_CELL.format(name="01"))
    (d / "scratch.ipynb").write_text("not a numbered notebook, never run")
    return d


@pytest.mark.slow
def test_runs_in_order_and_gathers_results(notebooks, profile, tmp_path, capsys):
    out = runner.reproduce(profile, tmp_path / "out", notebook_dir=notebooks)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and list(run["notebooks"]) == ["00_first.ipynb", "01_second.ipynb"]
    assert run["ssdlib_version"] and "git_commit" in run and run["params_file"] == str(profile)
    assert (out / "params.yaml").is_file() and (out / "00_first.ipynb").is_file()
    table = results.load(out)
    assert table["notebook"].tolist() == ["00", "01"] and set(table["params_file"]) == {str(profile)}
    csv = (out / "results.csv").read_text().splitlines()
    assert len(csv) == 3 and csv[1].startswith("00,toy")
    md = (out / "results.md").read_text()
    assert md.index("## 00 (ID: offline)") < md.index("## 01 (ID: offline)") and "| toy" in md
    assert [(c.notebook, c.name, c.passed) for c in checks.read(out)] == [
        ("00", "toy_auroc", True),
        ("01", "toy_auroc", True),
    ]
    assert "checks: 2 checks, all passed" in capsys.readouterr().out
    executed = nbformat.read(out / "01_second.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and str(out) in injected[0].source


@pytest.mark.slow
def test_finished_run_is_not_overwritten_silently(notebooks, profile, tmp_path):
    out = runner.reproduce(profile, tmp_path / "out", notebook_dir=notebooks)
    keep = out / "checkpoints" / "model.pt"
    keep.parent.mkdir()
    keep.write_text("weights")
    with pytest.raises(runner.RunError, match="finished run.*--overwrite"):
        runner.reproduce(profile, out, notebook_dir=notebooks)
    runner.reproduce(profile, out, notebook_dir=notebooks, overwrite=True)
    assert keep.read_text() == "weights"
    assert len((out / "results.csv").read_text().splitlines()) == 3  # old rows were not appended twice


@pytest.mark.slow
def test_failure_names_notebook_and_cell(notebooks, profile, tmp_path):
    make_notebook(notebooks / "01_second.ipynb", "x = 1", "raise ValueError('broken pipeline')")
    with pytest.raises(runner.RunError, match=r"01_second.ipynb failed at cell 3 .*ValueError: broken pipeline"):
        runner.reproduce(profile, tmp_path / "out", notebook_dir=notebooks)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "failed" and run["failed_notebook"] == "01_second.ipynb"


def test_only_selects_notebooks(notebooks):
    assert [p.name for p in runner.find_notebooks(notebooks, ["01"])] == ["01_second.ipynb"]
    with pytest.raises(runner.RunError, match="no notebook numbered 07 in .*; the numbers are 00, 01"):
        runner.find_notebooks(notebooks, ["07"])
    with pytest.raises(runner.RunError, match="no notebook numbered 09"):  # not silently dropped from a list
        runner.find_notebooks(notebooks, ["01", "09"])


def test_params_file_is_recorded_relative_to_the_project(tmp_path):
    assert project_path(ROOT / "params" / "offline.yaml") == "params/offline.yaml"
    assert project_path(ROOT / "notebooks" / ".." / "params" / "cifar10.yaml") == "params/cifar10.yaml"
    outside = tmp_path / "mine.yaml"
    assert project_path(outside) == str(outside.resolve())


def test_a_new_run_clears_the_previous_runs_notebooks_table_and_checks_and_appends_to_its_logs(tmp_path):
    """A resumed run's progress.log keeps the epochs of its first part."""
    kept = [tmp_path / "checkpoints" / "model.pt", tmp_path / progress.PROGRESS_FILE, tmp_path / runner.KERNEL_LOG]
    kept[0].parent.mkdir()
    stale = [tmp_path / name for name in ("01_a.ipynb", results.RESULTS_FILE, checks.CHECKS_FILE)]
    for path in [*stale, *kept]:
        path.write_text("old")
    runner.prepare_output(tmp_path, overwrite=False)
    assert not any(p.exists() for p in stale) and all(p.read_text() == "old" for p in kept)


def test_a_busy_output_folder_stops_a_second_run_before_it_writes(notebooks, profile, tmp_path):
    out = tmp_path / "out"
    with locks.holding(locks.folder_lock(out), "ssdlib reproduce (the first run)"):
        with pytest.raises(locks.BusyError, match=r"pid \d+, started .*the first run"):
            runner.reproduce(profile, out, notebook_dir=notebooks)
    assert sorted(p.name for p in out.iterdir()) == [locks.FOLDER_LOCK]  # nothing else written


@pytest.mark.parametrize(
    "error, status, reason",
    [
        (KeyboardInterrupt(), "interrupted", "interrupted (Ctrl-C)"),
        (OSError(28, "No space left on device"), "failed", "OSError: [Errno 28] No space left on device"),
    ],
)
def test_run_json_says_how_a_run_ended_however_it_ends(
    notebooks, profile, tmp_path, monkeypatch, error, status, reason
):
    def broken(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(runner, "execute", broken)
    with pytest.raises(type(error)):
        runner.reproduce(profile, tmp_path / "out", notebook_dir=notebooks)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert (run["status"], run["failed_notebook"], run["reason"]) == (status, "00_first.ipynb", reason)


def test_a_truncated_executed_notebook_never_replaces_a_whole_one(tmp_path):
    executed, partial = tmp_path / "00_first.ipynb", tmp_path / ".00_first.partial.ipynb"
    executed.write_text('{"cells": []}')
    partial.write_text('{"cells": [')  # what a full disk leaves
    runner._publish(partial, executed)
    assert executed.read_text() == '{"cells": []}' and not partial.exists()
    partial.write_text('{"cells": [], "done": true}')
    runner._publish(partial, executed)
    assert json.loads(executed.read_text())["done"] and not partial.exists()


def test_environment_sets_a_variable_and_restores_it(monkeypatch):
    import os

    name = "SSDLIB_TEST_ENVIRONMENT"
    monkeypatch.delenv(name, raising=False)
    with runner.environment(name, "/tiny"):
        assert os.environ[name] == "/tiny"
    assert name not in os.environ
    monkeypatch.setenv(name, "before")
    with pytest.raises(RuntimeError), runner.environment(name, "/tiny"):
        assert os.environ[name] == "/tiny"
        raise RuntimeError("the run failed")
    assert os.environ[name] == "before"


def test_a_folder_of_someone_elses_files_is_refused_and_left_as_it_was(
    notebooks, profile, tmp_path, monkeypatch, capsys
):
    """``--output-dir .`` in a folder of the user's own results: nothing replaced, nothing added."""
    from ssdlib.cli import main

    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("results.csv", "results.md", "params.yaml"):
        (mine / name).write_text(f"my own {name}")
    with pytest.raises(runner.RunError, match=r"holds files that no ssdlib run wrote \(params.yaml, results.csv"):
        runner.reproduce(profile, mine, notebook_dir=notebooks)
    monkeypatch.chdir(mine)
    assert main(["reproduce", "--params", str(profile), "--output-dir", "."]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "name a new or empty folder" in err[0]
    assert sorted(p.name for p in mine.iterdir()) == ["params.yaml", "results.csv", "results.md"]
    assert all((mine / n).read_text() == f"my own {n}" for n in ("results.csv", "results.md", "params.yaml"))


def test_an_output_dir_that_is_a_file_or_empty_is_refused_in_one_line(profile, tmp_path, capsys):
    from ssdlib.cli import main

    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    for flags, said in [
        (["--output-dir", str(a_file)], f"--output-dir {a_file} is a file, not a folder: name a folder"),
        (["--output-dir", ""], "--output-dir is empty (an unset shell variable?): give it a path, or leave it out"),
        (["--output-dir="], "--output-dir is empty"),
    ]:
        assert main(["reproduce", "--params", str(profile), *flags]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and said in err[0], err
    assert a_file.read_text() == "mine"


def test_a_folder_that_ssdlib_wrote_is_accepted(tmp_path):
    (tmp_path / "checkpoints").mkdir()  # what `ssdlib model` trains before the first run
    (tmp_path / locks.FOLDER_LOCK).write_text("")
    runner.check_output_dir(tmp_path)
    (tmp_path / "results.csv").write_text("a run's own table")
    (tmp_path / runner.RUN_FILE).write_text("{}")
    runner.check_output_dir(tmp_path)
    runner.check_output_dir(tmp_path / "new")


DRIVER = (  # `ssdlib reproduce` on the test's notebooks, in a process of its own, as started from a terminal:
    # Ctrl-C on (a test suite run as a background job inherits SIGINT ignored, which the command would keep)
    "import sys, functools, pathlib, signal\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "from ssdlib.cli import main, reproduce\n"
    "reproduce.reproduce = functools.partial(reproduce.reproduce, notebook_dir=pathlib.Path(sys.argv[1]))\n"
    "sys.argv = ['ssdlib', *sys.argv[2:]]\n"
    "sys.exit(main())"  # as the console script calls it: the whole process is the command
)
WAITING_CELL = "from ssdlib import progress\nprogress.EpochReporter('toy', 3).epoch(1)\nimport time\ntime.sleep(120)"


@pytest.mark.slow
@pytest.mark.parametrize(
    "signals, code, status, line",
    [
        (["SIGINT", "SIGINT"], 130, "interrupted", "ssdlib reproduce: interrupted (Ctrl-C); what was written is kept"),
        (["SIGTERM"], 143, "terminated", "ssdlib reproduce: terminated (SIGTERM); what was written is kept"),
    ],
)
def test_a_signal_ends_a_run_in_one_line_and_run_json_says_how(profile, tmp_path, signals, code, status, line):
    """Ctrl-C (the terminal signals the whole process group, twice when the user is impatient) and SIGTERM
    (timeout, a scheduler) while a notebook runs: no kernel traceback, one last line, run.json closed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "notebooks"
    folder.mkdir()
    make_notebook(folder / "00_first.ipynb", WAITING_CELL)
    out = tmp_path / "out"
    command = [sys.executable, "-c", DRIVER, str(folder), "reproduce", "--params", str(profile), "--only", "00"]
    process = subprocess.Popen(
        [*command, "--output-dir", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while "toy: epoch 1/3" not in _text(out / progress.PROGRESS_FILE) and time.monotonic() < deadline:
            time.sleep(0.2)
        for name in signals:
            os.killpg(process.pid, getattr(signal, name))
            time.sleep(0.3)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == code, output
    assert output.strip().splitlines()[-1].startswith(line) and "Traceback" not in output, output
    assert json.loads((out / "run.json").read_text())["status"] == status
    assert "toy: epoch 1/3" in _text(out / progress.PROGRESS_FILE)


def _text(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def test_a_full_disk_while_a_notebook_is_written_still_ends_run_json_failed(notebooks, profile, tmp_path, monkeypatch):
    """When the disk fills, run.json's last write uses the space its hidden spare file kept."""
    import errno

    out, disk = tmp_path / "out", {"full": False}
    real_write = runner.atomic.write

    def write(path, data):
        if disk["full"] and (out / runner.RUN_SPARE).exists():
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, data)

    def fill_the_disk(*_args, **_kwargs):
        assert (out / runner.RUN_SPARE).is_file()  # kept while the run goes on
        disk["full"] = True
        raise OSError(errno.ENOSPC, "No space left on device", str(out / ".00_first.partial.ipynb"))

    monkeypatch.setattr(runner.atomic, "write", write)
    monkeypatch.setattr(runner, "execute", fill_the_disk)
    with pytest.raises(OSError):
        runner.reproduce(profile, out, notebook_dir=notebooks)
    run = json.loads((out / "run.json").read_text())
    assert (run["status"], run["failed_notebook"]) == ("failed", "00_first.ipynb")
    assert not (out / runner.RUN_SPARE).exists()


def test_a_run_that_fails_outside_a_notebook_does_not_stay_running(notebooks, profile, tmp_path, monkeypatch):
    def broken_tables(_folder):
        raise ValueError("cannot write the tables")

    monkeypatch.setattr(runner, "execute", lambda *_args, **_kwargs: 0.0)
    monkeypatch.setattr(runner.results, "write_tables", broken_tables)
    with pytest.raises(ValueError):
        runner.reproduce(profile, tmp_path / "out", notebook_dir=notebooks)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert (run["status"], run["reason"]) == ("failed", "ValueError: cannot write the tables")


@pytest.mark.slow
def test_a_full_disk_in_a_notebook_is_named_in_one_line(notebooks, profile, tmp_path):
    """A checkpoint save in the kernel that meets a full disk (ssdlib.atomic raises ENOSPC with the path)."""
    make_notebook(notebooks / "00_first.ipynb", "raise OSError(28, 'No space left on device', '/out/ckpt.pt')")
    with pytest.raises(runner.RunError) as err:
        runner.reproduce(profile, tmp_path / "out", notebook_dir=notebooks, only=["00"])
    assert str(err.value) == (
        "notebook 00_first.ipynb stopped at cell 2: the disk is full (/out/ckpt.pt): free some space and run the "
        "same command again; finished checkpoints are kept and a stopped training resumes"
    )
