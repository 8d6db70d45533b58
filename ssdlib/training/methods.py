"""The training methods, each declared in its own file of :mod:`ssdlib.methods`.

This mirrors the detector registry (:mod:`ssdlib.detectors.registry`). A method's file calls
:func:`register` with a :class:`TrainingMethod`: its key (the ``training_mode`` of checkpoints, result
rows and ``encoder.training_mode``), the params section its recipe comes from, how to build a fresh
network, and, for methods that train in the shared loop (:mod:`ssdlib.training.loop`), its
objective, its default augmentation and its monitors. SSOD trains with its own trainer
(``ssdlib.ssod.train``) and declares no objective. :func:`methods` imports every module of
:mod:`ssdlib.methods` first, so a new method is one new file (and its test), with no edit elsewhere:
``ssdlib.experiment.model_for`` trains it once per output folder and ``ssdlib.plan`` lists it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

    from ssdlib.params import Params

Augment = Callable[..., "torch.Tensor"]
Objective = Callable[..., "torch.Tensor"]  # (model, x, y, generator, autocast) -> loss
Monitor = Literal["knn", "top1"]


@dataclass(frozen=True)
class TrainingMethod:
    """What the package knows about a way of training a network.

    - ``section``: the params section whose values are its recipe (``encoder``, ``classifier`` or
      ``ssod``); the whole section counts in a checkpoint's identity (``Recipe.from_section``).
    - ``build(P, num_classes, normalize)``: a freshly initialised network (the caller seeds torch).
    - ``objective(recipe, augment)``: the loss of one batch in the shared loop; None for a method with
      a trainer of its own (SSOD).
    - ``augment(compiled)``: its default views; ``compiled=True`` on CUDA, where the views' arithmetic
      may run under ``torch.compile``.
    - ``monitors``: what the loop reports on the test set: ``knn`` (kNN accuracy of the features),
      ``top1`` (classifier accuracy).
    - ``encoder_mode``: SSD may score its features, so it is a valid ``encoder.training_mode``.
    - ``ssd_name``: the name of SSD's result rows on its features (SSD, SSD+, ...).
    - ``identity(P)``: what else defines its network beyond its section (e.g. GODIN's similarity).
    - ``scoring_keys``: keys of its section that only score a trained network, left out of its identity.
    - ``release_key``: a key of its section that may name a released network standing in for training
      (SupCE: ``classifier.pretrained``; "none": trained here); ``released(P, num_classes, normalize)``
      builds that network. No method trained from that section counts the key in its identity.
    """

    key: str
    section: str
    build: Callable[[Params, int, torch.nn.Module | None], torch.nn.Module]
    objective: Callable[[Any, Augment], Objective] | None = None
    augment: Callable[[bool], Augment] | None = None
    monitors: tuple[Monitor, ...] = ("knn",)
    encoder_mode: bool = False
    ssd_name: str | None = None
    identity: Callable[[Params], dict[str, Any]] | None = None
    scoring_keys: tuple[str, ...] = ()
    release_key: str | None = None
    released: Callable[[Params, int, torch.nn.Module | None], torch.nn.Module] | None = None

    def uses_released(self, P: Params) -> bool:
        """Whether ``P`` names a released network for this method, which then trains nothing."""
        return self.release_key is not None and getattr(getattr(P, self.section), self.release_key) != "none"

    def trains_in_loop(self, P: Params) -> bool:
        """Whether the shared loop trains it on ``P``: it has an objective and ``P`` names no released network."""
        return self.objective is not None and not self.uses_released(P)


_METHODS: dict[str, TrainingMethod] = {}
_LOADED = False


def register(method: TrainingMethod) -> TrainingMethod:
    """Add ``method`` to the registry (a method's file does this once, at import)."""
    if method.key in _METHODS and _METHODS[method.key] != method:
        raise ValueError(f"a training method is already registered as {method.key!r}: choose another key")
    if (method.objective is None) != (method.augment is None):
        raise ValueError(f"training method {method.key!r}: give both objective and augment (shared loop) or neither")
    _METHODS[method.key] = method
    return method


def methods() -> dict[str, TrainingMethod]:
    """Every registered training method by key, after importing each module of ``ssdlib.methods``."""
    global _LOADED
    if not _LOADED:
        package = importlib.import_module("ssdlib.methods")
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
        _LOADED = True
    return dict(_METHODS)


def get(key: str) -> TrainingMethod:
    """The method registered as ``key``; a clear error naming the registered ones otherwise."""
    known = methods()
    if key not in known:
        raise ValueError(f"unknown training method {key!r}; registered: {', '.join(known)}")
    return known[key]


def loop_methods() -> list[str]:
    """The methods the shared loop can train (those with an objective)."""
    return [key for key, m in methods().items() if m.objective is not None]


def encoder_modes() -> list[str]:
    """The valid values of ``encoder.training_mode``: the methods whose features SSD may score."""
    return [key for key, m in methods().items() if m.encoder_mode]
