"""ssdlib.atomic.write: the target holds the old or the whole new content, and no temporary file stays."""

import os
import subprocess
import sys

import pytest

from ssdlib import atomic


def test_write_creates_replaces_and_leaves_nothing_beside(tmp_path):
    path = tmp_path / "sub" / "run.json"
    assert atomic.write(path, "old\n") == path  # the folder is created
    assert path.read_text() == "old\n"
    atomic.write(path, b"\x00new bytes")
    assert path.read_bytes() == b"\x00new bytes"
    atomic.write(path, "é")  # text is UTF-8
    assert path.read_bytes() == b"\xc3\xa9"
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]


@pytest.mark.parametrize("fails", ["fsync", "replace"])
def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(tmp_path, monkeypatch, fails):
    path = tmp_path / "checks.json"
    atomic.write(path, "old")

    def boom(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, fails, boom)
    with pytest.raises(OSError, match="No space left"):
        atomic.write(path, "new " * 1000)
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["checks.json"]


def test_a_new_file_gets_the_permissions_of_an_ordinary_write(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic.write(tmp_path / "atomic.txt", "x")
    assert os.stat(tmp_path / "atomic.txt").st_mode == os.stat(plain).st_mode


def test_the_leaf_imports_nothing_of_ssdlib_and_no_torch():
    code = (
        "import sys, ssdlib.atomic; "
        "print(sorted(m for m in sys.modules if m.startswith(('ssdlib.', 'torch')) and m != 'ssdlib.atomic'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full, a device that is always full")
def test_a_full_disk_during_a_checkpoint_save_is_named_with_the_path(tmp_path, monkeypatch):
    """torch.save reports a full disk as "[enforce fail at inline_container.cc] unexpected pos": raised as
    ENOSPC naming the checkpoint, which the CLI explains in one line; the old checkpoint stays."""
    from functools import partial

    import torch

    from ssdlib.cli import explain

    path = tmp_path / "checkpoint.pt"
    atomic.write_with(path, partial(torch.save, {"w": torch.ones(3)}))
    real_fdopen = os.fdopen

    def full_disk(fd, mode):
        os.close(fd)
        return real_fdopen(os.open("/dev/full", os.O_WRONLY), mode)

    monkeypatch.setattr(atomic.os, "fdopen", full_disk)
    with pytest.raises(OSError) as err:
        atomic.write_with(path, partial(torch.save, {"w": torch.zeros(600_000)}))
    assert err.value.errno == 28 and err.value.filename == str(path)
    assert explain(err.value).startswith(f"the disk is full ({path}): free some space and run the same command again")
    assert torch.load(path)["w"].tolist() == [1.0, 1.0, 1.0] and [p.name for p in tmp_path.iterdir()] == [path.name]
