"""Training progress from a kernel process to the runner's terminal: the line, the time left, the channel."""

import os
import subprocess
import sys

import pytest

from ssdlib import progress

CHILD = """
from ssdlib import progress
report = progress.EpochReporter("SimCLR resnet18 w8", total=2)
report.epoch(1, {"loss": 4.21})
report.epoch(2, {"loss": 3.5, "kNN accuracy": float("nan")})
"""


def test_epoch_line_with_time_left(monkeypatch, tmp_path):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    clock = iter([100.0, 106.0, 400.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    report = progress.EpochReporter("SimCLR resnet18 w8", total=41, first_epoch=1)  # resumed after epoch 1
    # 2 epochs in 6 s: 3 s each, 38 epochs left: 114 s
    assert (
        report.epoch(3, {"loss": 4.2134, "kNN accuracy": float("nan")})
        == "SimCLR resnet18 w8: epoch 3/41, loss 4.213, 3.0 s/epoch, ~2 min left"
    )
    assert report.epoch(41, {"loss": 1.0}).endswith("epoch 41/41, loss 1, 7.5 s/epoch, done")
    assert [progress.duration(s) for s in (40, 150, 3900)] == ["40 s", "2 min", "1 h 05 min"]


def test_lines_of_a_child_process_reach_the_runner_with_the_notebooks_name(monkeypatch, tmp_path):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    path = tmp_path / progress.PROGRESS_FILE
    path.write_text("a line of an earlier notebook\n")
    shown = []
    with progress.follow(path, prefix="[01_simclr] ", write=shown.append, interval=0.05):
        assert os.environ[progress.ENV_VAR] == str(path.resolve())  # what the kernel inherits
        subprocess.run([sys.executable, "-c", CHILD], check=True, env=dict(os.environ))
    assert progress.ENV_VAR not in os.environ
    assert len(shown) == 2
    assert shown[0].startswith("[01_simclr] SimCLR resnet18 w8: epoch 1/2, loss 4.21, ")
    assert shown[0].endswith(" left") and shown[1].endswith(", done") and "kNN" not in shown[1]


def test_nothing_is_written_without_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    progress.EpochReporter("x", total=1).epoch(1, {"loss": 1.0})
    assert not list(tmp_path.iterdir())
    monkeypatch.setenv(progress.ENV_VAR, str(tmp_path / "p.log"))
    progress.EpochReporter("x", total=1).epoch(1, {"loss": 1.0})
    monkeypatch.delenv(progress.ENV_VAR)
    progress.EpochReporter("y", total=1).epoch(1, {"loss": 1.0})  # the handler follows the variable
    assert (tmp_path / "p.log").read_text() == "x: epoch 1/1, loss 1, 0.0 s/epoch, done\n"


@pytest.mark.slow
def test_trainer_reports_each_epoch(monkeypatch, tmp_path, one_thread):
    import torch
    from conftest import UnitLinear, identity_augment

    from ssdlib.training import Recipe, train

    monkeypatch.setenv(progress.ENV_VAR, str(tmp_path / "p.log"))
    recipe = Recipe(mode="SimCLR", epochs=2, warmup_epochs=0, batch_size=8, lr=0.01, monitor_every=0)
    data = (torch.rand(16, 3, 8, 8), torch.zeros(16, dtype=torch.long))
    train(UnitLinear(), data, recipe, augment=identity_augment, log=lambda _m: None, progress=False, name="toy")
    lines = (tmp_path / "p.log").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["toy: epoch 1/2", "toy: epoch 2/2"]


class FakeKernel:
    """What :func:`progress.someone_watching` reads of an ipykernel: whether the request allowed input."""

    def __init__(self, allow_stdin):
        self._allow_stdin = allow_stdin


@pytest.mark.parametrize("allow_stdin, bar_shown", [(True, True), (False, False)])
def test_bars_only_where_someone_watches(monkeypatch, allow_stdin, bar_shown):
    """JupyterLab sends input-allowing requests (a person is there); papermill and nbval do not."""
    monkeypatch.setattr(progress, "kernel", lambda: FakeKernel(allow_stdin))
    assert progress.someone_watching() is allow_stdin
    assert (not progress.bar(range(3)).disable) is bar_shown
    assert progress.bar(range(3), disable=True).disable


def test_outside_a_kernel_bars_follow_the_terminal(monkeypatch):
    monkeypatch.setattr(progress, "kernel", lambda: None)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not progress.someone_watching() and progress.bar(range(3)).disable
    said = []
    assert progress.messages(said.append) == said.append  # no kernel: the fallback, untouched


class FakeHandle:
    def __init__(self, shown):
        self.shown = shown

    def update(self, obj):
        self.shown.append(("update", obj.data))


def test_a_panel_is_one_output_updated_in_place_and_stays_short(monkeypatch):
    """A training run's messages fill one display; a long run keeps its first and latest lines."""
    import IPython.display

    shown = []

    def display(obj, display_id=False):
        assert display_id is True
        shown.append(("display", obj.data))
        return FakeHandle(shown)

    monkeypatch.setattr(IPython.display, "display", display)
    panel = progress.Panel()
    for epoch in range(1, 41):
        panel.write(f"epoch {epoch}/40")
    assert [kind for kind, _ in shown] == ["display"] + ["update"] * 39  # one output
    last = shown[-1][1].splitlines()
    head, tail = progress.Panel.HEAD, progress.Panel.TAIL
    assert last[:head] == ["epoch 1/40", "epoch 2/40", "epoch 3/40"][:head]
    assert last[head] == f"... ({40 - head - tail} lines left out)"
    assert last[head + 1 :] == [f"epoch {e}/40" for e in range(41 - tail, 41)]
