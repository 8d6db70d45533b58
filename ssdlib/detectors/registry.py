"""The post-hoc detectors the baselines suite runs, each declared in its own file.

A detector's file calls :func:`register` with a :class:`Method`: the key it goes by in params
(``baselines.methods``, and its section ``baselines.<key>``), the display name of its result rows,
its section's class (a :class:`MethodParams` holding the hyper-parameters with their defaults and
ranges, and ``grid``: the values ``baselines.tune`` tries), whether it fits on train features, what
it needs from the model, and how to build the detector. ``ssdlib.params`` and
``ssdlib.evaluation.baselines`` read only this registry, and :func:`methods` imports every module
of ``ssdlib.detectors`` first, so a new detector is one new file (and its test), with no edit
elsewhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ssdlib.detectors.base import Detector, FeatureSet

__all__ = ["Field", "Method", "MethodParams", "methods", "register"]


class MethodParams(BaseModel):
    """A detector's section of ``baselines``: its hyper-parameters and ``grid``, the values tried per
    hyper-parameter when ``baselines.tune`` is on. Subclasses declare the fields and the default grid,
    and override the hooks below where the method needs them."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="values tried per hyper-parameter when baselines.tune is on"
    )
    tune_criterion: ClassVar[str] = "auroc"  # or "mean ID score" (GODIN's own rule, no OOD data)
    NOT_IN_SETTING: ClassVar[tuple[str, ...]] = ()  # hyper-parameters that do not change the scores

    @model_validator(mode="after")
    def _grid_names_hyper_parameters(self) -> MethodParams:
        own = [name for name in type(self).model_fields if name != "grid"]
        for name, values in self.grid.items():
            if name not in own:
                raise ValueError(
                    f"grid.{name}: not a hyper-parameter of this method; it has {', '.join(own) or 'none'}"
                )
            if not values:
                raise ValueError(f"grid.{name} is empty: give at least one value")
            for value in values:  # each grid value must be a valid value of its field
                type(self).model_validate({**self.model_dump(exclude={"grid"}), name: value, "grid": {}})
        return self

    def hyper_parameters(self) -> dict[str, Any]:
        """The values the detector is built with (everything but the grid)."""
        return self.model_dump(exclude={"grid"})

    def must_tune(self) -> tuple[str, ...]:
        """Hyper-parameters chosen on validation data even when ``baselines.tune`` is off."""
        return ()

    def fit_split(self) -> str:
        """The ID split the detector is fitted on: ``train``, or ``val`` where the method says so."""
        return "train"

    def applies(self, fit: FeatureSet) -> bool:
        """Whether these values make sense for the features it is fitted on (a grid point may not)."""
        return True


@dataclass(frozen=True)
class Method:
    """What the baselines suite knows about a detector.

    ``build(section, model)`` returns the detector; ``model`` is the network being scored (for
    methods that read its classifier head). ``fits``: False when nothing is estimated from the
    train features (the suite then skips extracting them). ``needs`` says what the method reads:
    ``"features"``, ``"logits"``, ``"classifier head"`` or ``"input gradients"``.
    """

    key: str
    name: str
    params: type[MethodParams]
    build: Callable[[Any, torch.nn.Module | None], Detector]
    fits: bool = True
    needs: str = "features"


_METHODS: dict[str, Method] = {}
_LOADED = False


def register(method: Method) -> Method:
    """Add ``method`` to the registry (a detector's file does this once, at import)."""
    if method.key in _METHODS and _METHODS[method.key] != method:
        raise ValueError(f"a detector is already registered as {method.key!r}: choose another key")
    if not method.key.isidentifier():
        raise ValueError(f"detector key {method.key!r} must be a plain name (it is a params key)")
    _METHODS[method.key] = method
    return method


def methods() -> dict[str, Method]:
    """Every registered detector by key, after importing each module of ``ssdlib.detectors``."""
    global _LOADED
    if not _LOADED:
        import ssdlib.detectors as package

        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
        _LOADED = True
    return dict(_METHODS)


def linear_head(model: torch.nn.Module | None, key: str):
    """Weight [C, D] and bias [C] of the model's last layer ``model.head`` (ReAct and ViM read them)."""
    if model is None:
        raise ValueError(f"{key} needs the classifier (model=...) for its last layer W z + b")
    head = getattr(model, "head", None)
    if not isinstance(head, torch.nn.Linear) or head.bias is None:
        raise TypeError(
            f"{type(model).__name__} has no linear classifier .head with a bias: {key} needs the last "
            "layer W z + b (use the SupCE classifier, ssdlib.experiment.classifier_for)"
        )
    return head.weight.detach().cpu().double().numpy(), head.bias.detach().cpu().double().numpy()
