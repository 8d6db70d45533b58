"""The one parameter schema of ssdlib.

Every params file (``params/*.yaml``) and every notebook's ``parameters`` cell is checked here
before any work starts. Unknown keys, wrong types and out-of-range values stop at once with a
message that names the file, the key and what is allowed.

Sections: ``data`` (datasets), ``encoder`` (SSD encoder training), ``classifier`` (the supervised
CE model of the same size used by MSP and the post-hoc baselines), ``ssd`` (SSD / SSD+ / SSD_k
evaluation), ``ssod`` (SSOD joint training), ``baselines`` (post-hoc detectors) and ``checks``
(the sanity thresholds each notebook asserts at its end).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Arch = Literal["resnet18", "resnet34", "resnet50", "resnet101"]


class ParamsError(ValueError):
    """A params file or notebook parameter is invalid; the message says which key and how to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OfflineBenchmark(_Section):
    """Sizes of the generated offline benchmark (see ``ssdlib.data.offline``)."""

    seed: int = 0
    train_per_class: int = Field(200, ge=1, le=100_000)
    test_per_class: int = Field(100, ge=1, le=100_000)
    ood_per_set: int = Field(500, ge=1, le=100_000)


class DataParams(_Section):
    """Which sets to load and how. Real sets are read from ``root`` or $SSDLIB_DATA."""

    id_dataset: str = "offline"
    ood_datasets: list[str] = Field(default_factory=list)
    root: str | None = None
    download: bool = False
    image_size: int = Field(32, ge=8, le=1024)
    normalize: bool = True
    batch_size: int = Field(256, ge=1)
    num_workers: int = Field(0, ge=0)
    offline: OfflineBenchmark = OfflineBenchmark()


class EncoderParams(_Section):
    """SSD encoder training (SimCLR / SupCon / SupCE), defaults from the SSD code."""

    arch: Arch = "resnet50"
    width: int = Field(64, ge=4, le=256, description="channels of the first stage; 64 is the standard ResNet")
    training_mode: Literal["SimCLR", "SupCon", "SupCE"] = "SimCLR"
    epochs: int = Field(500, ge=1)
    batch_size: int = Field(512, ge=2)
    lr: float = Field(0.5, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: int = Field(10, ge=0)
    temperature: float = Field(0.5, gt=0)
    amp: bool = True
    save_every: int = Field(50, ge=1)


class ClassifierParams(_Section):
    """The supervised CE model of the same size: MSP and post-hoc baselines score it."""

    epochs: int = Field(100, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)


class SSDParams(_Section):
    """SSD evaluation: the cluster sweep and the SSD_k grid."""

    clusters: list[int] = Field(default_factory=lambda: [1], min_length=1)
    k: list[int] = Field(default_factory=lambda: [1, 5])
    copies: list[int] = Field(default_factory=lambda: [10])


class SSODParams(_Section):
    """SSOD joint training (Pei et al.); see docs in ``ssdlib.ssod``."""

    alpha: float = Field(1.5, ge=0)
    gamma: float = Field(0.95, gt=0.5, lt=1)
    balance: Literal["LW", "DR", "LWB"] = "LWB"
    epochs: int = Field(90, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(1e-4, gt=0)


class BaselineParams(_Section):
    """Post-hoc detectors and their hyper-parameters (defaults from the reference)."""

    methods: list[str] = Field(default_factory=list)


class CheckParams(_Section):
    """Thresholds the notebooks assert on their own results, so a broken pipeline fails loudly."""

    min_ssd_auroc: float = Field(0.9, ge=0, le=1)
    ssd_auroc_sets: list[str] = Field(default_factory=list)


class Params(_Section):
    """A whole params file."""

    profile: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data: DataParams = DataParams()
    encoder: EncoderParams = EncoderParams()
    classifier: ClassifierParams = ClassifierParams()
    ssd: SSDParams = SSDParams()
    ssod: SSODParams = SSODParams()
    baselines: BaselineParams = BaselineParams()
    checks: CheckParams = CheckParams()


SECTIONS: dict[str, type[BaseModel]] = {
    name: field.annotation for name, field in Params.model_fields.items() if isinstance(field.annotation, type)
}


def _allowed(model: type[BaseModel], loc: tuple) -> list[str]:
    """Keys allowed at the parent of ``loc`` (for the "unknown key" message)."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        model = model.model_fields[part].annotation
    return sorted(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _explain(err: ValidationError, model: type[BaseModel], source: str) -> ParamsError:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed(model, e["loc"]))
            lines.append(f"  {key}: unknown key; allowed here: {allowed}")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    return ParamsError(f"{source}: invalid parameters\n" + "\n".join(lines))


def validate(raw: dict[str, Any], source: str = "<params>") -> Params:
    """Check a params mapping against the schema; raise :class:`ParamsError` naming each bad key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of keys to values, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise _explain(err, Params, source) from None


def load(path: str | Path) -> Params:
    """Read and validate a YAML params file."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file; the profiles are in params/ (e.g. params/offline.yaml)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return validate(raw, str(path))


def load_raw(path: str | Path) -> dict[str, Any]:
    """The validated file as plain data, as papermill injects it into the notebooks."""
    return load(path).model_dump(mode="json")


def from_notebook(**values: Any) -> Params:
    """Validate the sections a notebook's ``parameters`` cell defines (others take schema defaults)."""
    values = {k: v for k, v in values.items() if k in Params.model_fields}
    return validate(values, "notebook parameters")
