"""SSOD joint training (Pei et al. 2023, Sec. 5.1 and App. B), with its open choices made explicit.

Each step: a RandomResizedCrop of every image (the paper's only augmentation; drawn here on the
device from images held in memory, or already drawn from the full decoded image by the loader's
workers at ImageNet scale, :mod:`ssdlib.data.preprocessing`), the feature map,
the sampler's location labels from the classifier's own map (no gradient), then Eq. 9 with the
chosen balance scheme. AdamW over all parameters (backbone and both heads, end to end); the lr
starts at ``lr`` and is multiplied by ``lr_decay`` every ``lr_step`` epochs (paper: 1e-4, halved
every 30 epochs). bf16 autocast on CUDA when ``amp`` is on, fp32 on CPU.

Warm-up: a randomly initialised classifier is confident nowhere, so the sampler finds almost no
ID location and its few OOD picks are noise. The first ``warmup_epochs`` epochs therefore train
CE only (the sampler still runs, so its counts are logged); the OOD term switches on afterwards.
The paper's ImageNet runs start from torchvision's pretrained ResNet-50 instead (``pretrained``),
where no warm-up is needed. Warm-up epochs do not depend on alpha or the balance scheme, so
runs that differ only in those can start from one saved warm-up state
(:mod:`ssdlib.ssod.runs`); the random state is saved with it, so this changes no weight.

Checkpoint selection (the paper keeps "the checkpoints yielding the best FPR95", App. B, i.e.
it selects on the test OOD data): ``select="val_accuracy"`` (default) keeps the epoch with the
best accuracy on ``val_fraction`` of the training set held out, ``"last"`` the last epoch, and
``"test_fpr95"`` the paper's choice, for which the caller passes the selection function. Only
epochs after the warm-up compete (before it the OOD head is untrained).

SSOD (w/) (``supcon_weight`` > 0) crops every image twice and adds the weighted SupCon loss of the
two crops' projections (:func:`ssdlib.ssod.loss.with_supcon`), in the warm-up too; the second crop
is drawn after the first, so SSOD (w/o) sees the same crops as before it existed.

Logged per step: CE, CE_ood (NaN during warm-up), the numbers of ID and OOD locations the
sampler picked, SupCon (SSOD (w/) only, else NaN) and the lr; per epoch: mean losses, validation
accuracy, the selection metric.
What SSOD shares with the encoder trainer (device set-up, mixed precision with a GradScaler for
fp16, CPU generators, step logs read back every ``LOSS_READ_EVERY`` steps on a GPU, the NaN stop,
atomic checkpoints with every random state) is :class:`ssdlib.training.skeleton.TrainerSkeleton`.
The sampler reads a float32 class map even under bf16 autocast, so no location's label flips at
gamma by rounding.

Under torchrun every process takes its slice of each global batch (the same shuffled order on all
of them) and its slice of the global batch's crop boxes; the heads' outputs are gathered, so the
loss, the sampler's balance and DR's random picks are those of the whole batch, and gradients are
averaged over the processes (:mod:`ssdlib.training.distributed`): a step equals one process's step
on the whole batch, batch-norm statistics aside (per process, as in the encoder trainer).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import Subset

from ssdlib import progress as progress_report
from ssdlib.ssod.loss import ssod_loss, with_supcon
from ssdlib.ssod.model import SSODNet
from ssdlib.ssod.sampler import ID, OOD, sample
from ssdlib.training import batches
from ssdlib.training import distributed as dist
from ssdlib.training.augment import resized_crop, sample_crop_boxes, to_device
from ssdlib.training.batches import Images
from ssdlib.training.monitor import classifier_accuracy
from ssdlib.training.skeleton import RunLog, TrainerSkeleton

CROP_RATIO = (3 / 4, 4 / 3)  # torchvision's RandomResizedCrop default aspect range


@dataclass
class SSODHistory(RunLog):
    """Per-step losses and sampler counts, per-epoch summaries, and the selected epoch."""

    step_epoch: list[int] = field(default_factory=list)
    step_ce: list[float] = field(default_factory=list)
    step_ce_ood: list[float] = field(default_factory=list)
    step_n_id: list[int] = field(default_factory=list)
    step_n_ood: list[int] = field(default_factory=list)
    step_supcon: list[float] = field(default_factory=list)  # SSOD (w/) only; NaN otherwise
    locations: int = 0  # H * W of the feature map: what the counts are out of, per image
    ce: list[float] = field(default_factory=list)
    ce_ood: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    selection: list[float] = field(default_factory=list)
    best_epoch: int | None = None

    def steps(self):
        """Per-step log as a pandas DataFrame (columns lr, epoch, ce, ce_ood, n_id, n_ood)."""
        return pd.DataFrame({k[len("step_") :]: v for k, v in asdict(self).items() if k.startswith("step_")})


def lr_at(epoch: int, lr: float, lr_step: int, lr_decay: float) -> float:
    """Step schedule: ``lr * lr_decay ** (epoch // lr_step)`` (paper: halved every 30 epochs)."""
    return lr * lr_decay ** (epoch // lr_step)


def split_validation(data: Images, fraction: float, seed: int) -> tuple[Images, Images | None]:
    """Hold out ``fraction`` of the training set (a seeded random subset) for checkpoint selection."""
    n = batches.size(data)
    n_val = int(round(n * fraction))
    if n_val == 0:
        return data, None
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    if isinstance(data, tuple):
        return (data[0][train_idx], data[1][train_idx]), (data[0][val_idx], data[1][val_idx])
    return Subset(data, train_idx.tolist()), Subset(data, val_idx.tolist())


def _batches(data: Images, batch_size: int, shuffle: torch.Generator, num_workers: int, world: int, rank: int):
    """The full (images, labels) batches of a shuffled order of tensors or of a Dataset
    (``ssdlib.training.batches``; the incomplete last one dropped), of which process ``rank`` of
    ``world`` takes its slice."""
    n = batches.size(data)
    order = torch.randperm(n, generator=shuffle)
    index = dist.shard_batches(order[: n - n % batch_size], batch_size, world, rank)
    return batches.read(data, index, num_workers, pin_memory=torch.cuda.is_available(), generator=shuffle)


@dataclass(frozen=True)
class SSODRecipe:
    """How SSOD trains: the training fields of an ``SSODParams`` section (their defaults and
    meaning live there, ``ssdlib.params``); the model's fields (backbone, width, ...) are not here."""

    alpha: float
    gamma: float
    balance: str
    lw_factor: float
    warmup_epochs: int
    epochs: int
    batch_size: int
    lr: float
    lr_step: int
    lr_decay: float
    weight_decay: float
    crop_scale: tuple[float, float]
    amp: bool
    select: str
    supcon_weight: float = 0.0
    supcon_temperature: float = 0.1

    @classmethod
    def from_section(cls, section: Any) -> SSODRecipe:
        return section if isinstance(section, cls) else cls(**{f.name: getattr(section, f.name) for f in fields(cls)})

    @property
    def label(self) -> str:
        supcon = f" + SupCon x{self.supcon_weight:g}" if self.supcon_weight else ""
        return (f"alpha {self.alpha:g} {self.balance}" if self.alpha else "alpha 0 (vanilla)") + supcon


class SSODTrainer(TrainerSkeleton):
    """Trains an :class:`SSODNet` with an :class:`SSODRecipe` (or the ``SSODParams`` section it is read from).

    ``name`` names the run in the per-epoch progress lines of ``ssdlib reproduce`` (:mod:`ssdlib.progress`);
    by default "SSOD" with alpha and the balance scheme. ``deterministic``: deterministic kernels only
    (:func:`ssdlib.training.skeleton.set_determinism`).
    """

    history_type = SSODHistory

    def __init__(
        self,
        model: SSODNet,
        recipe: SSODRecipe | Any,
        *,
        device: str | torch.device = "cpu",
        seed: int = 0,
        num_workers: int = 0,
        log: Callable[[str], None] | None = None,
        progress: bool = True,
        name: str | None = None,
        deterministic: bool = False,
    ) -> None:
        recipe = SSODRecipe.from_section(recipe)
        seeds = {"shuffle": seed, "augment": seed + 1, "sampler": seed + 2}  # sampler: DR's random subsets
        super().__init__(
            model,
            device=device,
            amp=recipe.amp,
            seeds=seeds,
            log=log,
            progress=progress,
            name=name or f"SSOD {recipe.label}",
            deterministic=deterministic,
        )
        self.recipe = recipe
        self.world = dist.world_size()
        dist.broadcast_from_first(self.model.state_dict().values())  # every process starts from rank 0's weights
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, **self.optimizer_options()
        )
        self.num_workers = num_workers
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_value = -math.inf  # selection values are "higher is better"
        self._epoch_of_step = 0

    def ood_active(self, epoch: int) -> bool:
        return epoch >= self.recipe.warmup_epochs

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """One AdamW step on a batch of images in [0, 1] and their labels.

        Returns the step's log row [total loss, CE, CE_ood, #ID, #OOD locations] as a tensor on the
        device; :meth:`_record` appends it to the history once read.
        """
        images, y = batch
        r, epoch = self.recipe, self._epoch_of_step
        x = self._crop(images, view=0)
        with self.autocast():
            fmap = self.model.feature_map(x)
            pooled = self.model.pool(fmap)
            logits = self.model.classify(pooled)
        with torch.no_grad():
            location_labels = dist.gather(sample(self.model.class_map(fmap.float()), y, r.gamma))
        y, logits = dist.gather(y), dist.gather(logits.float())  # the global batch (no-op in one process)
        if self.ood_active(epoch):
            with self.autocast():
                ood_map, ood_logit = self.model.ood_map(fmap), self.model.ood_logit(pooled)
            loss = ssod_loss(
                logits,
                y,
                dist.gather(ood_map.float()),
                location_labels,
                dist.gather(ood_logit.float()),
                alpha=r.alpha,
                balance=r.balance,
                lw_factor=r.lw_factor,
                generator=self.generators["sampler"],
            )
            total, ce, ce_ood = loss.total, loss.ce, loss.ce_ood
        else:
            total = ce = torch.nn.functional.cross_entropy(logits, y)
            ce_ood = torch.full_like(ce, math.nan)
        supcon = torch.full_like(ce, math.nan)
        if r.supcon_weight:  # SSOD (w/): a second crop of every image, both projected
            with self.autocast():
                second = self.model.pool(self.model.feature_map(self._crop(images, view=1)))
                z = torch.stack([self.model.project(pooled), self.model.project(second)], dim=1)
            total, supcon = with_supcon(
                total, dist.gather(z.float()), y, weight=r.supcon_weight, temperature=r.supcon_temperature
            )
        self._backward(total)
        self.history.locations = fmap.shape[2] * fmap.shape[3]
        counts = [(location_labels == label).sum().to(ce.dtype) for label in (ID, OOD)]
        return torch.stack([total.detach(), ce.detach(), ce_ood.detach(), *counts, supcon.detach()])

    def _crop(self, x: torch.Tensor, view: int) -> torch.Tensor:
        """Crop ``view`` of every image: the loader's own when it drew them ([B, views, 3, H, W], ImageNet
        scale), else a RandomResizedCrop of the [B, 3, H, W] images here (from the augmentation generator)."""
        if x.ndim == 5:
            return x[:, view]
        n, _, height, width = x.shape  # boxes for the global batch, this process's slice of them
        boxes = sample_crop_boxes(
            n * self.world, height, width, self.recipe.crop_scale, CROP_RATIO, self.generators["augment"]
        )
        return resized_crop(x, *to_device([boxes[self.rank * n : (self.rank + 1) * n]], x.device))

    def _after_backward(self) -> None:
        dist.average_gradients(self.model)

    def _record(self, row: list[float]) -> None:
        _total, ce, ce_ood, n_id, n_ood, supcon = row
        h = self.history
        h.step_epoch.append(self._epoch_of_step + 1)
        h.step_ce.append(ce)
        h.step_ce_ood.append(ce_ood)
        h.step_n_id.append(int(n_id))
        h.step_n_ood.append(int(n_ood))
        h.step_supcon.append(supcon)
        h.step_lr.append(self.optimizer.param_groups[0]["lr"])

    def _advice(self) -> str:
        return "SSOD diverged: lower lr, or raise warmup_epochs."

    def fit(
        self,
        train: Images,
        *,
        val: Images | None = None,
        epochs: int | None = None,
        selection: Callable[[SSODNet], float] | None = None,
        checkpoint: str | Path | None = None,
        params: dict[str, Any] | None = None,
        warmup_checkpoint: str | Path | None = None,
    ) -> SSODHistory:
        """Train until ``epochs`` (default ``recipe.epochs``) epochs are complete; return the history.

        Epochs after the warm-up are ranked by the accuracy on ``val`` (``select="val_accuracy"``)
        or by ``selection(model)`` (higher = better; ``"test_fpr95"``). The model keeps
        the last epoch's weights (so ``fit`` can continue); :meth:`use_selected` swaps in the
        selected ones. The state after each epoch goes to ``checkpoint`` (with ``params`` beside
        it), the state right after the warm-up also to ``warmup_checkpoint``.
        """
        r = self.recipe
        epochs = r.epochs if epochs is None else epochs
        if r.select == "val_accuracy" and val is None:
            raise ValueError("select: val_accuracy needs held-out data: set val_fraction > 0, or select: last")
        if r.select == "test_fpr95" and selection is None:
            raise ValueError("select: test_fpr95 needs the selection function (ssdlib.ssod.runs.trained builds it)")
        bar = progress_report.bar(
            range(self.epoch, epochs), desc="SSOD epochs", initial=self.epoch, total=epochs, disable=not self.progress
        )
        report = progress_report.EpochReporter(self.name, epochs, self.epoch) if self.rank == 0 else None
        with self.interruptible(epochs):
            for epoch in bar:
                self._train_epoch(train, epoch, epochs)
                self._end_epoch(val, selection)
                h = self.history
                bar.set_postfix(ce=f"{h.ce[-1]:.3f}", ce_ood=f"{h.ce_ood[-1]:.3f}")
                if warmup_checkpoint and self.epoch == r.warmup_epochs:
                    self.save(warmup_checkpoint, params)
                if checkpoint:
                    self.save(checkpoint, params, finished=self.epoch == epochs)
                if report:
                    report.epoch(
                        self.epoch, {"CE": h.ce[-1], "CE_ood": h.ce_ood[-1], "val accuracy": h.val_accuracy[-1]}
                    )
        return self.history

    def use_selected(self) -> SSODNet:
        """Load the selected epoch's weights into the model (no-op for ``select="last"``) and return it."""
        if self.recipe.select != "last" and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.model

    def _train_epoch(self, train: Images, epoch: int, epochs: int) -> None:
        r = self.recipe
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(epoch, r.lr, r.lr_step, r.lr_decay)
        start, first_step = time.perf_counter(), len(self.history.step_ce)
        self.model.train()
        self._epoch_of_step = epoch
        on_device = (
            batches.on_device(x, y, self.device)
            for x, y in _batches(
                train, r.batch_size, self.generators["shuffle"], self.num_workers, self.world, self.rank
            )
        )
        self._run_steps(on_device, lambda i: f"epoch {epoch + 1}/{epochs}, step {i + 1}")
        h = self.history
        if len(h.step_ce) == first_step:
            raise ValueError(f"no full batch of {r.batch_size} images in the training set: lower batch_size")
        h.epoch.append(epoch + 1)
        h.ce.append(sum(h.step_ce[first_step:]) / (len(h.step_ce) - first_step))
        h.ce_ood.append(sum(h.step_ce_ood[first_step:]) / (len(h.step_ce_ood) - first_step))
        h.seconds.append(time.perf_counter() - start)
        self.epoch = epoch + 1

    def _end_epoch(self, val: Images | None, selection: Callable[[SSODNet], float] | None) -> None:
        h, select = self.history, self.recipe.select
        dist.broadcast_from_first(self.model.buffers())  # rank 0's batch-norm statistics everywhere
        h.val_accuracy.append(
            math.nan
            if val is None
            else classifier_accuracy(self.model, val, batch_size=self.recipe.batch_size, num_workers=self.num_workers)
        )
        value = math.nan
        if self.ood_active(self.epoch - 1) and select != "last":
            value = h.val_accuracy[-1] if select == "val_accuracy" else selection(self.model)
        h.selection.append(value)
        if not math.isnan(value) and value > self.best_value:
            self.best_value, h.best_epoch = value, self.epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
        steps = h.step_epoch.count(self.epoch)
        per_image = lambda counts: sum(counts[-steps:]) / (steps * self.recipe.batch_size)  # noqa: E731
        self.log(
            f"epoch {self.epoch}: CE {h.ce[-1]:.4f}, CE_ood {h.ce_ood[-1]:.4f}, sampled ID/OOD locations per "
            f"image {per_image(h.step_n_id):.2f}/{per_image(h.step_n_ood):.2f} of {h.locations}, val accuracy "
            f"{h.val_accuracy[-1]:.4f} ({h.seconds[-1]:.1f} s)"
        )

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self, params: dict[str, Any] | None = None, finished: bool = False) -> dict[str, Any]:
        return {
            **super().state_dict(params),
            "finished": finished,
            "best_state": self.best_state,
            "best_value": self.best_value,
        }

    def save(self, path: str | Path, params: dict[str, Any] | None = None, finished: bool = False) -> None:
        super().save(path, params, finished=finished)

    def load_state_dict(self, state: dict[str, Any], source: str | Path = "checkpoint") -> None:
        """Continue exactly where a saved state left off (weights, optimizer, history, random state)."""
        super().load_state_dict(state, source)
        self.best_state, self.best_value = state["best_state"], float(state["best_value"])
