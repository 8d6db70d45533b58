"""The notebooks' sanity checks, stated by name, recorded in ``checks.json``, and able to fail.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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

    def conclude(self) -> list[Check]:
        """Record this notebook's checks in ``checks.json`` (replacing its earlier ones), print them,
        and raise an AssertionError naming every failed one (when enforced); returns the checks."""
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
        return list(self.checks)


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(checks, key=lambda c: c.notebook)  # stable: a notebook's checks keep their order
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps([asdict(c) for c in ordered], indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


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
