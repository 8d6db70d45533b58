"""Training progress where a person sees it: live bars, per-epoch lines, and the runner's terminal.

Three places show progress, each in the form that reads well there:

- **Bars** (:func:`bar`): tqdm's, in a terminal and in a notebook front-end that someone is looking at
  (JupyterLab renders them as widgets). A batch executor (papermill, nbval, nbconvert) gets none: there
  a bar would only leave hundreds of frames in the saved notebook.
- **A notebook's training log** (:class:`Panel`): in a kernel, a training run's messages (one line per
  epoch, checkpoints, a resume) fill one output that is updated in place, so the executed notebook
  keeps a few readable lines instead of a stream per message.
- **The runner's terminal**: papermill runs each notebook in a separate kernel process and, by
  default, shows none of its output, so a training cell that takes minutes looks stuck. The runner
  therefore names a file in the environment variable ``SSDLIB_PROGRESS_FILE`` before the kernel starts
  (the kernel inherits it); the training loops report each epoch with :class:`EpochReporter`, which
  logs to the ``ssdlib.progress`` logger, and that logger appends to the named file only while the
  variable is set (elsewhere, e.g. in JupyterLab, it writes nowhere). The runner reads the file as it
  grows (:func:`follow`) and prints its lines, prefixed with the notebook's name.
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
from tqdm.auto import tqdm as auto_tqdm

ENV_VAR = "SSDLIB_PROGRESS_FILE"
LOGGER = "ssdlib.progress"
PROGRESS_FILE = "progress.log"


def logger() -> logging.Logger:
    """The progress logger, writing to the file named by ``SSDLIB_PROGRESS_FILE`` (re-read on every call,
    so the handler follows the variable) and to nothing when it is unset."""
    log = logging.getLogger(LOGGER)
    log.setLevel(logging.INFO)
    log.propagate = False  # the file only: the trainers' own lines already reach the console or a Panel
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


def kernel():
    """The IPython kernel running this code, or None (a script, a terminal, pytest)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return getattr(shell, "kernel", None)


def someone_watching() -> bool:
    """Whether live bars have a reader: a terminal, or a notebook front-end that takes input. Batch
    executors (papermill, nbval, nbconvert) send their cells with ``allow_stdin`` off, which ipykernel
    keeps per request; JupyterLab sends it on."""
    running = kernel()
    if running is not None:
        return bool(getattr(running, "_allow_stdin", False))
    return sys.stderr.isatty()


def bar(iterable=None, **options) -> tqdm:
    """A tqdm bar (a widget in JupyterLab), shown only where :func:`someone_watching`; ``disable=True``
    hides it anywhere."""
    options["disable"] = options.get("disable", False) or not someone_watching()
    return auto_tqdm(iterable, **options)


class Panel:
    """A training run's messages in one notebook output updated in place (the final text is what an
    executed notebook keeps). Long runs show their first lines and the latest ones, with a count of
    those left out between."""

    HEAD, TAIL = 3, 15

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.handle = None

    def write(self, message: str) -> None:
        from IPython.display import Pretty, display  # local: only a kernel reaches here

        self.lines.extend(message.splitlines() or [""])
        shown = self.lines
        if len(shown) > self.HEAD + self.TAIL + 1:
            left_out = len(shown) - self.HEAD - self.TAIL
            shown = [*shown[: self.HEAD], f"... ({left_out} lines left out)", *shown[-self.TAIL :]]
        text = Pretty("\n".join(shown))
        if self.handle is None:
            self.handle = display(text, display_id=True)
        else:
            self.handle.update(text)


def messages(fallback: Callable[[str], None]) -> Callable[[str], None]:
    """Where a training run's messages go: a new :class:`Panel` in a kernel, ``fallback`` elsewhere."""
    return Panel().write if kernel() is not None else fallback


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
            thread.join(timeout=5)  # bounded: after Ctrl-C a lock the printing thread waits on may never be freed
