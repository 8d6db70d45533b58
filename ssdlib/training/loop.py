"""One training loop for SimCLR, SupCon and SupCE (SSD's ``train.py`` + ``trainers.py``).

The whole training set lives as one tensor on the training device; each step indexes a batch and
augments it there with the batched augmentations (no data-loader workers). SGD with momentum and
weight decay on every parameter (SSD's ``train.py``), warm-up then cosine per iteration
(:mod:`ssdlib.training.schedule`), mixed precision on CUDA (bf16 where supported, else fp16 with
a GradScaler) and fp32 on CPU. Checkpoints are atomic and hold every random state, so a killed run
resumed with ``resume=True`` reaches the same weights as an uninterrupted one. A NaN or inf loss
stops the run (:class:`NonFiniteLossError`) before the last good checkpoint can be overwritten.
Under torchrun the model is wrapped in DistributedDataParallel (:mod:`ssdlib.training.distributed`).

On a GPU the loop does not wait for the device between steps: losses stay on the GPU and are read
(and checked for NaN) every ``LOSS_READ_EVERY`` steps and at the end of each epoch, so a NaN is
reported for the step where it appeared, before any checkpoint is written. The augmentation
generator lives on the CPU, so a seed gives the same views on every device. CUDA also gets
channels-last weights, cuDNN's autotuner, the fused SGD kernel and (``Recipe.compile``, on by
default) ``torch.compile`` of the model and of the SimCLR views' arithmetic; if compilation fails,
the run says why and goes on uncompiled from the same random state. None of these change results
beyond float rounding (``./run bench`` measures what they buy).
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from tqdm.auto import tqdm

from ssdlib import progress as progress_report
from ssdlib.training import checkpoint as ckpt
from ssdlib.training import distributed as dist
from ssdlib.training.monitor import classifier_accuracy, has_features, knn_accuracy
from ssdlib.training.objectives import Augment, objective_for
from ssdlib.training.schedule import WarmupCosine

LOSS_READ_EVERY = 50  # steps between reads of the loss on a GPU (every step on the CPU, where it is free)

class NonFiniteLossError(FloatingPointError):
    """The loss (or the weights) became NaN or inf; the message names where and the last good checkpoint."""


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

    # Changing these does not change the trained weights (compile: beyond float rounding), so a
    # checkpoint stays valid.
    MONITORING = ("save_every", "knn_k", "monitor_every", "compile")

    @classmethod
    def from_section(cls, section: Any, *, seed: int, **overrides: Any) -> "Recipe":
        """A recipe from a params section (``P.encoder`` or ``P.classifier``): every field they share.

        The section's ``training_mode`` gives ``mode``; ``overrides`` replace any field.
        """
        values = {f.name: getattr(section, f.name) for f in fields(cls) if hasattr(section, f.name)}
        if hasattr(section, "training_mode"):
            values["mode"] = section.training_mode
        return cls(**{**values, "seed": seed, **overrides})

    @property
    def total_epochs(self) -> int:
        return self.warmup_epochs + self.epochs

    def differences(self, other: dict[str, Any]) -> list[str]:
        """Result-relevant fields where ``other`` (a saved recipe) differs from this one."""
        mine = asdict(self)
        return [f"{k}: {other.get(k)!r} in the checkpoint, {v!r} now" for k, v in mine.items()
                if k not in self.MONITORING and other.get(k) != v]


Log = TypeVar("Log", bound="RunLog")


@dataclass
class RunLog:
    """The columns every training log keeps (epoch, seconds per epoch, lr per step) and the
    log's round trip through a checkpoint, shared by :class:`History` and SSOD's history."""

    epoch: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[Log], data: dict[str, Any]) -> Log:
        """Keys this log does not have are dropped; columns ``data`` lacks start empty."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


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


def autocast_for(device: torch.device, amp: bool) -> tuple[Callable, torch.dtype | None]:
    """Mixed precision on CUDA only: bf16 where the GPU supports it, else fp16 (needs a GradScaler)."""
    if not (amp and device.type == "cuda"):
        return nullcontext, None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return partial(torch.autocast, "cuda", dtype=dtype), dtype


class Trainer:
    """Trains ``model`` with ``recipe`` on ``device``; :meth:`fit` runs epochs, :meth:`step` one batch.

    ``name`` (default: the recipe's mode) names the run in the per-epoch progress lines that
    ``ssdlib reproduce`` shows (:mod:`ssdlib.progress`).
    """

    def __init__(self, model: torch.nn.Module, recipe: Recipe, *, device: str | torch.device = "cpu",
                 augment: Augment | None = None, log: Callable[[str], None] = print, progress: bool = True,
                 name: str | None = None) -> None:
        self.device = torch.device(device)
        self.recipe = recipe
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = True
        self.model = model.to(self.device, memory_format=torch.channels_last if cuda else torch.preserve_format)
        self.net = dist.wrap(self.model, self.device)
        self.rank, self.world = dist.rank(), dist.world_size()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                         weight_decay=recipe.weight_decay, fused=True if cuda else None)
        self.read_loss_every = LOSS_READ_EVERY if cuda else 1
        self.eager_objective = objective_for(recipe.mode, recipe.temperature, recipe.original_loss_scale, augment)
        self._compile_pending = cuda and recipe.compile  # compiled on the first step, or abandoned there
        self.objective, self.step_net = (self._compiled(augment) if self._compile_pending
                                         else (self.eager_objective, self.net))
        self.autocast, amp_dtype = autocast_for(self.device, recipe.amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        self.generators = {
            "shuffle": torch.Generator().manual_seed(recipe.seed),  # same order on every rank
            "augment": torch.Generator().manual_seed(recipe.seed + 1 + self.rank),  # CPU: same views anywhere
        }
        self.schedule: WarmupCosine | None = None
        self.history = History()
        self.epoch = 0  # completed epochs, warm-up included
        self.position = "before the first step"
        self.last_good: Path | None = None
        self.log = log if self.rank == 0 else (lambda _msg: None)
        self.progress = progress and self.rank == 0
        self.name = name or recipe.mode

    # -- one optimisation step -------------------------------------------------------------
    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One SGD step on this rank's batch; returns the loss averaged over ranks (read back at once)."""
        loss = self._step(x, y)
        self._read_losses([loss], [self.position])
        return self.history.step_loss.pop()

    def _compiled(self, augment: Augment | None):
        """The objective with the SimCLR views compiled (when SSD's augmentation is used) and the compiled net."""
        from ssdlib import augment as aug

        r = self.recipe
        if augment is None and r.mode != "SupCE":
            augment = partial(aug.simclr_augment, views=torch.compile(aug.simclr_views, dynamic=False))
        return objective_for(r.mode, r.temperature, r.original_loss_scale, augment), torch.compile(self.net)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One SGD step; the loss averaged over ranks stays on the device (no wait for the GPU)."""
        if self._compile_pending:
            return self._first_compiled_step(x, y)
        loss = self.objective(self.step_net, x, y, self.generators["augment"], self.autocast)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return dist.mean_over_ranks(loss.detach())

    def _first_compiled_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Compile on the first step; if that fails, say why, restore the random state and go on eager."""
        state = self.generators["augment"].get_state()
        self._compile_pending = False  # from here on, _step runs whatever self.objective / self.step_net are
        try:
            return self._step(x, y)
        except Exception as err:  # noqa: BLE001 - any compiler failure; training errors recur eagerly
            self.log(f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                     "training goes on without it")
            self.generators["augment"].set_state(state)
            self.optimizer.zero_grad(set_to_none=True)
            self.objective, self.step_net = self.eager_objective, self.net
            return self._step(x, y)

    def _read_losses(self, losses: list[torch.Tensor], positions: list[str]) -> None:
        """Read pending losses (one transfer), stop at the first non-finite one, log the rest."""
        values = torch.stack(losses).float().tolist()
        for value, position in zip(values, positions):
            if not math.isfinite(value):
                raise NonFiniteLossError(f"the loss is {value} at {position}. {self._advice()}")
        self.history.step_loss.extend(values)

    def _advice(self) -> str:
        where = (f"The last good checkpoint is {self.last_good} (it was not overwritten; resume=True continues "
                 "from it)" if self.last_good else "No checkpoint was written yet")
        return f"Training diverged: lower the lr, use warm-up epochs, or turn amp off. {where}."

    # -- epochs ----------------------------------------------------------------------------
    def fit(self, train: tuple[torch.Tensor, torch.Tensor], *, test: tuple[torch.Tensor, torch.Tensor] | None = None,
            checkpoint: str | Path | None = None, resume: bool = False,
            params: dict[str, Any] | None = None) -> History:
        """Train for ``recipe.total_epochs`` epochs on the tensors ``train`` = (images in [0,1], labels).

        ``test`` feeds the monitors (kNN accuracy; top-1 accuracy for SupCE). Checkpoints go to
        ``checkpoint`` every ``save_every`` epochs and at the end, with ``params`` stored beside the
        weights. With ``resume=True`` an existing checkpoint of the same recipe is continued.
        """
        r = self.recipe
        x, y = train[0].to(self.device), train[1].to(self.device).long()
        steps_per_epoch = len(dist.shard_batches(torch.arange(len(x)), r.batch_size, self.world, self.rank))
        if steps_per_epoch == 0:
            raise ValueError(f"{len(x)} training images are too few for batches of {r.batch_size} on {self.world} "
                             "process(es): each process needs at least 2 images per batch")
        self.schedule = WarmupCosine(self.optimizer, lr=r.lr, momentum=r.momentum,
                                     warmup_steps=r.warmup_epochs * steps_per_epoch,
                                     cosine_steps=r.epochs * steps_per_epoch,
                                     original_warmup_momentum=r.original_warmup_momentum)
        checkpoint = Path(checkpoint) if checkpoint else None
        if resume and checkpoint and checkpoint.is_file():
            self.load_state_dict(ckpt.load(checkpoint), source=checkpoint)
            self.last_good = checkpoint
            self.log(f"resuming {checkpoint} after epoch {self.epoch}/{r.total_epochs}")
        bar = tqdm(total=r.total_epochs * steps_per_epoch, initial=self.epoch * steps_per_epoch, unit="step",
                   desc=f"{r.mode} training", disable=not self.progress, mininterval=1.0)
        report = progress_report.EpochReporter(self.name, r.total_epochs, self.epoch) if self.rank == 0 else None
        with bar:
            for epoch in range(self.epoch, r.total_epochs):
                self._train_epoch(x, y, epoch, steps_per_epoch, bar)
                self._monitor((x, y), test)
                if checkpoint and (self.epoch % r.save_every == 0 or self.epoch == r.total_epochs):
                    self.save(checkpoint, params)
                    self.log(f"epoch {self.epoch}: checkpoint written to {checkpoint}")
                if report:
                    h = self.history
                    report.epoch(self.epoch, {"loss": h.loss[-1], "kNN accuracy": h.knn_accuracy[-1],
                                              "test accuracy": h.test_accuracy[-1]})
        return self.history

    def _train_epoch(self, x: torch.Tensor, y: torch.Tensor, epoch: int, steps_per_epoch: int, bar) -> None:
        r, start = self.recipe, time.perf_counter()
        order = torch.randperm(len(x), generator=self.generators["shuffle"])
        batches = dist.shard_batches(order, r.batch_size, self.world, self.rank)
        self.net.train()
        first = len(self.history.step_loss)
        pending, positions = [], []
        for i, idx in enumerate(batches):
            self.position = f"epoch {epoch + 1}/{r.total_epochs}, step {i + 1}/{steps_per_epoch}"
            idx = idx.to(self.device)
            lr = self.optimizer.param_groups[0]["lr"]
            pending.append(self._step(x[idx], y[idx]))
            positions.append(self.position)
            self.history.step_lr.append(lr)
            self.schedule.step()
            if len(pending) == self.read_loss_every or i + 1 == len(batches):
                self._read_losses(pending, positions)
                pending, positions = [], []
                bar.set_postfix(epoch=epoch + 1, loss=f"{self.history.step_loss[-1]:.3f}", lr=f"{lr:.3g}",
                                refresh=False)
            bar.update()
        losses = self.history.step_loss[first:]
        group = self.optimizer.param_groups[0]
        self.epoch = epoch + 1
        h = self.history
        h.epoch.append(self.epoch)
        h.loss.append(sum(losses) / len(losses))
        h.lr.append(self.history.step_lr[-1])
        h.momentum.append(group.get("momentum", 0.0))
        h.seconds.append(time.perf_counter() - start)

    def _monitor(self, train: tuple[torch.Tensor, torch.Tensor], test) -> None:
        """kNN accuracy (and top-1 for SupCE) on rank 0, every ``monitor_every`` epochs and at the end."""
        r, h = self.recipe, self.history
        due = test is not None and self.rank == 0 and r.monitor_every and (
            self.epoch % r.monitor_every == 0 or self.epoch == r.total_epochs)
        knn = top1 = math.nan
        if due and r.knn_k and has_features(self.model):
            knn = knn_accuracy(self.model, train, test, k=r.knn_k, batch_size=r.batch_size, autocast=self.autocast)
        if due and r.mode == "SupCE":
            top1 = classifier_accuracy(self.model, test, batch_size=r.batch_size, autocast=self.autocast)
        h.knn_accuracy.append(knn)
        h.test_accuracy.append(top1)
        extra = "".join(f", {name} {v:.4f}" for name, v in (("kNN accuracy", knn), ("test accuracy", top1))
                        if not math.isnan(v))
        self.log(f"epoch {self.epoch}/{r.total_epochs}: loss {h.loss[-1]:.4f}, lr {h.lr[-1]:.4g}, "
                 f"momentum {h.momentum[-1]:.3g}{extra} ({h.seconds[-1]:.1f} s)")

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "format": ckpt.FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict() if self.schedule else {},
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "total_epochs": self.recipe.total_epochs,
            "finished": self.epoch == self.recipe.total_epochs,
            "recipe": asdict(self.recipe),
            "params": params or {},
            "history": self.history.to_dict(),
            "rng": dist.gather_objects(ckpt.rng_state(self.generators)),  # one entry per rank
        }

    def save(self, path: str | Path, params: dict[str, Any] | None = None) -> None:
        """Write a checkpoint atomically (rank 0); refuse to replace a good one with non-finite weights."""
        bad = [name for name, p in self.model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise NonFiniteLossError(f"weights {bad[:3]} became non-finite by the end of epoch {self.epoch}. "
                                     f"{self._advice()}")
        state = self.state_dict(params)  # collective under DDP: every rank takes part
        path = Path(path)
        if self.rank == 0:
            self.history.checkpoint = state["history"]["checkpoint"] = str(path)
            ckpt.save_atomic(state, path)
        self.last_good = path

    def load_state_dict(self, state: dict[str, Any], source: str | Path = "checkpoint") -> None:
        """Continue from a checkpoint of the same recipe (monitoring fields may differ)."""
        diff = self.recipe.differences(state["recipe"])
        if diff:
            raise ckpt.CheckpointError(f"{source} was trained with other settings ({'; '.join(diff)}). "
                                       "Resume with the same settings, or start afresh without resume.")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule and state["scheduler"]:
            self.schedule.load_state_dict(state["scheduler"])
        if state["scaler"] and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.history = History.from_dict(state["history"])
        rngs = state["rng"]
        try:
            ckpt.set_rng_state(rngs[self.rank], self.generators)
        except (IndexError, RuntimeError, KeyError) as err:
            self.log(f"warning: random state of {source} not restored ({err}); the run continues, "
                     "but not bit-identically (different device or number of processes)")


def train(model: torch.nn.Module, train_data: tuple[torch.Tensor, torch.Tensor], recipe: Recipe, *,
          test: tuple[torch.Tensor, torch.Tensor] | None = None, device: str | torch.device = "cpu",
          checkpoint: str | Path | None = None, resume: bool = False, params: dict[str, Any] | None = None,
          augment: Augment | None = None, log: Callable[[str], None] = print, progress: bool = True,
          name: str | None = None) -> History:
    """Train ``model`` in place with ``recipe`` (see :class:`Trainer`); return the history."""
    trainer = Trainer(model, recipe, device=device, augment=augment, log=log, progress=progress, name=name)
    return trainer.fit(train_data, test=test, checkpoint=checkpoint, resume=resume, params=params)
