"""One run per folder: a second holder is refused with the first one named; a dead holder frees it."""

import os
import subprocess
import sys
import time

import pytest

from ssdlib import locks


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    lock = locks.folder_lock(tmp_path / "out")
    with locks.holding(lock, "first run"):
        with pytest.raises(locks.BusyError, match=rf"in use by another run \(pid {os.getpid()}, started .*: first run"):
            with locks.holding(lock, "second run"):
                pass
    with locks.holding(lock, "after the first ended"):  # released on leaving the block
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    lock = locks.checkpoint_lock(tmp_path / "model.pt")
    code = (
        "import sys, time\nfrom ssdlib import locks\n"
        f"with locks.holding({str(lock)!r}, 'child'):\n    print('held', flush=True)\n    time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(locks.BusyError, match="child"):
            with locks.holding(lock, "parent"):
                pass
    finally:
        child.kill()
        child.wait()
    time.sleep(0.1)
    with locks.holding(lock, "parent"):  # the OS released the dead child's lock
        pass
