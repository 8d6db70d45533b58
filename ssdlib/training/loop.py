"""One training loop for SimCLR, SupCon and SupCE (SSD's ``train.py`` + ``trainers.py``).

The whole training set lives as one tensor on the training device; each step indexes a batch and
augments it there with the batched augmentations (no data-loader workers). A set too large for
that (``ssdlib.data.held_or_streamed``) is given as a Dataset of equal-sized images instead: its
batches stream through a DataLoader (``num_workers``, pinned memory) and are augmented on the
device alike. SGD with momentum and
weight decay on every parameter (SSD's ``train.py``), warm-up then cosine per iteration
(:mod:`ssdlib.training.schedule`). Under torchrun the model is wrapped in DistributedDataParallel
(:mod:`ssdlib.training.distributed`). What every trainer shares (mixed precision, CPU generators,
deferred loss reads and the NaN stop, atomic checkpoints with every random state so that
``resume=True`` reaches the same weights) lives in :mod:`ssdlib.training.skeleton`.

On CUDA, ``Recipe.compile`` (on by default) runs the model and the SimCLR views' arithmetic under
``torch.compile``; if compilation fails, the run says why and goes on uncompiled from the same
random state. It changes results by float rounding only (``./run bench`` measures what it buys).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from ssdlib import progress as progress_report
from ssdlib.training import batches as reading
from ssdlib.training import checkpoint as ckpt
from ssdlib.training import distributed as dist
from ssdlib.training import methods as training_methods
from ssdlib.training.batches import Images
from ssdlib.training.monitor import classifier_accuracy, has_features, knn_accuracy
from ssdlib.training.objectives import Augment
from ssdlib.training.schedule import WarmupCosine
from ssdlib.training.skeleton import RunLog, TrainerSkeleton

# encoder.recipe: which of the released codes' quirks a run keeps. SSD's train.py scales the loss by
# T / 0.07 (losses.py, SupConLoss's base_temperature) and leaves the momentum at 0.8 after the warm-up;
# SupContrast's main_supcon.py (the KNN paper's SupCon encoders) has the same loss scale only.
NAMED_RECIPES = {
    "original": {"original_warmup_momentum": True, "original_loss_scale": True},
    "supcontrast": {"original_loss_scale": True},
    "corrected": {},
}


@dataclass(frozen=True)
class Recipe:
    """How to train: SSD's defaults (``train.py``), plus the switches that restore its two bugs.

    ``warmup_epochs`` are extra epochs before the ``epochs`` of cosine annealing, as in SSD.
    ``original_warmup_momentum`` / ``original_loss_scale`` reproduce SSD's momentum drop to 0.8
    and its loss scaled by T / 0.07 (SSD's ``train.py`` warm-up and ``losses.py`` ``SupConLoss``); both
    are off by default.
    The monitors (kNN accuracy with ``knn_k`` neighbours, 0: off; top-1 accuracy for SupCE) run on
    the test set every ``monitor_every`` epochs and after the last one (``monitor_every=0``: never).
    ``compile``: ``torch.compile`` the model and the SimCLR views on CUDA (ignored on the CPU).
    ``deterministic``: deterministic kernels only, and no ``torch.compile`` (whose generated kernels
    make no such promise), so that a GPU run repeats bit for bit (``skeleton.set_determinism``).
    ``section``: every other value of the params section the recipe was read from, so that a key the
    loop does not read still counts in a checkpoint's identity (a changed value trains a new model).
    """

    mode: str = "SimCLR"
    epochs: int = 500
    batch_size: int = 512
    lr: float = 0.5
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = 10
    temperature: float = 0.5
    amp: bool = True
    save_every: int = 50
    original_warmup_momentum: bool = False
    original_loss_scale: bool = False
    knn_k: int = 20
    monitor_every: int = 1
    seed: int = 0
    compile: bool = True
    deterministic: bool = False
    section: dict[str, Any] = field(default_factory=dict)

    # Changing these does not change the trained weights (compile, deterministic: beyond float
    # rounding), so a checkpoint stays valid.
    MONITORING = ("save_every", "knn_k", "monitor_every", "compile", "deterministic")
    # Section keys read into other fields: training_mode (mode, unless overridden), recipe (the
    # original_* switches) and supcon_epochs (SupCon's epochs, given by the caller).
    READ_INTO_FIELDS = ("training_mode", "recipe", "supcon_epochs")

    @classmethod
    def from_section(cls, section: Any, *, seed: int, scoring: tuple[str, ...] = (), **overrides: Any) -> Recipe:
        """A recipe from a params section (``P.encoder`` or ``P.classifier``): every field they share,
        and the section's other values in ``section`` (nothing is dropped silently) but ``scoring``, the
        keys that only score a trained model.

        The section's ``training_mode`` gives ``mode``; ``overrides`` replace any field.
        """
        names = {f.name for f in fields(cls)}
        dumped = section.model_dump(mode="json")
        values = {k: getattr(section, k) for k in dumped if k in names}
        skipped = set(cls.READ_INTO_FIELDS) | set(scoring)
        values["section"] = {k: v for k, v in dumped.items() if k not in names and k not in skipped}
        if "training_mode" in dumped:
            values["mode"] = section.training_mode
        values.update(NAMED_RECIPES.get(dumped.get("recipe"), {}))  # params: encoder.recipe
        return cls(**{**values, "seed": seed, **overrides})

    @property
    def total_epochs(self) -> int:
        return self.warmup_epochs + self.epochs

    def differences(self, other: dict[str, Any]) -> list[str]:
        """Result-relevant fields where ``other`` (a saved recipe) differs from this one."""
        mine = asdict(self)
        return [
            f"{k}: {other.get(k)!r} in the checkpoint, {v!r} now"
            for k, v in mine.items()
            if k not in self.MONITORING and other.get(k) != v
        ]


@dataclass
class History(RunLog):
    """Per-epoch loss (mean), lr and momentum (at the epoch's last step), monitor accuracies
    (NaN where not computed), seconds; per-step loss and lr; where the checkpoint was written."""

    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    momentum: list[float] = field(default_factory=list)
    knn_accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    checkpoint: str | None = None

    @staticmethod
    def last(values: list[float]) -> float:
        """The last computed (non-NaN) value of a monitor column, NaN if none."""
        return next((v for v in reversed(values) if not math.isnan(v)), math.nan)


class Trainer(TrainerSkeleton):
    """Trains ``model`` with ``recipe`` on ``device``; :meth:`fit` runs epochs, :meth:`step` one batch.

    ``name`` (default: the recipe's mode) names the run in the per-epoch progress lines that
    ``ssdlib reproduce`` shows (:mod:`ssdlib.progress`). ``num_workers``: DataLoader workers for a
    streamed training set (and the monitors' reading of streamed sets).
    """

    history_type = History

    def __init__(
        self,
        model: torch.nn.Module,
        recipe: Recipe,
        *,
        device: str | torch.device = "cpu",
        augment: Augment | None = None,
        log: Callable[[str], None] | None = None,
        progress: bool = True,
        name: str | None = None,
        num_workers: int = 0,
    ) -> None:
        seeds = {"shuffle": recipe.seed, "augment": recipe.seed + 1 + dist.rank()}  # same order on every rank
        super().__init__(
            model,
            device=device,
            amp=recipe.amp,
            seeds=seeds,
            log=log,
            progress=progress,
            name=name or recipe.mode,
            deterministic=recipe.deterministic,
        )
        self.recipe = recipe
        self.num_workers = num_workers
        self.net = dist.wrap(self.model, self.device)
        self.world = dist.world_size()
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
            **self.optimizer_options(),
        )
        self.method = training_methods.get(recipe.mode)
        if self.method.objective is None:
            raise ValueError(f"{recipe.mode} trains with a trainer of its own, not this loop (ssdlib.training.methods)")
        self.eager_objective = self.method.objective(recipe, augment or self.method.augment(False))
        self._compile_pending = self.cuda and recipe.compile and not recipe.deterministic  # compiled on step 1
        self.objective, self.step_net = (
            self._compiled(augment) if self._compile_pending else (self.eager_objective, self.net)
        )
        self.schedule: WarmupCosine | None = None
        self.bar: tqdm | None = None
        self.data: dict[str, Any] | None = None  # the training set's fingerprint, set by fit

    # -- one optimisation step -------------------------------------------------------------
    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One SGD step on this rank's batch; returns the loss averaged over ranks (read back at once)."""
        self._read([self._loss_step(x, y)], [self.position])
        return self.history.step_loss.pop()

    def _compiled(self, augment: Augment | None):
        """The objective with the method's views compiled (where it has a compiled variant and no
        augmentation was given) and the compiled net."""
        return self.method.objective(self.recipe, augment or self.method.augment(True)), torch.compile(self.net)

    def _loss_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One SGD step; the loss averaged over ranks stays on the device (no wait for the GPU)."""
        if self._compile_pending:
            return self._first_compiled_step(x, y)
        loss = self.objective(self.step_net, x, y, self.generators["augment"], self.autocast)
        self._backward(loss)
        return dist.mean_over_ranks(loss.detach())

    def _first_compiled_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Compile on the first step; if that fails, say why, restore the random state and go on eager."""
        state = self.generators["augment"].get_state()
        self._compile_pending = False  # from here on, steps run whatever self.objective / self.step_net are
        try:
            return self._loss_step(x, y)
        except Exception as err:  # noqa: BLE001 - any compiler failure; training errors recur eagerly
            self.log(
                f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                "training goes on without it"
            )
            self.generators["augment"].set_state(state)
            self.optimizer.zero_grad(set_to_none=True)
            self.objective, self.step_net = self.eager_objective, self.net
            return self._loss_step(x, y)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """One scheduled step of the epoch loop: the lr it used is logged, then the schedule moves on."""
        self.history.step_lr.append(self.optimizer.param_groups[0]["lr"])
        loss = self._loss_step(*batch)
        self.schedule.step()
        if self.bar is not None:
            self.bar.update()
        return loss

    def _record(self, row: list[float]) -> None:
        self.history.step_loss.append(row[0])
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{row[0]:.3f}", lr=f"{self.history.step_lr[-1]:.3g}", refresh=False)

    def _advice(self) -> str:
        return "Training diverged: lower the lr, use warm-up epochs, or turn amp off."

    # -- epochs ----------------------------------------------------------------------------
    def fit(
        self,
        train: Images,
        *,
        test: Images | None = None,
        checkpoint: str | Path | None = None,
        resume: bool = False,
        params: dict[str, Any] | None = None,
    ) -> History:
        """Train for ``recipe.total_epochs`` epochs on ``train`` = (images in [0,1], labels) tensors, or a
        Dataset of equal-sized images, streamed.

        ``test`` feeds the method's monitors (kNN accuracy, top-1 accuracy). Checkpoints go to
        ``checkpoint`` every ``save_every`` epochs and at the end, with ``params`` stored beside the
        weights. With ``resume=True`` an existing checkpoint of the same recipe is continued.
        """
        r = self.recipe
        if not isinstance(train, Dataset):
            train = train[0].to(self.device), train[1].to(self.device).long()
        n = reading.size(train)
        steps_per_epoch = len(dist.shard_batches(torch.arange(n), r.batch_size, self.world, self.rank))
        if steps_per_epoch == 0:
            raise ValueError(
                f"{n} training images are too few for batches of {r.batch_size} on {self.world} "
                "process(es): each process needs at least 2 images per batch"
            )
        self.schedule = WarmupCosine(
            self.optimizer,
            lr=r.lr,
            momentum=r.momentum,
            warmup_steps=r.warmup_epochs * steps_per_epoch,
            cosine_steps=r.epochs * steps_per_epoch,
            original_warmup_momentum=r.original_warmup_momentum,
        )
        checkpoint = Path(checkpoint) if checkpoint else None
        self.data = ckpt.data_fingerprint(train)
        if resume and checkpoint and checkpoint.is_file():
            self.load_state_dict(ckpt.load(checkpoint), source=checkpoint)
            self.last_good = checkpoint
            self.log(f"resuming {checkpoint} after epoch {self.epoch}/{r.total_epochs}")
        self.bar = progress_report.bar(
            total=r.total_epochs * steps_per_epoch,
            initial=self.epoch * steps_per_epoch,
            unit="step",
            desc=f"{r.mode} training",
            disable=not self.progress,
            mininterval=1.0,
        )
        report = progress_report.EpochReporter(self.name, r.total_epochs, self.epoch) if self.rank == 0 else None
        with self.bar, self.interruptible(r.total_epochs):
            for epoch in range(self.epoch, r.total_epochs):
                self._train_epoch(train, epoch, steps_per_epoch)
                self._monitor(train, test)
                if checkpoint and (self.epoch % r.save_every == 0 or self.epoch == r.total_epochs):
                    self.save(checkpoint, params)
                    self.log(f"epoch {self.epoch}: checkpoint written to {checkpoint}")
                if report:
                    h = self.history
                    report.epoch(
                        self.epoch,
                        {"loss": h.loss[-1], "kNN accuracy": h.knn_accuracy[-1], "test accuracy": h.test_accuracy[-1]},
                    )
        self.bar = None
        return self.history

    def _train_epoch(self, train: Images, epoch: int, steps_per_epoch: int) -> None:
        r, start = self.recipe, time.perf_counter()
        order = torch.randperm(reading.size(train), generator=self.generators["shuffle"])
        batches = dist.shard_batches(order, r.batch_size, self.world, self.rank)
        self.net.train()
        first = len(self.history.step_loss)
        self._run_steps(
            self._batches(train, batches),
            lambda i: f"epoch {epoch + 1}/{r.total_epochs}, step {i + 1}/{steps_per_epoch}",
        )
        losses = self.history.step_loss[first:]
        group = self.optimizer.param_groups[0]
        self.epoch = epoch + 1
        h = self.history
        h.epoch.append(self.epoch)
        h.loss.append(sum(losses) / len(losses))
        h.lr.append(h.step_lr[-1])
        h.momentum.append(group.get("momentum", 0.0))
        h.seconds.append(time.perf_counter() - start)

    def _batches(self, train: Images, index: list[torch.Tensor]):
        """This process's (images, labels) batches on the device (``ssdlib.training.batches``)."""
        read = reading.read(train, index, self.num_workers, pin_memory=self.cuda)
        return (reading.on_device(x, y, self.device) for x, y in read)

    def _monitor(self, train: Images, test: Images | None) -> None:
        """The method's monitors (kNN accuracy, top-1 accuracy) on rank 0, every ``monitor_every`` epochs
        and at the end."""
        r, h = self.recipe, self.history
        due = (
            test is not None
            and self.rank == 0
            and r.monitor_every
            and (self.epoch % r.monitor_every == 0 or self.epoch == r.total_epochs)
        )
        knn = top1 = math.nan
        if due and "knn" in self.method.monitors and r.knn_k and has_features(self.model):
            knn = knn_accuracy(self.model, train, test, k=r.knn_k, **self._reading())
        if due and "top1" in self.method.monitors:
            top1 = classifier_accuracy(self.model, test, **self._reading())
        h.knn_accuracy.append(knn)
        h.test_accuracy.append(top1)
        extra = "".join(
            f", {name} {v:.4f}" for name, v in (("kNN accuracy", knn), ("test accuracy", top1)) if not math.isnan(v)
        )
        self.log(
            f"epoch {self.epoch}/{r.total_epochs}: loss {h.loss[-1]:.4f}, lr {h.lr[-1]:.4g}, "
            f"momentum {h.momentum[-1]:.3g}{extra} ({h.seconds[-1]:.1f} s)"
        )

    def _reading(self) -> dict[str, Any]:
        """How the monitors read a set: the recipe's batch size, autocast, the workers of streamed sets."""
        return {"batch_size": self.recipe.batch_size, "autocast": self.autocast, "num_workers": self.num_workers}

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            **super().state_dict(params),
            "scheduler": self.schedule.state_dict() if self.schedule else {},
            "total_epochs": self.recipe.total_epochs,
            "finished": self.epoch == self.recipe.total_epochs,
            "recipe": asdict(self.recipe),
            "data": self.data,
        }

    def save(self, path: str | Path, params: dict[str, Any] | None = None) -> None:
        """Write a checkpoint atomically (rank 0), the history naming where it went."""
        self.history.checkpoint = str(path)
        super().save(path, params)

    def load_state_dict(self, state: dict[str, Any], source: str | Path = "checkpoint") -> None:
        """Continue from a checkpoint of the same recipe (monitoring fields may differ) and the same
        training data (:func:`resume_problems`)."""
        problems = resume_problems(state, self.recipe, self.data)
        if problems:
            raise ckpt.CheckpointError(f"{source} cannot be resumed here: {problems}")
        super().load_state_dict(state, source)
        if self.schedule and state["scheduler"]:
            self.schedule.load_state_dict(state["scheduler"])


def resume_problems(state: dict[str, Any], recipe: Recipe, data: dict[str, Any] | None) -> str:
    """Why a checkpoint may not be continued with ``recipe`` on the data of fingerprint ``data``
    (``ssdlib.training.checkpoint.data_fingerprint``); empty when it may."""
    problems = []
    if diff := recipe.differences(state["recipe"]):
        problems.append(f"it was trained with other settings ({'; '.join(diff)})")
    if data is not None and (diff := ckpt.data_differences(state.get("data"), data)):
        problems.append(f"it was trained on other data ({'; '.join(diff)})")
    if not problems:
        return ""
    return " and ".join(problems) + ". Resume with the same settings and data, or start a new run (another name)."


def train(
    model: torch.nn.Module,
    train_data: Images,
    recipe: Recipe,
    *,
    test: Images | None = None,
    device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None,
    resume: bool = False,
    params: dict[str, Any] | None = None,
    augment: Augment | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
    name: str | None = None,
    num_workers: int = 0,
) -> History:
    """Train ``model`` in place with ``recipe`` (see :class:`Trainer`); return the history."""
    trainer = Trainer(
        model, recipe, device=device, augment=augment, log=log, progress=progress, name=name, num_workers=num_workers
    )
    return trainer.fit(train_data, test=test, checkpoint=checkpoint, resume=resume, params=params)
