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
