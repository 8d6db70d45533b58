"""``ssdlib reproduce``: run the numbered notebooks headless with papermill.

A run validates the params file first (nothing is written when it is invalid), then executes
``notebooks/NN_*.ipynb`` in order into ``outputs/<profile>/``, each with the profile's values
injected after its ``parameters`` cell, and gathers the rows the notebooks recorded into
``results.csv`` and ``results.md``, their sanity checks into ``checks.json``, and the papers' claims
measured on those rows into ``claims.csv`` and ``claims.md`` (:mod:`ssdlib.evaluation.claims`; a claim
never stops a run, a failed sanity check does). While a notebook
runs, its training loops' per-epoch lines reach the terminal (:mod:`ssdlib.progress`). It stops
at the first failing notebook, naming it and the cell. A finished run is never replaced
silently: ``--overwrite`` is required, and it keeps the trained checkpoints so that models are
not retrained for nothing; a folder of someone else's files is refused (:func:`check_output_dir`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import yaml

import ssdlib
from ssdlib import atomic, checks, locks, plan, profiles, progress, report, smoke
from ssdlib import params as params_mod
from ssdlib.cli import Terminated, disk_full, stop_exception, when_stopped
from ssdlib.data import DatasetNotFoundError, UnknownDatasetError, get_datasets, real
from ssdlib.data.checksums import SMOKE_DATA_ENV
from ssdlib.evaluation import claims, paper_comparison, results, spread
from ssdlib.log import get as get_logger
from ssdlib.project import NOTEBOOK_DIR, OUTPUTS_DIR, git_commit, project_path

LOG = get_logger(__name__)

NOTEBOOK_PATTERN = re.compile(r"^(\d\d)_.+\.ipynb$")
RUN_FILE = "run.json"
KERNEL_LOG = "kernel.log"  # what the notebooks' kernels print on stderr
RUN_SPARE = ".run.json.spare"  # disk space kept for run.json's last write (see _write_run)
SPARE_BYTES = 1 << 16


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
                f"no notebook numbered {', '.join(missing)} in {notebook_dir}; the numbers are {', '.join(numbers)}"
            )
        found = [p for p in found if NOTEBOOK_PATTERN.match(p.name).group(1) in only]
    if not found:
        raise RunError(
            f"no numbered notebooks (NN_name.ipynb) in {notebook_dir}" + (f" matching {only}" if only else "")
        )
    return found


def profile_notebooks(P: params_mod.Params, notebook_dir: Path, only: list[str] | None = None) -> list[Path]:
    """The notebooks a run of ``P`` executes: those its ``notebooks`` list names (all when it names
    none), narrowed to ``only``; a number the profile does not run is an error, not a silent skip."""
    if only and P.notebooks is not None:
        foreign = [n for n in only if n not in P.notebooks]
        if foreign:
            raise RunError(
                f"--only {','.join(foreign)}: profile '{P.profile}' does not run notebook(s) {', '.join(foreign)} "
                f"(its notebooks: {', '.join(P.notebooks)}; see 'notebooks:' in its params file)"
            )
    return find_notebooks(notebook_dir, only or P.notebooks)


def _read_run(output_dir: Path) -> dict:
    path = output_dir / RUN_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _write_run(output_dir: Path, info: dict) -> None:
    """Replace run.json atomically: a failed write (a full disk) leaves the previous one.

    While a run goes on, a hidden file beside it keeps some disk space for the last write: when the disk is
    full, that file is deleted and the write tried again, so that run.json never stays ``running``."""
    text = json.dumps(info, indent=2) + "\n"
    spare = output_dir / RUN_SPARE
    try:
        atomic.write(output_dir / RUN_FILE, text)
    except OSError as err:
        if err.errno != errno.ENOSPC or not spare.is_file():
            raise
        spare.unlink()
        atomic.write(output_dir / RUN_FILE, text)
    if info.get("status") != "running":
        spare.unlink(missing_ok=True)
    elif not spare.is_file():
        with contextlib.suppress(OSError):  # no space to keep: the run goes on without
            atomic.write(spare, bytes(max(SPARE_BYTES, 2 * len(text))))


OWN_ENTRIES = {RUN_FILE, locks.FOLDER_LOCK, "checkpoints"}  # what a folder may hold before its run.json exists


def check_output_dir(output_dir: Path) -> None:
    """Refuse a folder that a run would spoil: a file, or a folder of someone else's files (a run replaces
    results.csv, results.md, params.yaml, ...). A folder ssdlib wrote (its run.json, or only its lock and
    the checkpoints ``ssdlib model`` trains there) is fine; what ``prepare_output`` clears is then its own."""
    if output_dir.exists() and not output_dir.is_dir():
        raise RunError(f"--output-dir {output_dir} is a file, not a folder: name a folder (a new one is created)")
    if not output_dir.is_dir() or (output_dir / RUN_FILE).is_file():
        return
    foreign = sorted(p.name for p in output_dir.iterdir() if p.name not in OWN_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f", ... ({len(foreign) - 5} more)" if len(foreign) > 5 else "")
        raise RunError(
            f"{output_dir} holds files that no ssdlib run wrote ({shown}) and a run would replace some of them: "
            f"name a new or empty folder, e.g. --output-dir {output_dir / 'ssdlib-run'}"
        )


def prepare_output(output_dir: Path, overwrite: bool) -> None:
    """Refuse to replace a finished run unless asked; clear the previous run's notebooks, table and checks
    (``progress.log`` and ``kernel.log`` are appended to: a resumed run keeps the lines of its first part)."""
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
        *output_dir.glob("[0-9][0-9]_*.html"),
        output_dir / report.REPORT_FILE,
        output_dir / claims.CSV_FILE,
        output_dir / claims.MD_FILE,
    ]:
        stale.unlink(missing_ok=True)


def execute(notebook: Path, output_dir: Path, parameters: dict, log_output: bool) -> float:
    """Execute one notebook with papermill into ``output_dir``; return the seconds it took.

    The kernel's training progress (``<output_dir>/progress.log``) is printed as it comes, each line
    prefixed with the notebook's name. papermill writes to a hidden partial file, which replaces the
    executed copy only when it is a whole notebook: a full disk never leaves a truncated one. The kernel's
    own messages go to ``kernel.log`` (:func:`_kernel_logged_to`), not to the terminal.
    """
    import papermill as pm  # local: papermill is heavy and only executing a notebook needs it

    start = time.perf_counter()
    executed, partial = output_dir / notebook.name, output_dir / f".{notebook.stem}.partial.ipynb"
    try:
        with (
            when_stopped(stop_kernels),
            progress.follow(output_dir / progress.PROGRESS_FILE, prefix=f"[{notebook.stem}] "),
        ):
            pm.execute_notebook(
                str(notebook),
                str(partial),
                parameters=parameters,
                cwd=str(notebook.parent),
                kernel_name="python3",
                progress_bar=True,
                log_output=log_output,
                coalesce_streams=True,  # one stdout and one stderr output per cell, carriage returns applied
                kernel_manager_class=_kernel_logged_to(output_dir / KERNEL_LOG),
            )
    except pm.PapermillExecutionError as err:
        _publish(partial, executed)
        cell = _source_cell_number(executed, err.cell_index)
        full = re.match(rf"\[Errno {errno.ENOSPC}\] [^:]*(?:: '(.*)')?$", err.evalue or "")
        if err.ename == "OSError" and full:
            raise RunError(f"notebook {notebook.name} stopped at cell {cell}: {disk_full(full.group(1))}") from None
        raise RunError(
            f"notebook {notebook.name} failed at cell {cell} (counting from 1 in notebooks/{notebook.name}): "
            f"{err.ename}: {err.evalue}\nThe executed copy with the full traceback is {executed}"
        ) from None
    finally:
        _publish(partial, executed)
    return time.perf_counter() - start


def _kernel_logged_to(log: Path) -> type:
    """A kernel manager whose kernels write their stderr to ``log`` (appended). The kernel would share
    the terminal: its start-up warning, and the traceback it prints when stopped while it answers
    (``ZMQError: Socket operation on non-socket`` after Ctrl-C), would bury the run's own last line."""
    from jupyter_client.manager import AsyncKernelManager  # local: only executing a notebook needs it

    class LoggedKernel(AsyncKernelManager):
        async def start_kernel(self, **kw):
            with log.open("ab") as fh:  # the kernel keeps its own copy of the file descriptor
                await super().start_kernel(**kw, stderr=fh)
            RUNNING_KERNELS.append(self)

    return LoggedKernel


RUNNING_KERNELS: list = []  # the kernels this process started (LoggedKernel), for stop_kernels


def stop_kernels() -> None:
    """Kill the notebook kernels this process started (a stop hook, :func:`ssdlib.cli.when_stopped`): the
    cell they run ends at once, so that papermill returns even where it swallowed the Ctrl-C."""
    for manager in RUNNING_KERNELS:
        process = getattr(manager.provisioner, "process", None)
        if process is not None and process.poll() is None:
            process.kill()


def _publish(partial: Path, executed: Path) -> None:
    """Move papermill's output into place if it is a whole notebook (a rename in one folder: atomic);
    drop it otherwise."""
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
    import nbformat  # local: nbformat is heavy and only a failed notebook's report needs it

    cells = [  # as executed: without the error banners papermill adds after a failure
        c
        for c in nbformat.read(executed, as_version=4).cells
        if "papermill-error-cell-tag" not in c.metadata.get("tags", [])
    ]
    injected = [i for i, c in enumerate(cells) if "injected-parameters" in c.metadata.get("tags", [])]
    return index + 1 - sum(1 for i in injected if i < index)


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's ``parameters`` cell: the only ones worth injecting."""
    import papermill as pm  # local: papermill is heavy and only executing a notebook needs it

    return set(pm.inspect_notebook(str(notebook)))


def _announce(P: params_mod.Params, notebooks: list[Path], bundle, *, smoke: bool) -> list:
    """Say up front what the run will do: the notebooks, the data, and each model's epochs x images
    (returned, as :class:`ssdlib.plan.Model`)."""
    kind = "smoke run (tiny generated files, cut epochs; checks reported, not enforced)" if smoke else "run"
    LOG.info(f"[ssdlib] profile '{P.profile}', {kind}: notebooks {', '.join(nb.stem for nb in notebooks)}")
    LOG.info(f"[ssdlib] data: {data_summary(bundle)}")
    numbers = [NOTEBOOK_PATTERN.match(nb.name).group(1) for nb in notebooks]
    planned = plan.models(P, numbers, len(bundle.train))
    if planned:
        LOG.info("[ssdlib] models to train (or load, when this folder holds them):\n" + plan.table(planned).to_string())
    return planned


def device_summary(name: str) -> str:
    """The device the notebooks train on, as the report shows it: the GPU's name, or the CPU's threads."""
    import torch  # local: torch is heavy and the CLI's other paths do without it

    from ssdlib.experiment import resolve_device  # local: it imports torch

    device = resolve_device(name)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({torch.cuda.device_count()} visible)"
    return f"CPU, {torch.get_num_threads()} threads"


def data_summary(bundle) -> str:
    """Each set and its number of images, with the published count where it differs (a subset, or
    files missing)."""

    def expected(name: str, split: str | None) -> int | None:
        entry = real.REAL_SETS.get(name)
        return real.expected_count(name, entry.test_split if split is None else split) if entry else None

    sets = {
        f"{bundle.name} train": (bundle.train, expected(bundle.name, "train")),
        f"{bundle.name} test": (bundle.test, expected(bundle.name, None)),
        **{name: (dataset, expected(name, None)) for name, dataset in bundle.ood.items()},
    }
    return "; ".join(
        f"{label} {len(dataset):,}" + (f" (the published set has {n:,})" if n is not None and n != len(dataset) else "")
        for label, (dataset, n) in sets.items()
    )


def check_images(bundle) -> None:
    """Decode the images of every folder set (all, or a sample of a large set, said as such): a file that
    is no image, or a truncated one, is found before any training starts."""
    sets = {f"{bundle.name} train": bundle.train, f"{bundle.name} test": bundle.test, **bundle.ood}
    for label, dataset in sets.items():
        checked, total, bad = real.bad_images(dataset)
        if bad:
            shown = "; ".join(bad[:3]) + (f"; ... ({len(bad) - 3} more)" if len(bad) > 3 else "")
            raise RunError(
                f"{label}: {len(bad)} of {checked:,} images opened cannot be read: {shown}; remove or replace them"
            )
        if total:
            sample = "every one" if checked == total else f"{checked:,} spread over the files (a sample)"
            LOG.info(f"[ssdlib] images of {label}: {total:,}, decoded {sample}; all readable")


def dry_run(params_file: Path, only: list[str] | None = None, notebook_dir: Path = NOTEBOOK_DIR) -> None:
    """Validate the params and the data (every set present, its size, the images of folder sets readable)
    and print the plan; train nothing, write nothing."""
    P = profiles.load(params_file)
    notebooks = profile_notebooks(P, notebook_dir, only)
    bundle = get_datasets(P.data)
    _announce(P, notebooks, bundle, smoke=False)
    check_images(bundle)
    for line in plan.weights_status(P):
        LOG.info(f"[ssdlib] weights: {line}")
    LOG.info("[ssdlib] dry run: the params and the data are in order; nothing was trained or written")


def reproduce(
    params_file: Path,
    output_dir: Path | None = None,
    only: list[str] | None = None,
    overwrite: bool = False,
    log_output: bool = False,
    notebook_dir: Path = NOTEBOOK_DIR,
    smoke: bool = False,
    seeds: list[int] | None = None,
    write_report: bool = True,
) -> Path:
    """Run the notebooks of one params profile; return the output folder.

    The params and the data are checked, and the plan printed, before anything is written. One run at
    a time per folder (:mod:`ssdlib.locks`): a second one stops before writing anything.
    ``run.json`` ends as ``finished``, ``failed``, ``interrupted`` (Ctrl-C) or ``terminated`` (SIGTERM), with
    the notebook and the reason, however the run ends. ``smoke``: the same notebooks on tiny generated files with cut
    epochs (:mod:`ssdlib.smoke`), into ``outputs/<profile>_smoke`` unless ``output_dir`` is given.
    ``seeds`` (default: the profile's ``seeds``): one run per seed (:func:`_run_seeds`).
    ``write_report``: end with ``report.html`` (:mod:`ssdlib.report`), for each seed and over them.
    """
    P = profiles.load(params_file)  # fails before anything is written
    seeds = seeds or P.seeds
    if seeds is not None:
        P = profiles.load(params_file, {"seeds": seeds})  # the seed list checked as a file's would be
    notebooks = profile_notebooks(P, notebook_dir, only)
    default_dir = OUTPUTS_DIR / (f"{P.profile}_smoke" if smoke else P.profile)
    output_dir = Path(output_dir or default_dir).resolve()
    check_output_dir(output_dir)
    with contextlib.ExitStack() as stack:
        overrides: dict = {}
        if smoke:
            overrides = _smoke_setup(P, stack)
            P = profiles.load(params_file, overrides)  # as the notebooks will read it
        planned = _announce(P, notebooks, get_datasets(P.data), smoke=smoke)
        stack.enter_context(locks.holding(locks.folder_lock(output_dir), f"ssdlib reproduce into {output_dir}"))
        info = {"profile": P.profile, "params_file": project_path(params_file), "smoke": smoke, "report": write_report}
        info["plan"] = [{**asdict(m), "work": m.work} for m in planned]
        try:
            if seeds is None:
                _run(P, info, overrides, notebooks, output_dir, overwrite=overwrite, log_output=log_output)
            else:
                _run_seeds(P, params_file, info, overrides, notebooks, output_dir, seeds, overwrite, log_output)
        except BaseException as err:
            _close_unfinished(output_dir, err)
            raise
    return output_dir


def _close_unfinished(output_dir: Path, err: BaseException) -> None:
    """Mark each run.json of this run still ``running`` (the folder's, its seeds') as ``err`` ended it: a
    run that stops outside a notebook (writing params.yaml or the tables) never stays ``running``."""
    for folder in [output_dir, *sorted(p.parent for p in output_dir.glob(f"seed_*/{RUN_FILE}"))]:
        info = _read_run(folder)
        if info.get("status") == "running":
            status, reason = _ending(err)
            info.update(
                status=status, reason=reason[:500], ended=datetime.now(timezone.utc).isoformat(timespec="seconds")
            )
            with contextlib.suppress(OSError):
                _write_run(folder, info)


def seed_overrides(seed: int) -> dict:
    """What one seed of a multi-seed run changes: the global seed and the generator seed (the offline
    benchmark's images and the synthetic sets); its checks are recorded, not enforced, so that every seed
    runs to the end and the run judges them over all seeds (:func:`ssdlib.checks.over_seeds`)."""
    return {"seed": seed, "data": {"offline": {"seed": seed}}, "checks": {"enforce": False}}


def _run_seeds(
    P: params_mod.Params,
    params_file: Path,
    about: dict,
    overrides: dict,
    notebooks: list[Path],
    output_dir: Path,
    seeds: list[int],
    overwrite: bool,
    log_output: bool,
) -> None:
    """One run of the profile per seed into ``<output_dir>/seed_<n>/``, then the tables over the seeds
    (:mod:`ssdlib.evaluation.spread`), the checks over the seeds (``checks_over_seeds.json``, also at the
    top of ``results.md``), the claims' ledger over the seeds (``claims.csv``, ``claims.md``) and
    ``paper_comparison.md`` with each number's spread and the claims' verdicts. Every seed trains its
    own models (each depends on the seed); the generated data of a seed is cached and shared with any
    other run of it, and a seed whose folder holds its finished run with the same params and notebooks
    is not run again (unless ``overwrite``). With ``checks.enforce``, a check that fails on the mean or on
    any seed fails the run, after every table is written."""
    prepare_output(output_dir, overwrite)
    (output_dir / "params.yaml").write_text(yaml.safe_dump(P.model_dump(mode="json"), sort_keys=False))
    info = {"status": "running", **about, "seeds": seeds, "git_commit": git_commit(), "runs": {}}
    info["device"] = device_summary(P.device)
    info["started"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_run(output_dir, info)
    folders = {}
    for i, seed in enumerate(seeds, 1):
        folder = spread.seed_folder(output_dir, seed)
        LOG.info(f"[ssdlib] seed {seed} ({i}/{len(seeds)}) -> {folder}")
        seed_params = profiles.merged(overrides, seed_overrides(seed))
        seed_P = profiles.load(params_file, seed_params)
        try:
            if not overwrite and _finished_alike(folder, seed_P, notebooks):
                LOG.info(f"[ssdlib] seed {seed}: {folder} holds this seed's finished run with these params: reused")
            else:
                _run(
                    seed_P,
                    {**about, "seed": seed},
                    seed_params,
                    notebooks,
                    folder,
                    overwrite=overwrite,
                    log_output=log_output,
                )
        except BaseException as err:
            _record_end(output_dir, info, f"seed {seed}", err)
            raise
        folders[seed] = folder
        info["runs"][str(seed)] = _read_run(folder).get("notebooks", {})
        _write_run(output_dir, info)

    over = checks.over_seeds({seed: checks.read(folder) for seed, folder in folders.items()})
    checks.write_over_seeds(output_dir / checks.SEEDS_FILE, over)
    written = spread.write(output_dir, folders, extra=checks.seeds_markdown(over))
    ledger = _claims(output_dir, P, {seed: results.load(folder) for seed, folder in folders.items()}, about["smoke"])
    written += [output_dir / claims.CSV_FILE, output_dir / claims.MD_FILE]
    if paper_comparison.covered_targets(P).shape[0]:
        rows, extra = spread.gather(folders), claims.markdown_lines(ledger, heading="## The papers' claims")
        written.append(paper_comparison.write(output_dir, P, smoke=about["smoke"], rows=rows, extra=extra))
    failed = [c for c in over if not c.passed]
    message = f"{len(failed)} checks failed over the seeds: " + "; ".join(c.name for c in failed)
    if failed and P.checks.enforce:
        _record_end(output_dir, info, "checks over seeds", RunError(message))
    else:
        info.update(status="finished", finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        _write_run(output_dir, info)
    if about["report"]:
        written.append(_report_of_finished_run(output_dir))
    for c in over:
        LOG.info(f"[ssdlib]   {c.describe()}")
    LOG.info(
        f"[ssdlib] {len(seeds)} seeds finished. Results over the seeds: {', '.join(map(str, written))}; each seed's "
        f"run in {output_dir}/seed_<n>/; checks over the seeds: {len(over) - len(failed)} of {len(over)} passed "
        f"({output_dir / checks.SEEDS_FILE})"
    )
    if failed and P.checks.enforce:
        raise RunError(f"{message} (each with its values per seed in {output_dir / checks.SEEDS_FILE})")


def _finished_alike(folder: Path, P: params_mod.Params, notebooks: list[Path]) -> bool:
    """Whether ``folder`` holds a finished run of the same params and notebooks (a multi-seed run that was
    stopped, or that failed its checks, starts again at the first seed it has not finished)."""
    run = _read_run(folder)
    try:
        same_params = yaml.safe_load((folder / "params.yaml").read_text()) == P.model_dump(mode="json")
    except (OSError, yaml.YAMLError):
        return False
    return (
        run.get("status") == "finished"
        and same_params
        and list(run.get("notebooks", {})) == [nb.name for nb in notebooks]
    )


@contextlib.contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    """Set the environment variable ``name`` to ``value`` while active (for this process and the
    notebook kernels it starts), then restore its previous value, or remove it if it had none."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _smoke_setup(P: params_mod.Params, stack: contextlib.ExitStack) -> dict:
    """Write the tiny data and weights of a smoke run into a temporary folder (removed when the run
    ends) and let torchvision accept the tiny files there; return the overrides."""
    root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ssdlib-smoke-")))
    overrides = smoke.prepare(P, root)
    # the notebook kernels inherit the environment
    stack.enter_context(environment(SMOKE_DATA_ENV, str((root / "data").resolve())))
    LOG.info(f"[ssdlib] smoke data and weights written under {root} (removed at the end)")
    return overrides


def _run(
    P: params_mod.Params,
    about: dict,
    overrides: dict,
    notebooks: list[Path],
    output_dir: Path,
    *,
    overwrite: bool,
    log_output: bool,
) -> None:
    """Execute ``notebooks`` into ``output_dir`` (held locked) and write the tables; ``about`` (profile,
    params file, smoke, plan) goes into run.json."""
    prepare_output(output_dir, overwrite)
    raw = P.model_dump(mode="json")
    (output_dir / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    info = {
        "status": "running",
        "seed": P.seed,
        **about,
        "ssdlib_version": ssdlib.__version__,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "device": device_summary(P.device),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "notebooks": {},
    }
    _write_run(output_dir, info)
    injected = {"params_file": about["params_file"], "output_dir": str(output_dir), "overrides": overrides}
    LOG.info(f"[ssdlib] {len(notebooks)} notebooks -> {output_dir}")
    for i, nb in enumerate(notebooks, 1):
        LOG.info(f"[ssdlib] ({i}/{len(notebooks)}) {nb.name}")
        wanted = {k: v for k, v in injected.items() if k in declared_parameters(nb)}
        try:
            seconds = execute(nb, output_dir, wanted, log_output)
        except BaseException as err:
            _record_end(output_dir, info, nb.name, err)
            if about["report"] and isinstance(err, Exception) and stop_exception() is None:  # not after Ctrl-C
                _report_of_failed_run(output_dir)
            raise
        info["notebooks"][nb.name] = round(seconds, 1)
        _write_run(output_dir, info)
        LOG.info(f"[ssdlib]     done in {seconds:.0f} s")

    csv_path, md_path = results.write_tables(output_dir)
    ledger = _claims(output_dir, P, {P.seed: results.load(output_dir)}, about["smoke"])
    written = [csv_path, md_path, output_dir / claims.CSV_FILE, output_dir / claims.MD_FILE]
    if paper_comparison.covered_targets(P).shape[0]:
        extra = claims.markdown_lines(ledger, heading="## The papers' claims")
        written.append(paper_comparison.write(output_dir, P, smoke=about["smoke"], extra=extra))
    info.update(status="finished", finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    _write_run(output_dir, info)
    if about["report"]:
        written.append(_report_of_finished_run(output_dir))
    LOG.info(
        f"[ssdlib] finished in {sum(info['notebooks'].values()):.0f} s. Results: {', '.join(map(str, written))}; "
        f"executed notebooks and figures in {output_dir}"
    )
    LOG.info(
        f"[ssdlib] checks: {checks.summary(output_dir)}; each with its value and threshold in "
        f"{output_dir / checks.CHECKS_FILE}" + (" (a smoke run: not enforced)" if about["smoke"] else "")
    )


def _report_of_finished_run(output_dir: Path) -> Path:
    """``report.html`` of a run whose results are all written; a report that fails says so in one line."""
    try:
        return report.write(output_dir)
    except Exception as err:  # noqa: BLE001 - any failure of the page; the run's files are complete
        raise RunError(
            f"the run finished and its results are in {output_dir}, but report.html was not written "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            f"rebuild it with: ssdlib report {output_dir}"
        ) from None


def _report_of_failed_run(output_dir: Path) -> None:
    """The report of a run that stopped (what ran, the checks so far, the failed notebook's page); a
    report that cannot be written only says so, so that the run's own failure stays the message."""
    try:
        report.write(output_dir)
    except Exception as err:  # noqa: BLE001 - the run's failure, not the report's, is what the user must see
        LOG.warning(f"[ssdlib] no report.html for this stopped run ({type(err).__name__}: {err})")


def _claims(output_dir: Path, P: params_mod.Params, per_seed: dict, smoke: bool):
    """Write the claims' ledger of ``per_seed`` ({seed: result rows}), say its verdicts and return it. Whatever
    a claim's verdict, nothing is raised: claims do not gate a run, sanity checks do."""
    table = claims.write(output_dir, per_seed, P, smoke=smoke)
    LOG.info(f"[ssdlib] the papers' claims: {claims.summary(table)} ({output_dir / claims.MD_FILE})")
    return table


def _record_end(output_dir: Path, info: dict, notebook: str, err: BaseException) -> None:
    """Write ``failed``, ``interrupted`` or ``terminated`` with the notebook and the reason into run.json (a failing
    write, e.g. on a full disk, leaves the previous run.json as it was)."""
    status, reason = _ending(err)
    info.update(
        status=status,
        failed_notebook=notebook,
        reason=reason[:500],
        ended=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    try:
        _write_run(output_dir, info)
    except OSError:
        pass
    if status == "failed":  # after Ctrl-C or SIGTERM, the one line of the command is all that is shown
        LOG.info(f"[ssdlib] checks so far: {checks.summary(output_dir)} ({output_dir / checks.CHECKS_FILE})")


def _ending(err: BaseException) -> tuple[str, str]:
    """run.json's status and reason for a run that ``err`` ended (a stop, whatever error it caused)."""
    err = stop_exception() or err
    if isinstance(err, Terminated):
        return "terminated", "terminated (SIGTERM)"
    if isinstance(err, KeyboardInterrupt):
        return "interrupted", "interrupted (Ctrl-C)"
    return "failed", (f"{type(err).__name__}: {err}".splitlines() or [""])[0]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", required=True, type=Path, help="params profile, e.g. params/offline.yaml")
    parser.add_argument("--output-dir", type=Path, help="where to write (default: outputs/<profile>)")
    parser.add_argument("--only", help="comma-separated numbers of the profile's notebooks to run, e.g. 00,02")
    parser.add_argument("--overwrite", action="store_true", help="run again over a finished run (keeps checkpoints)")
    parser.add_argument("--log-output", action="store_true", help="stream the notebooks' printed output")
    parser.add_argument(
        "--seeds",
        help="comma-separated seeds, e.g. 0,1,2: one run per seed into <output-dir>/seed_<n>/, tables of mean ± std "
        "(default: the profile's seeds:, else one run with its seed)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--smoke",
        action="store_true",
        help="the profile's notebooks on CPU in minutes, on tiny generated files in each set's real format "
        "(into outputs/<profile>_smoke; checks reported, not enforced)",
    )
    parser.add_argument("--no-report", action="store_true", help="skip report.html (ssdlib report DIR builds it later)")
    mode.add_argument(
        "--dry-run", action="store_true", help="check the params and the data root, print the plan; train nothing"
    )


def run(args: argparse.Namespace) -> int:
    only = [s.strip().zfill(2) for s in args.only.split(",")] if args.only else None
    try:
        if args.dry_run:
            dry_run(args.params, only)
        else:
            seeds = _seed_list(args.seeds) if args.seeds else None
            reproduce(
                args.params,
                args.output_dir,
                only,
                args.overwrite,
                args.log_output,
                smoke=args.smoke,
                seeds=seeds,
                write_report=not args.no_report,
            )
    except (RunError, params_mod.ParamsError, locks.BusyError, DatasetNotFoundError, UnknownDatasetError) as err:
        LOG.error(f"ssdlib reproduce: {err}")
        return 1
    return 0


def _seed_list(text: str) -> list[int]:
    """``--seeds 0,1,2`` as integers; anything else is a clear error."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise RunError(f"--seeds {text!r}: give whole numbers separated by commas, e.g. --seeds 0,1,2") from None
