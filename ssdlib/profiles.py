"""Reading a profile: a params file (or a mapping) checked against the schema and the registries.

The schema (:mod:`ssdlib.params`) checks keys, types and ranges; what only the layers above it know is
checked here, before any output folder exists or any file is opened: dataset names (the data
registry), detector keys in ``baselines.methods`` (the detector registry), ``encoder.training_mode``
(the training-method registry) and set names that the
``checks`` and ``ssod`` sections refer to. Notebooks read their profile with :func:`for_notebook` (the
file plus an optional ``overrides`` mapping), the runner and the CLIs with :func:`load`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ssdlib.data.registry import UnknownDatasetError, check_names
from ssdlib.detectors.registry import methods
from ssdlib.log import to_console
from ssdlib.params import Params, ParamsError, invalid, parse
from ssdlib.project import PROJECT_ROOT
from ssdlib.training.methods import encoder_modes


def registry_problems(P: Params) -> list[str]:
    """Names in ``P`` that no registry holds: datasets, detectors and training methods."""
    problems = []
    try:
        check_names(P.data)
    except UnknownDatasetError as err:
        problems.append(f"data: {err}")
    known = methods()
    bad = [m for m in P.baselines.methods if m not in known]
    if bad:
        problems.append(
            f"baselines: methods: unknown detector(s) {', '.join(map(repr, bad))}; registered: {', '.join(known)}"
        )
    modes = encoder_modes()
    if P.encoder.training_mode not in modes:
        problems.append(
            f"encoder.training_mode: {P.encoder.training_mode!r} is not a training method SSD scores; "
            f"choose one of {', '.join(map(repr, modes))}"
        )
    return problems


def named_set_problems(raw: dict[str, Any], P: Params) -> list[str]:
    """Set names that a profile file writes under ``checks`` and ``ssod`` but does not load in
    ``data.ood_datasets``: refused on reading, not after a model has trained. Only what the file
    writes is checked (defaults name the paper profiles' sets; a notebook fills sections it does not
    use with them), and nothing when no OOD set is loaded (``ssdlib train``)."""
    if not P.data.ood_datasets:
        return []
    checks, ssod = raw.get("checks") or {}, raw.get("ssod") or {}
    named = {
        "checks.ssd_auroc_sets": checks.get("ssd_auroc_sets") or [],
        "checks.near_ood_set": [checks["near_ood_set"]] if checks.get("near_ood_set") else [],
        "checks.ssod_ood_set": [checks["ssod_ood_set"]] if "ssod_ood_set" in checks else [],
        "checks.ssod_failure_set": [checks["ssod_failure_set"]] if checks.get("ssod_failure_set") else [],
        "ssod.ablation_ood": [ssod["ablation_ood"]] if "ablation_ood" in ssod else [],
    }
    return [
        f"{key}: {', '.join(map(repr, missing))} not among data.ood_datasets ({', '.join(P.data.ood_datasets)}); "
        "add it there or name one of those"
        for key, names in named.items()
        if (missing := [n for n in names if n not in P.data.ood_datasets])
    ]


def validate(raw: dict[str, Any], source: str = "<params>") -> Params:
    """A params mapping checked against the schema and the registries; :class:`ParamsError` names each
    bad key."""
    methods()  # every detector's section is registered with the schema before it reads baselines
    P = parse(raw, source)
    problems = registry_problems(P)
    if problems:
        raise invalid(source, problems)
    return P


class _DuplicateKey(ValueError):
    """A mapping that gives one key twice (YAML keeps the last one silently)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping: a profile that sets ``epochs``
    twice means one of the two, and which one won would go unnoticed."""

    def construct_mapping(self, node, deep=False):
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, str) and key in lines:
                raise _DuplicateKey(f"key {key!r} given twice in one section (lines {lines[key]} and {line}); keep one")
            lines[key] = line
        return super().construct_mapping(node, deep)


def _read_yaml(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise ParamsError(f"{path}: a folder, not a params file; name a YAML file, e.g. params/offline.yaml")
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file; the profiles are in params/ (e.g. params/offline.yaml)")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader
    except UnicodeDecodeError as err:
        raise ParamsError(
            f"{path}: not UTF-8 text (byte {err.start} is {err.object[err.start : err.start + 1]!r}); "
            "save it as UTF-8, or check that it is the params file you meant"
        ) from None
    except _DuplicateKey as err:
        raise ParamsError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> Params:
    """Read and validate a YAML params file, with ``overrides`` merged over it (:func:`merged`)."""
    path = Path(path)
    if overrides is not None and not isinstance(overrides, dict):
        raise ParamsError(
            f"overrides must be a mapping of params keys, e.g. {{'encoder': {{'epochs': 2}}}}; got {overrides!r}"
        )
    raw = _read_yaml(path)
    if overrides and isinstance(raw, dict):
        raw = merged(raw, overrides)
    source = f"{path}" + (" with overrides" if overrides else "")
    P = validate(raw, source)
    problems = named_set_problems(raw, P)  # what the file itself writes (see there)
    if problems:
        raise invalid(source, problems)
    return P


def load_raw(path: str | Path) -> dict[str, Any]:
    """The validated file as plain data."""
    return load(path).model_dump(mode="json")


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, section by section: ``{"encoder": {"epochs": 2}}`` changes
    one key and keeps the section's others."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def find_file(params_file: str | Path) -> Path:
    """A params file named as a notebook or papermill call names it: an absolute path, or a path relative
    to the current directory (papermill run from the project), else to the project root (a notebook in
    JupyterLab runs in ``notebooks/``)."""
    path = Path(params_file).expanduser()
    if path.is_absolute() or path.is_file():
        return path
    in_project = PROJECT_ROOT / path
    if in_project.is_file():
        return in_project
    raise ParamsError(
        f"{params_file}: no such params file (looked in {Path.cwd()} and {PROJECT_ROOT}); "
        "the profiles are in params/, e.g. params_file = 'params/offline.yaml'"
    )


def for_notebook(params_file: str | Path, overrides: dict[str, Any] | None = None) -> Params:
    """The profile a notebook runs: ``params_file`` (see :func:`find_file`) with ``overrides`` merged
    over it (:func:`merged`), validated as a file is; ssdlib's messages are shown in the notebook's cells
    (:mod:`ssdlib.log`)."""
    to_console()
    return load(find_file(params_file), overrides)
