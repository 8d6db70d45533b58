"""Training progress, one line per epoch, from a notebook's kernel to the terminal of ``ssdlib reproduce``.

papermill runs each notebook in a separate kernel process and, by default, shows none of its
output, so a training cell that takes minutes looks stuck. The runner therefore names a file in
the environment variable ``SSDLIB_PROGRESS_FILE`` before the kernel starts (the kernel inherits
it); the training loops report each epoch with :class:`EpochReporter`, which logs to the
``ssdlib.progress`` logger, and that logger appends to the named file only while the variable is
set (elsewhere, e.g. in JupyterLab, it writes nowhere). The runner reads the file as it grows
(:func:`follow`) and prints its lines, prefixed with the notebook's name.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

ENV_VAR = "SSDLIB_PROGRESS_FILE"
LOGGER = "ssdlib.progress"
PROGRESS_FILE = "progress.log"


def logger() -> logging.Logger:
    """The progress logger, writing to the file named by ``SSDLIB_PROGRESS_FILE`` (re-read on every call,
    so the handler follows the variable) and to nothing when it is unset."""
    log = logging.getLogger(LOGGER)
    log.setLevel(logging.INFO)
    log.propagate = False  # the file only: the trainers' own lines already reach the console
    log.propagate = False  # the training loops print their own epoch lines; these are for the runner
    target = os.environ.get(ENV_VAR)
    current = [h for h in log.handlers if isinstance(h, logging.FileHandler)]
    if current and (not target or current[0].baseFilename != os.path.abspath(target)):
        log.removeHandler(current[0])
        current[0].close()
        current = []
    if target and not current:
        handler = logging.FileHandler(target, mode="a", encoding="utf-8", delay=True)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    return log


def duration(seconds: float) -> str:
    """A rough duration for humans: 40 s, 3 min, 1 h 05 min."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class EpochReporter:
    """Reports the epochs of one training run: ``what`` (e.g. "SimCLR resnet18 w8") and ``total`` epochs.

    The time left is the wall-clock time per epoch so far in this process (monitors and checkpoints
    included) times the epochs left; epochs finished before a resume do not count.
    """

    def __init__(self, what: str, total: int, first_epoch: int = 0) -> None:
        self.what, self.total, self.first_epoch = what, total, first_epoch
        self.start = time.perf_counter()
        self.log = logger()
        if first_epoch:
            self.log.info(f"{what}: resuming after epoch {first_epoch}/{total}")

    def epoch(self, epoch: int, values: dict[str, float] | None = None) -> str:
        """Report that ``epoch`` (1-based, of ``total``) is done, with ``values`` ({"loss": 4.2}; NaN ones
        left out); return the line."""
        values = values or {}
        done = max(epoch - self.first_epoch, 1)
        per_epoch = (time.perf_counter() - self.start) / done
        left = self.total - epoch
        shown = "".join(f", {name} {v:.4g}" for name, v in values.items() if v == v)  # v == v: not NaN
        line = f"{self.what}: epoch {epoch}/{self.total}{shown}, {per_epoch:.1f} s/epoch, " + (
            f"~{duration(left * per_epoch)} left" if left > 0 else "done"
        )
        self.log.info(line)
        return line


@contextmanager
def follow(
    path: str | Path, prefix: str = "", write: Callable[[str], None] | None = None, interval: float = 0.5
) -> Iterator[Path]:
    """While the block runs, pass each new complete line of ``path`` to ``write`` (default: print
    above any progress bar) with ``prefix``; set ``SSDLIB_PROGRESS_FILE`` to ``path`` for processes
    started in the block. The lines written before the block are skipped; the last ones are passed
    on when the block ends, even when it fails."""
    if write is None:
        write = lambda line: tqdm.write(line, file=sys.stdout)  # noqa: E731 (keeps papermill's bar intact)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    stop = threading.Event()

    def run(fh) -> None:
        pending = ""
        while True:
            stopping = stop.is_set()  # read once more after the block ends, then stop
            pending += fh.read()
            *lines, pending = pending.split("\n")
            for line in lines:
                if line.strip():
                    write(prefix + line)
            if stopping:
                return
            stop.wait(interval)

    previous = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = str(path.resolve())
    with path.open(encoding="utf-8", errors="replace") as fh:
        fh.seek(0, os.SEEK_END)
        thread = threading.Thread(target=run, args=(fh,), name="ssdlib-progress", daemon=True)
        thread.start()
        try:
            yield path
        finally:
            if previous is None:
                os.environ.pop(ENV_VAR, None)
            else:
                os.environ[ENV_VAR] = previous
            stop.set()
            thread.join()
