"""The ``ssdlib`` command: one dispatcher, one module per sub-command.

Each sub-command module exposes ``configure(parser)`` and ``run(args) -> int``; they are
imported only when used, so ``ssdlib --help`` stays fast. Whatever goes wrong ends in one line
that names the problem and the fix (exit code 1; 130 after Ctrl-C, 143 after SIGTERM); ``ssdlib --debug
COMMAND`` or ``SSDLIB_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import signal
import sys
import threading
import typing
from urllib.error import URLError

from ssdlib.log import get as get_logger
from ssdlib.log import to_console

LOG = get_logger(__name__)
COMMANDS = {
    "reproduce": ("ssdlib.cli.reproduce", "run the numbered notebooks headless with a params profile"),
    "train": ("ssdlib.cli.train", "train an encoder (SimCLR, SupCon, SupCE), SSD vocabulary"),
    "eval": ("ssdlib.cli.evaluate", "evaluate SSD / SSD+ / SSD_k on a checkpoint, SSD vocabulary"),
    "ssod": ("ssdlib.cli.ssod", "train one SSOD run of a profile (e.g. under torchrun) for notebook 04 to load"),
    "model": ("ssdlib.cli.model", "train one model of a profile (e.g. CSI under torchrun) for the notebooks to load"),
    "report": ("ssdlib.cli.report", "(re)build the report page (report.html) of a run's output folder"),
    "bench": ("ssdlib.bench", "time training and scoring on this device, beside SSD's own pipeline"),
}
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT
TERMINATED = 143  # and by SIGTERM (128 + 15)
PATH_ARGUMENTS = ("params", "output_dir", "results_dir", "data_dir", "ckpt")
CALLER_DIR = "SSDLIB_CALLER_DIR"  # set by ./run, which changes into the project before running ssdlib


class Terminated(KeyboardInterrupt):
    """SIGTERM (from ``timeout``, a scheduler, ``kill``), raised as Ctrl-C is so that the same clean-ups
    run (locks freed, run.json closed); a subclass, so that code stopping on Ctrl-C stops on it too."""


STOP_HOOKS: list = []  # called on the first Ctrl-C or SIGTERM, before it is raised (see when_stopped)
STOPPED_BY: list[int] = []  # the signal that stopped this command, once one has


@contextlib.contextmanager
def when_stopped(hook):
    """Call ``hook()`` at the first Ctrl-C or SIGTERM while the block runs. The exception a signal raises
    lands wherever the main thread happens to be, and a library may swallow it (a notebook's executor
    waiting on its kernel): a hook that ends the work the block waits on (e.g. kills its kernel) makes
    sure the command still stops."""
    STOP_HOOKS.append(hook)
    try:
        yield
    finally:
        STOP_HOOKS.remove(hook)


def stop_exception() -> KeyboardInterrupt | None:
    """What the signal that stopped this command raises (None when none has): whatever error a stop
    caused on its way out, the command ends as stopped."""
    if not STOPPED_BY:
        return None
    return Terminated() if STOPPED_BY[0] == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def stopping_on_signals():
    """Ctrl-C raises KeyboardInterrupt, SIGTERM :class:`Terminated`; any later signal is ignored until the
    process exits, so that the command's one line stays the last one (a command that got none restores
    the previous handlers). Errors raised after a stop (a kernel killed by a stop hook) end as the stop."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    caught = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in caught}

    def first(signum, _frame):
        STOPPED_BY.append(signum)
        for s in caught:  # SIG_IGN, not a Python no-op: Python puts its own handlers back to the default as it exits
            signal.signal(s, signal.SIG_IGN)
        for hook in list(STOP_HOOKS):
            with contextlib.suppress(Exception):
                hook()
        raise stop_exception()

    for s in caught:
        if previous[s] is not signal.SIG_IGN:  # e.g. SIGINT in a job started in the background with &
            signal.signal(s, first)
    try:
        yield
    except Exception:
        stopped = stop_exception()
        if stopped is None:
            raise
        raise stopped from None
    finally:
        if not STOPPED_BY:
            for s, handler in previous.items():
                signal.signal(s, handler)


def from_caller(args: argparse.Namespace, caller: str | None = None) -> argparse.Namespace:
    """Relative paths on the command line, resolved against the directory the user typed them in."""
    caller = caller if caller is not None else os.environ.get(CALLER_DIR)
    if not caller:
        return args
    for name in PATH_ARGUMENTS:
        value = getattr(args, name, None)
        if value is not None and not os.path.isabs(value):
            setattr(args, name, type(value)(os.path.join(caller, value)))
    return args


def empty_path_flag(argv: list[str]) -> str | None:
    """The first path flag given an empty value (``--output-dir ""``, as an unset shell variable gives):
    argparse would read it as the current folder."""
    flags = {"--" + name.replace("_", "-") for name in PATH_ARGUMENTS}
    for i, token in enumerate(argv):
        flag, equals, value = token.partition("=")
        if flag in flags and (value if equals else (argv[i + 1] if i + 1 < len(argv) else "x")).strip() == "":
            return flag
    return None


def choices(schema: typing.Any, field: str | None = None) -> list[str]:
    """The values a flag may take, read from the params schema so the CLI never copies a list of names.

    ``schema`` is a ``Literal`` of ``ssdlib.params`` (``choices(params.Arch)``), or a section class
    with the name of one of its ``Literal`` fields (``choices(params.SSDParams, "kmeans")``).
    """
    annotation = schema.model_fields[field].annotation if field is not None else schema
    values = typing.get_args(annotation)
    if typing.get_origin(annotation) is not typing.Literal or not values:
        raise TypeError(f"{annotation!r} is not a Literal of names: a flag's choices come from one")
    return list(values)


def disk_full(path: str | None) -> str:
    """The one line for a full disk (ENOSPC), wherever it was met."""
    return (
        f"the disk is full ({path or 'while writing'}): free some space and run the same command "
        "again; finished checkpoints are kept and a stopped training resumes"
    )


def explain(err: BaseException) -> str:
    """One line for a failure no command handled itself: what went wrong and what to do."""
    from PIL import UnidentifiedImageError  # local: PIL is heavy, and `ssdlib --help` imports this module

    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return disk_full(err.filename)
    if isinstance(err, URLError) or (isinstance(err, OSError) and err.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)):
        return (
            f"no network ({getattr(err, 'reason', err)}): download the dataset on a machine that has one and "
            "place it under data.root, with data.download: false"
        )
    if type(err).__name__ == "BadImageError":  # its message names the file and the fix; from a DataLoader
        # worker, it is the last line of the worker's traceback
        return str(err).strip().splitlines()[-1].split("BadImageError: ", 1)[-1]
    if isinstance(err, UnidentifiedImageError):
        return f"{err}: not a readable image; remove or replace that file"
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first} (the traceback: ssdlib --debug ..., or SSDLIB_DEBUG=1)"


def _quiet_teardown() -> None:
    """Once stopping on Ctrl-C or SIGTERM (later signals are already ignored: :func:`stopping_on_signals`),
    the stopped notebook's kernel, gone mid-cell, is not reported again by the task that waited for it
    (asyncio's "Task exception was never retrieved" when the interpreter ends, after our one line)."""
    logging.getLogger("asyncio").disabled = True


def main(argv: list[str] | None = None) -> int:
    whole_process = argv is None  # the command itself, not a call from Python (a test): it may end quietly
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = bool(os.environ.get("SSDLIB_DEBUG"))
    if argv[:1] == ["--debug"]:
        debug, argv = True, argv[1:]
    parser = argparse.ArgumentParser(prog="ssdlib", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in COMMANDS:
        parser.print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    name = argv[0]
    to_console()
    module = importlib.import_module(COMMANDS[name][0])
    cmd_parser = argparse.ArgumentParser(prog=f"ssdlib {name}", description=COMMANDS[name][1])
    module.configure(cmd_parser)
    args = from_caller(cmd_parser.parse_args(argv[1:]))
    empty = empty_path_flag(argv[1:])
    if empty:
        LOG.error(f"ssdlib {name}: {empty} is empty (an unset shell variable?): give it a path, or leave it out")
        return 1
    try:
        with stopping_on_signals():
            return int(module.run(args) or 0)
    except Terminated:
        if debug:
            raise
        if whole_process:
            _quiet_teardown()
        LOG.error(f"ssdlib {name}: terminated (SIGTERM); what was written is kept and the same command resumes")
        return TERMINATED
    except KeyboardInterrupt:
        if debug:
            raise
        if whole_process:
            _quiet_teardown()
        LOG.error(f"ssdlib {name}: interrupted (Ctrl-C); what was written is kept (run.json says where it stopped)")
        return INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if debug:
            raise
        LOG.error(f"ssdlib {name}: {explain(err)}")
        return 1
