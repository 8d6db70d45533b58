"""``ssdlib reproduce``: run the numbered notebooks headless with papermill.

A run validates the params file first (nothing is written when it is invalid), then executes
``notebooks/NN_*.ipynb`` in order into ``outputs/<profile>/``, each with the profile's values
injected after its ``parameters`` cell, and gathers the rows the notebooks recorded into
``results.csv`` and ``results.md`` and their sanity checks into ``checks.json``. While a notebook
runs, its training loops' per-epoch lines reach the terminal (:mod:`ssdlib.progress`). It stops
at the first failing notebook, naming it and the cell. A finished run is never replaced
silently: ``--overwrite`` is required, and it keeps the trained checkpoints so that models are
not retrained for nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

import ssdlib
from ssdlib import checks, locks, progress
from ssdlib import params as params_mod
from ssdlib.evaluation import results
from ssdlib.log import get as get_logger

LOG = get_logger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # ssdlib/cli/reproduce.py -> the project
NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_.+\.ipynb$")
RUN_FILE = "run.json"


class RunError(RuntimeError):
    """A run cannot start or did not finish; the message says why and what to do."""


def find_notebooks(notebook_dir: Path, only: list[str] | None = None) -> list[Path]:
    """The numbered notebooks in order, optionally only those whose number is in ``only``."""
    found = sorted(p for p in notebook_dir.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))
    if only:
        numbers = {NOTEBOOK_PATTERN.match(p.name).group(1): p for p in found}
        missing = [n for n in only if n not in numbers]
        if missing:
            raise RunError(
                f"--only: no notebook numbered {', '.join(missing)} in {notebook_dir}; "
                f"the numbers are {', '.join(numbers)}"
            )
        found = [p for p in found if NOTEBOOK_PATTERN.match(p.name).group(1) in only]
    if not found:
        raise RunError(
            f"no numbered notebooks (NN_name.ipynb) in {notebook_dir}" + (f" matching {only}" if only else "")
        )
    return found


def git_commit(root: Path = PROJECT_ROOT) -> str | None:
    """The checked-out commit, with '+dirty' when the tree has uncommitted changes; None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _read_run(output_dir: Path) -> dict:
    path = output_dir / RUN_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _write_run(output_dir: Path, info: dict) -> None:
    """Replace run.json atomically: a failed write (a full disk) leaves the previous one."""
    tmp = output_dir / (RUN_FILE + ".tmp")
    try:
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.replace(output_dir / RUN_FILE)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def prepare_output(output_dir: Path, overwrite: bool) -> None:
    """Refuse to replace a finished run unless asked; clear the previous run's notebooks, table, checks
    and progress log."""
    previous = _read_run(output_dir)
    if previous.get("status") == "finished" and not overwrite:
        raise RunError(
            f"{output_dir} holds a finished run (finished {previous.get('finished')}). "
            "Pass --overwrite to run again there (trained checkpoints are reused; one trained with other "
            "params is kept beside the new one, renamed *.other-params-<time>.pt), "
            "or --output-dir DIR for a separate run."
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in [
        *output_dir.glob("[0-9][0-9]_*.ipynb"),
        output_dir / results.RESULTS_FILE,
        output_dir / checks.CHECKS_FILE,
        output_dir / progress.PROGRESS_FILE,
    ]:
        stale.unlink(missing_ok=True)


def execute(notebook: Path, output_dir: Path, parameters: dict, log_output: bool) -> float:
    """Execute one notebook with papermill into ``output_dir``; return the seconds it took.

    The kernel's training progress (``<output_dir>/progress.log``) is printed as it comes, each line
    prefixed with the notebook's name. papermill writes to a hidden partial file, which replaces the
    executed copy only when it is a whole notebook: a full disk never leaves a truncated one.
    """
    import papermill as pm

    start = time.perf_counter()
    executed, partial = output_dir / notebook.name, output_dir / f".{notebook.stem}.partial.ipynb"
    try:
        with progress.follow(output_dir / progress.PROGRESS_FILE, prefix=f"[{notebook.stem}] "):
            pm.execute_notebook(
                str(notebook),
                str(partial),
                parameters=parameters,
                cwd=str(notebook.parent),
                kernel_name="python3",
                progress_bar=True,
                log_output=log_output,
            )
    except pm.PapermillExecutionError as err:
        _publish(partial, executed)
        cell = _source_cell_number(executed, err.cell_index)
        raise RunError(
            f"notebook {notebook.name} failed at cell {cell} (counting from 1 in notebooks/{notebook.name}): "
            f"{err.ename}: {err.evalue}\nThe executed copy with the full traceback is {executed}"
        ) from None
    finally:
        _publish(partial, executed)
    return time.perf_counter() - start


def _publish(partial: Path, executed: Path) -> None:
    """Move papermill's output into place if it is a whole notebook; drop it otherwise."""
    if not partial.exists():
        return
    try:
        json.loads(partial.read_text())
    except (OSError, ValueError):
        partial.unlink(missing_ok=True)
        return
    partial.replace(executed)


def _source_cell_number(executed: Path, index: int) -> int:
    """1-based number of executed cell ``index`` in the source notebook (without papermill's injected cell)."""
    import nbformat

    cells = nbformat.read(executed, as_version=4).cells
    injected = [i for i, c in enumerate(cells) if "injected-parameters" in c.metadata.get("tags", [])]
    return index + 1 - sum(1 for i in injected if i < index)


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's ``parameters`` cell: the only ones worth injecting."""
    import papermill as pm

    return set(pm.inspect_notebook(str(notebook)))


def project_path(path: str | Path, root: Path = PROJECT_ROOT) -> str:
    """``path`` relative to the project root when it lies inside it (so that recorded tables do not
    depend on where the project is checked out), else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def reproduce(
    params_file: Path,
    output_dir: Path | None = None,
    only: list[str] | None = None,
    overwrite: bool = False,
    log_output: bool = False,
    notebook_dir: Path = PROJECT_ROOT / "notebooks",
) -> Path:
    """Run the notebook series for one params profile; return the output folder.

    One run at a time per folder (:mod:`ssdlib.locks`): a second one stops before writing anything.
    ``run.json`` ends as ``finished``, ``failed`` or ``interrupted`` (with the notebook and the
    reason), however the run ends.
    """
    p = params_mod.load(params_file)  # fails before anything is written
    notebooks = find_notebooks(notebook_dir, only)
    output_dir = (output_dir or PROJECT_ROOT / "outputs" / p.profile).resolve()
    with locks.holding(locks.folder_lock(output_dir), f"ssdlib reproduce into {output_dir}"):
        prepare_output(output_dir, overwrite)
        raw = p.model_dump(mode="json")
        (output_dir / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        info = {
            "status": "running",
            "profile": p.profile,
            "params_file": project_path(params_file),
            "ssdlib_version": ssdlib.__version__,
            "git_commit": git_commit(),
            "python": sys.version.split()[0],
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "notebooks": {},
        }
        _write_run(output_dir, info)
        injected = {**raw, "output_dir": str(output_dir), "params_file": project_path(params_file)}
        LOG.info(f"[ssdlib] profile '{p.profile}': {len(notebooks)} notebooks -> {output_dir}")
        for i, nb in enumerate(notebooks, 1):
            LOG.info(f"[ssdlib] ({i}/{len(notebooks)}) {nb.name}")
            wanted = {k: v for k, v in injected.items() if k in declared_parameters(nb)}
            try:
                seconds = execute(nb, output_dir, wanted, log_output)
            except BaseException as err:
                _record_end(output_dir, info, nb.name, err)
                raise
            info["notebooks"][nb.name] = round(seconds, 1)
            _write_run(output_dir, info)
            LOG.info(f"[ssdlib]     done in {seconds:.0f} s")

        csv_path, md_path = results.write_tables(output_dir)
        info.update(status="finished", finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        _write_run(output_dir, info)
    LOG.info(
        f"[ssdlib] finished in {sum(info['notebooks'].values()):.0f} s. Results: {csv_path} and {md_path}; "
        f"executed notebooks and figures in {output_dir}"
    )
    LOG.info(
        f"[ssdlib] checks: {checks.summary(output_dir)}; each with its value and threshold in "
        f"{output_dir / checks.CHECKS_FILE}"
    )
    return output_dir


def _record_end(output_dir: Path, info: dict, notebook: str, err: BaseException) -> None:
    """Write ``failed`` or ``interrupted`` with the notebook and the reason into run.json (a failing
    write, e.g. on a full disk, leaves the previous run.json as it was)."""
    interrupted = isinstance(err, KeyboardInterrupt)
    reason = "interrupted (Ctrl-C)" if interrupted else (f"{type(err).__name__}: {err}".splitlines() or [""])[0]
    info.update(
        status="interrupted" if interrupted else "failed",
        failed_notebook=notebook,
        reason=reason[:500],
        ended=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    try:
        _write_run(output_dir, info)
    except OSError:
        pass
    LOG.info(f"[ssdlib] checks so far: {checks.summary(output_dir)} ({output_dir / checks.CHECKS_FILE})")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", required=True, type=Path, help="params profile, e.g. params/offline.yaml")
    parser.add_argument("--output-dir", type=Path, help="where to write (default: outputs/<profile>)")
    parser.add_argument("--only", help="comma-separated notebook numbers to run, e.g. 00,02")
    parser.add_argument("--overwrite", action="store_true", help="run again over a finished run (keeps checkpoints)")
    parser.add_argument("--log-output", action="store_true", help="stream the notebooks' printed output")


def run(args: argparse.Namespace) -> int:
    only = [s.strip().zfill(2) for s in args.only.split(",")] if args.only else None
    try:
        reproduce(args.params, args.output_dir, only, args.overwrite, args.log_output)
    except (RunError, params_mod.ParamsError, locks.BusyError) as err:
        LOG.error(f"ssdlib reproduce: {err}")
        return 1
    return 0
