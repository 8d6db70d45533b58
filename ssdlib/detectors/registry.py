"""The post-hoc detectors the baselines suite runs, each declared in its own file.

A detector's file calls :func:`register` with a :class:`Method`: the key it goes by in params
(``baselines.methods``, and its section ``baselines.<key>``), the display name of its result rows,
its section's class (a :class:`~ssdlib.params.MethodParams` holding the hyper-parameters with their
defaults and ranges, and ``grid``: the values ``baselines.tune`` tries), whether it fits on train
features, what it needs from the model, and how to build the detector. :func:`register` also hands
the section's class to the schema (``ssdlib.params.DETECTOR_SECTIONS``); the loader
(``ssdlib.profiles``) and ``ssdlib.evaluation.baselines`` read only this registry, and
:func:`methods` imports every module of ``ssdlib.detectors`` first, so a new detector is one new
file (and its test), with no edit elsewhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field

from ssdlib.detectors.base import Detector
from ssdlib.params import DETECTOR_SECTIONS, MethodParams

__all__ = ["Field", "Method", "MethodParams", "methods", "register"]


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
    DETECTOR_SECTIONS[method.key] = method.params  # the schema's table of baselines.<key> sections
    return method


def methods() -> dict[str, Method]:
    """Every registered detector by key, after importing each module of ``ssdlib.detectors``."""
    global _LOADED
    if not _LOADED:
        import ssdlib.detectors as package  # local: plugin discovery; the package's modules import this one

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
