"""One run at a time per output folder and per checkpoint being trained.

:func:`holding` takes an exclusive ``flock`` on a lock file for the life of a ``with`` block and
writes who holds it (pid, start time, command line). A second run that wants the same lock stops
at once with :class:`BusyError` naming the holder, before it writes anything. The operating system
releases the lock when the process ends, however it ends (Ctrl-C, a crash, ``kill -9``), so no
stale lock is ever left to clean up. Under torchrun the processes of one run are one holder: rank 0
takes the lock, the others (``RANK`` > 0 in the environment) go on without it.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FOLDER_LOCK = ".ssdlib.lock"


class BusyError(RuntimeError):
    """Another run holds the lock; the message names it and what to do."""


def folder_lock(folder: str | Path) -> Path:
    """The lock file of an output folder."""
    return Path(folder) / FOLDER_LOCK


def checkpoint_lock(checkpoint: str | Path) -> Path:
    """The lock file of a checkpoint being trained (beside it)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f".{checkpoint.name}.lock")


@contextmanager
def holding(lock: str | Path, what: str, elsewhere: str = "--output-dir") -> Iterator[Path]:
    """Hold ``lock`` exclusively (creating its folder) while the block runs; ``what`` names the work
    in the message another run gets, ``elsewhere`` the flag that writes somewhere else."""
    lock = Path(lock)
    if int(os.environ.get("RANK", "0")) > 0:  # torchrun's other processes of this run: rank 0 holds it
        yield lock
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BusyError(
            f"{what}: {lock.parent} is in use by another run ({_holder(lock)}). Wait for it to finish, stop it, "
            f"or write somewhere else ({elsewhere})."
        ) from None
    try:
        holder = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps({**holder, "what": what}) + "\n").encode())
        yield lock
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text())
        return f"pid {info['pid']}, started {info['started']}: {info['what']}, command {info['command']!r}"
    except (OSError, ValueError, KeyError):
        return "holder unknown"
