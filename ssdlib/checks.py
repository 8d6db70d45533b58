"""The notebooks' sanity checks, stated by name, recorded in ``checks.json``, and able to fail.

A sanity check asks whether the pipeline works (a finite loss, an encoder above chance, a detector that
separates far OOD) and stops the run when it fails. The papers' findings are not checks but claims
(:mod:`ssdlib.evaluation.claims`), judged over seeds and never stopping a run.

A bare ``assert`` stops at the first failure and leaves no record of the checks that passed or
of how close they came. Each notebook instead states its checks with :class:`Checks` and calls
:meth:`Checks.conclude` in its last cell, which writes every check (value, threshold, passed) to
``<output_dir>/checks.json`` and then raises one AssertionError naming every failed check, so
nbval and papermill runs still fail (unless ``enforce`` is off, as in smoke runs, whose tiny models
cannot meet the thresholds: then failures are recorded and reported only)::

    c = checks.Checks(output_dir, "01_simclr_pretraining", enforce=P.checks.enforce)
    c.at_least("simclr_knn_accuracy", knn, P.checks.min_knn_accuracy)
    c.holds("finite_loss", all(math.isfinite(v) for v in history.loss))
    c.conclude()

Thresholds come from ``P.checks`` (``ssdlib.params.CheckParams``).
"""

from __future__ import annotations

import json
import math
import operator
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ssdlib import atomic
from ssdlib.log import get as get_logger

LOG = get_logger(__name__)

CHECKS_FILE = "checks.json"

# relation -> (test, the words that explain a failure)
RELATIONS = {
    ">=": (operator.ge, "is below"),
    "<=": (operator.le, "is above"),
    ">": (operator.gt, "is not above"),
    "<": (operator.lt, "is not below"),
}


@dataclass(frozen=True)
class Check:
    """One recorded check. ``relation`` is ``>=``, ``<=``, ``>``, ``<`` (value vs threshold) or
    ``holds`` (a condition; value and threshold, when given, are what it compared)."""

    notebook: str
    name: str
    value: float | None
    threshold: float | None
    relation: str
    passed: bool
    detail: str = ""

    def describe(self) -> str:
        """One line: name, value, relation, threshold, detail."""
        if self.relation == "holds":
            values = ", ".join(
                f"{k} {_fmt(v)}" for k, v in (("value", self.value), ("threshold", self.threshold)) if v is not None
            )
            text = f"{self.name} {'holds' if self.passed else 'does not hold'}" + (f" ({values})" if values else "")
        elif self.passed:
            text = f"{self.name} = {_fmt(self.value)} ({self.relation} {_fmt(self.threshold)})"
        else:
            text = f"{self.name} = {_fmt(self.value)} {RELATIONS[self.relation][1]} {_fmt(self.threshold)}"
        return text + (f": {self.detail}" if self.detail else "")


def _fmt(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4g}"


def _plain(value: Any, what: str) -> float | None:
    """A Python float (numpy and torch scalars converted exactly); None for NaN / inf, which JSON cannot hold."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {value!r} ({type(value).__name__})") from None
    return number if math.isfinite(number) else None


class Checks:
    """The checks of one notebook: state them with :meth:`at_least`, :meth:`at_most`, :meth:`above`,
    :meth:`below` and :meth:`holds`; :meth:`conclude` records them and fails on any failure.

    Each method returns whether the check passed, so a notebook can explain a failure further.
    """

    def __init__(self, output_dir: str | Path, notebook: str, *, enforce: bool = True) -> None:
        self.path = Path(output_dir) / CHECKS_FILE
        self.notebook = notebook
        self.enforce = enforce
        self.checks: list[Check] = []

    def _add(
        self, name: str, value: float | None, threshold: float | None, relation: str, passed: bool, detail: str
    ) -> bool:
        if any(c.name == name for c in self.checks):
            raise ValueError(f"check {name!r} is stated twice in {self.notebook}: give each check its own name")
        self.checks.append(Check(self.notebook, name, value, threshold, relation, bool(passed), detail))
        return bool(passed)

    def _compare(self, name: str, value: Any, threshold: Any, relation: str, detail: str) -> bool:
        v, t = _plain(value, f"check {name!r}: value"), _plain(threshold, f"check {name!r}: threshold")
        if t is None:
            raise ValueError(f"check {name!r}: the threshold is {threshold!r}; set a finite value in params checks:")
        passed = v is not None and RELATIONS[relation][0](v, t)  # NaN never passes
        return self._add(name, v, t, relation, passed, detail)

    def at_least(self, name: str, value: Any, threshold: Any, detail: str = "") -> bool:
        """Passes when ``value >= threshold``."""
        return self._compare(name, value, threshold, ">=", detail)

    def at_most(self, name: str, value: Any, threshold: Any, detail: str = "") -> bool:
        """Passes when ``value <= threshold``."""
        return self._compare(name, value, threshold, "<=", detail)

    def above(self, name: str, value: Any, threshold: Any, detail: str = "") -> bool:
        """Passes when ``value > threshold`` (strictly)."""
        return self._compare(name, value, threshold, ">", detail)

    def below(self, name: str, value: Any, threshold: Any, detail: str = "") -> bool:
        """Passes when ``value < threshold`` (strictly)."""
        return self._compare(name, value, threshold, "<", detail)

    def holds(self, name: str, condition: Any, *, value: Any = None, threshold: Any = None, detail: str = "") -> bool:
        """Passes when ``condition`` is true; ``value`` / ``threshold`` record what it compared."""
        return self._add(
            name,
            _plain(value, f"check {name!r}: value"),
            _plain(threshold, f"check {name!r}: threshold"),
            "holds",
            bool(condition),
            detail,
        )

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def conclude(self) -> None:
        """Record this notebook's checks in ``checks.json`` (replacing its earlier ones), print them,
        and raise an AssertionError naming every failed one (when enforced). Returns nothing, so that a
        notebook cell ending with it echoes no list of objects after the printed lines."""
        if not self.checks:
            raise ValueError(f"{self.notebook} states no checks: call at_least / at_most / holds before conclude")
        write(self.path, [c for c in read(self.path) if c.notebook != self.notebook] + self.checks)
        for c in self.checks:
            LOG.info(f"{'ok  ' if c.passed else 'FAIL'} {c.describe()}")
        failed = self.failed
        if failed:
            message = (
                f"{len(failed)} of {len(self.checks)} checks of {self.notebook} failed "
                f"(all recorded in {self.path}):\n" + "\n".join(f"  {c.describe()}" for c in failed)
            )
            if self.enforce:
                raise AssertionError(message)
            LOG.warning(f"{message}\n(checks.enforce is off: reported, not raised)")
        else:
            LOG.info(f"all {len(self.checks)} checks passed (recorded in {self.path})")


def read(path: str | Path) -> list[Check]:
    """The checks recorded in ``path`` (a ``checks.json``, or a folder holding one); empty if there is none."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKS_FILE
    if not path.is_file():
        return []
    try:
        return [Check(**entry) for entry in json.loads(path.read_text())]
    except (json.JSONDecodeError, TypeError) as err:
        raise ValueError(
            f"{path} is not a checks file written by ssdlib.checks ({err}); delete it and rerun the notebooks"
        ) from None


def write(path: str | Path, checks: list[Check]) -> Path:
    """Write ``checks`` to ``path`` atomically (a temporary file, then a rename), in notebook order."""
    ordered = sorted(checks, key=lambda c: c.notebook)  # stable: a notebook's checks keep their order
    return _write_records(path, ordered)


def _write_records(path: str | Path, records: list) -> Path:
    """Dataclass records as a JSON list at ``path``, atomically (``ssdlib.atomic.write``)."""
    return atomic.write(path, json.dumps([asdict(r) for r in records], indent=2, allow_nan=False) + "\n")


def summary(output_dir: str | Path) -> str:
    """One line for the end of a run: how many checks were recorded, and which failed."""
    recorded = read(output_dir)
    if not recorded:
        return "no checks recorded"
    failed = [c for c in recorded if not c.passed]
    if not failed:
        return f"{len(recorded)} checks, all passed"
    return f"{len(recorded)} checks, {len(failed)} failed: " + "; ".join(
        f"{c.notebook}: {c.describe()}" for c in failed
    )


# -- over seeds ------------------------------------------------------------------------------

SEEDS_FILE = "checks_over_seeds.json"


@dataclass(frozen=True)
class SeedCheck:
    """One check over the seeds of a multi-seed run: its value and threshold on each seed, their means
    and stds, whether it holds on the means (``passed_on_mean``; a ``holds`` check on the means holds
    when it holds on every seed) and the seeds on which it failed. It passes only when it holds on the
    means *and* on every seed: a check that passes on the mean but fails on one seed is failed, and says so."""

    notebook: str
    name: str
    relation: str
    values: dict[str, float | None]
    thresholds: dict[str, float | None]
    mean: float | None
    std: float | None
    threshold_mean: float | None
    passed_on_mean: bool
    failed_seeds: list[int]
    missing_seeds: list[int]
    passed: bool

    def describe(self) -> str:
        """One line: passed or FAILED, the mean ± std against the threshold, where it failed."""
        where = f"failed on seed(s) {', '.join(map(str, self.failed_seeds))}" if self.failed_seeds else "every seed"
        missing = f"; not recorded on seed(s) {', '.join(map(str, self.missing_seeds))}" if self.missing_seeds else ""
        on_mean = ""
        if self.relation != "holds":
            spread = "" if self.std is None else f" ± {self.std:.4g}"
            held = "holds" if self.passed_on_mean else "does not hold"
            on_mean = f"mean {_fmt(self.mean)}{spread} {self.relation} {_fmt(self.threshold_mean)} {held}; "
        return f"{'passed' if self.passed else 'FAILED'} {self.name}: {on_mean}{where}{missing}"


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (None where there are too few values)."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _find(checks: list[Check], notebook: str, name: str) -> Check | None:
    return next((c for c in checks if (c.notebook, c.name) == (notebook, name)), None)


def over_seeds(per_seed: dict[int, list[Check]]) -> list[SeedCheck]:
    """Every check that any seed recorded, over the seeds (``per_seed``: {seed: that seed's checks}), in
    the order the first seed recorded them. A seed that did not record a check (its run stopped before)
    counts as failing it."""
    order: dict[tuple[str, str], Check] = {}
    for checks in per_seed.values():
        for c in checks:
            order.setdefault((c.notebook, c.name), c)
    out = []
    for (notebook, name), first in order.items():
        found = {seed: _find(cs, notebook, name) for seed, cs in per_seed.items()}
        recorded = {seed: c for seed, c in found.items() if c is not None}
        missing = sorted(seed for seed, c in found.items() if c is None)
        failed = sorted(seed for seed, c in recorded.items() if not c.passed)
        values = [c.value for c in recorded.values() if c.value is not None]
        thresholds = [c.threshold for c in recorded.values() if c.threshold is not None]
        mean, std = _mean_std(values)
        threshold_mean, _ = _mean_std(thresholds)
        if first.relation == "holds":
            on_mean = not failed and not missing
        else:
            all_numbers = len(values) == len(recorded) and len(thresholds) == len(recorded) and values
            on_mean = bool(all_numbers) and RELATIONS[first.relation][0](mean, threshold_mean)
        out.append(
            SeedCheck(
                notebook,
                name,
                first.relation,
                {str(seed): c.value for seed, c in recorded.items()},
                {str(seed): c.threshold for seed, c in recorded.items()},
                mean,
                std,
                threshold_mean,
                bool(on_mean),
                failed,
                missing,
                bool(on_mean) and not failed and not missing,
            )
        )
    return out


def write_over_seeds(path: str | Path, checks: list[SeedCheck]) -> Path:
    """Write :func:`over_seeds`' checks to ``path`` atomically."""
    return _write_records(path, checks)


def seeds_markdown(checks: list[SeedCheck]) -> list[str]:
    """The checks over seeds as a Markdown table (for the top of a multi-seed ``results.md``)."""
    if not checks:
        return ["No checks were recorded.", ""]
    lines = [
        "## Checks over seeds",
        "",
        "Each check on the mean over the seeds (value mean ± std against the threshold's mean) and on every "
        "seed; it passes only when it holds on both.",
        "",
        "| notebook | check | mean ± std | relation | threshold (mean) | on the mean | failed on seeds | passed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        spread = "" if c.std is None else f" ± {c.std:.4g}"
        failed = ", ".join(map(str, c.failed_seeds + c.missing_seeds)) or "none"
        mean = "–" if c.mean is None else f"{_fmt(c.mean)}{spread}"  # a condition with no value to average
        threshold = "–" if c.threshold_mean is None else _fmt(c.threshold_mean)
        lines.append(
            f"| {c.notebook} | {c.name} | {mean} | {c.relation} | {threshold} | "
            f"{'yes' if c.passed_on_mean else 'no'} | {failed} | {'yes' if c.passed else '**no**'} |"
        )
    return lines + [""]
