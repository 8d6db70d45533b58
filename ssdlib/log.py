"""One channel for every message of the library, the command line and the notebooks: ``logging``.

Modules log through :func:`get` (loggers under ``ssdlib``); nothing in the library prints.
:func:`to_console` gives the ``ssdlib`` logger one handler that writes bare messages to the
current ``sys.stdout`` (warnings and errors to ``sys.stderr``): the ``ssdlib`` command calls it,
and so does ``profiles.for_notebook``, so a notebook's cell shows its messages. Progress bars stay
tqdm's; the per-epoch lines that ``ssdlib reproduce`` shows travel through a file
(:mod:`ssdlib.progress`).
"""

from __future__ import annotations

import logging
import sys

ROOT = "ssdlib"


class _Console(logging.Handler):
    """Bare messages to whatever ``sys.stdout`` / ``sys.stderr`` are when a record comes (Jupyter and
    pytest replace them after the handler is made)."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        try:
            stream.write(self.format(record) + "\n")
            if not type(stream).__module__.startswith("ipykernel"):
                stream.flush()  # a kernel's stream sends what gathers within 0.2 s as one output: no flush
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def get(name: str) -> logging.Logger:
    """The logger of module ``name`` (``__name__``), under ``ssdlib``."""
    return logging.getLogger(name if name == ROOT or name.startswith(f"{ROOT}.") else f"{ROOT}.{name}")


def to_console(level: int = logging.INFO) -> None:
    """Show ``ssdlib``'s messages of ``level`` and above on the console (once; calling again is harmless)."""
    root = logging.getLogger(ROOT)
    root.setLevel(level)
    if not any(isinstance(h, _Console) for h in root.handlers):
        handler = _Console()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
