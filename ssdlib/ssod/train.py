"""SSOD joint training (Pei et al. 2023, Sec. 5.1 and App. B), with its open choices made explicit.

Each step: a RandomResizedCrop of every image (the paper's only augmentation), the feature map,
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

Logged per step: CE, CE_ood (NaN during warm-up), the numbers of ID and OOD locations the
sampler picked, and the lr; per epoch: mean losses, validation accuracy, the selection metric.
As in :mod:`ssdlib.training.loop`, a GPU run reads the step log back every ``LOSS_READ_EVERY``
steps rather than after each one, and gets channels-last weights, cuDNN's autotuner and fused
AdamW. The sampler reads a float32 class map even under bf16 autocast, so no location's label
flips at gamma by rounding.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from ssdlib import progress as progress_report
from ssdlib.augment import resized_crop, sample_crop_boxes, to_device
from ssdlib.ssod.loss import ssod_loss
from ssdlib.ssod.model import SSODNet
from ssdlib.ssod.sampler import ID, OOD, sample
from ssdlib.training import checkpoint as ckpt
from ssdlib.training.loop import LOSS_READ_EVERY, NonFiniteLossError, RunLog, autocast_for

CROP_RATIO = (3 / 4, 4 / 3)  # torchvision's RandomResizedCrop default aspect range
Data = tuple[torch.Tensor, torch.Tensor] | Dataset


@dataclass
class SSODHistory(RunLog):
    """Per-step losses and sampler counts, per-epoch summaries, and the selected epoch."""

    step_epoch: list[int] = field(default_factory=list)
    step_ce: list[float] = field(default_factory=list)
    step_ce_ood: list[float] = field(default_factory=list)
    step_n_id: list[int] = field(default_factory=list)
    step_n_ood: list[int] = field(default_factory=list)
    locations: int = 0  # H * W of the feature map: what the counts are out of, per image
    ce: list[float] = field(default_factory=list)
    ce_ood: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    selection: list[float] = field(default_factory=list)
    best_epoch: int | None = None

    def steps(self):
        """Per-step log as a pandas DataFrame (columns lr, epoch, ce, ce_ood, n_id, n_ood)."""
        import pandas as pd

        return pd.DataFrame({k[len("step_"):]: v for k, v in asdict(self).items() if k.startswith("step_")})


def lr_at(epoch: int, lr: float, lr_step: int, lr_decay: float) -> float:
    """Step schedule: ``lr * lr_decay ** (epoch // lr_step)`` (paper: halved every 30 epochs)."""
    return lr * lr_decay ** (epoch // lr_step)


def split_validation(data: Data, fraction: float, seed: int) -> tuple[Data, Data | None]:
    """Hold out ``fraction`` of the training set (a seeded random subset) for checkpoint selection."""
    n = len(data[0]) if isinstance(data, tuple) else len(data)
    n_val = int(round(n * fraction))
    if n_val == 0:
        return data, None
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    if isinstance(data, tuple):
        return (data[0][train_idx], data[1][train_idx]), (data[0][val_idx], data[1][val_idx])
    return Subset(data, train_idx.tolist()), Subset(data, val_idx.tolist())


@torch.no_grad()
def accuracy(model: SSODNet, data: Data, device: torch.device, batch_size: int = 256, num_workers: int = 0) -> float:
    """Top-1 accuracy of the pooled-feature classifier on ``data`` (eval mode)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for x, y in _batches(data, batch_size, shuffle=None, drop_last=False, num_workers=num_workers):
            correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
            total += len(y)
    finally:
        model.train(was_training)
    return correct / total


def _batches(data: Data, batch_size: int, shuffle: torch.Generator | None, drop_last: bool, num_workers: int = 0):
    """(images, labels) batches of tensors or of a Dataset, shuffled with ``shuffle`` when given."""
    if isinstance(data, tuple):
        x, y = data
        order = torch.randperm(len(x), generator=shuffle) if shuffle is not None else torch.arange(len(x))
        stop = len(x) - batch_size + 1 if drop_last else len(x)
        for start in range(0, max(stop, 0), batch_size):
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]
    else:
        yield from DataLoader(data, batch_size=batch_size, shuffle=shuffle is not None, generator=shuffle,
                              drop_last=drop_last, num_workers=num_workers, pin_memory=torch.cuda.is_available())


class SSODTrainer:
    """Trains an :class:`SSODNet` with the settings of an ``SSODParams`` section.

    ``name`` names the run in the per-epoch progress lines of ``ssdlib reproduce`` (:mod:`ssdlib.progress`);
    by default the backbone, width, alpha and balance scheme.
    """

    def __init__(self, model: SSODNet, cfg, *, device: str | torch.device = "cpu", seed: int = 0,
                 num_workers: int = 0, log: Callable[[str], None] = print, progress: bool = True,
                 name: str | None = None) -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.name = name or (f"SSOD {cfg.backbone} w{cfg.width} alpha {cfg.alpha:g} {cfg.balance}" if cfg.alpha
                             else f"SSOD {cfg.backbone} w{cfg.width} alpha 0 (vanilla)")
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = True
        self.model = model.to(self.device, memory_format=torch.channels_last if cuda else torch.preserve_format)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                           fused=True if cuda else None)
        self.read_log_every = LOSS_READ_EVERY if cuda else 1
        self.generators = {
            "shuffle": torch.Generator().manual_seed(seed),
            "augment": torch.Generator().manual_seed(seed + 1),
            "sampler": torch.Generator().manual_seed(seed + 2),  # DR's random subsets
        }
        autocast, dtype = autocast_for(self.device, cfg.amp)
        self.autocast = autocast if dtype == torch.bfloat16 else nullcontext  # fp16 would need a GradScaler
        self.num_workers, self.log, self.progress = num_workers, log, progress
        self.history = SSODHistory()
        self.epoch = 0  # completed epochs
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_value = -math.inf  # selection values are "higher is better"

    def ood_active(self, epoch: int) -> bool:
        return epoch >= self.cfg.warmup_epochs

    def step(self, x: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor:
        """One AdamW step on a batch of images in [0, 1] and their labels.

        Returns the step's log entry [total, CE, CE_ood, #ID, #OOD locations] as a tensor on the
        device; :meth:`_read_log` checks and records it.
        """
        cfg = self.cfg
        n, _, height, width = x.shape
        boxes = sample_crop_boxes(n, height, width, cfg.crop_scale, CROP_RATIO, self.generators["augment"])
        x = resized_crop(x, *to_device([boxes], x.device))
        with self.autocast():
            fmap = self.model.feature_map(x)
            pooled = self.model.pool(fmap)
            logits = self.model.classify(pooled)
        with torch.no_grad():
            location_labels = sample(self.model.class_map(fmap.float()), y, cfg.gamma)
        if self.ood_active(epoch):
            with self.autocast():
                ood_map, ood_logit = self.model.ood_map(fmap), self.model.ood_logit(pooled)
            loss = ssod_loss(logits.float(), y, ood_map.float(), location_labels, ood_logit.float(), alpha=cfg.alpha,
                             balance=cfg.balance, lw_factor=cfg.lw_factor, generator=self.generators["sampler"])
            total, ce, ce_ood = loss.total, loss.ce, loss.ce_ood
        else:
            total = ce = torch.nn.functional.cross_entropy(logits.float(), y)
            ce_ood = torch.full_like(ce, math.nan)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.history.locations = fmap.shape[2] * fmap.shape[3]
        counts = [(location_labels == label).sum().to(ce.dtype) for label in (ID, OOD)]
        return torch.stack([total.detach(), ce.detach(), ce_ood.detach(), *counts])

    def _read_log(self, entries: list[torch.Tensor], epoch: int) -> None:
        """Read pending step entries (one transfer); stop at the first non-finite loss."""
        h = self.history
        for total, ce, ce_ood, n_id, n_ood in torch.stack(entries).tolist():
            if not math.isfinite(total):
                raise NonFiniteLossError(f"the SSOD loss is {total} in epoch {epoch + 1}, step "
                                         f"{h.step_epoch.count(epoch + 1) + 1} (CE {ce}, CE_ood {ce_ood}): "
                                         "lower lr, or raise warmup_epochs")
            h.step_epoch.append(epoch + 1)
            h.step_ce.append(ce)
            h.step_ce_ood.append(ce_ood)
            h.step_n_id.append(int(n_id))
            h.step_n_ood.append(int(n_ood))
            h.step_lr.append(self.optimizer.param_groups[0]["lr"])

    def fit(self, train: Data, *, val: Data | None = None, epochs: int | None = None,
            selection: Callable[[SSODNet], float] | None = None,
            checkpoint: str | Path | None = None, params: dict[str, Any] | None = None,
            warmup_checkpoint: str | Path | None = None) -> SSODHistory:
        """Train until ``epochs`` (default ``cfg.epochs``) epochs are complete; return the history.

        Epochs after the warm-up are ranked by the accuracy on ``val`` (``select="val_accuracy"``)
        or by ``selection(model)`` (higher = better; ``"test_fpr95"``). The model keeps
        the last epoch's weights (so ``fit`` can continue); :meth:`use_selected` swaps in the
        selected ones. The state after each epoch goes to ``checkpoint`` (with ``params`` beside
        it), the state right after the warm-up also to ``warmup_checkpoint``.
        """
        cfg = self.cfg
        epochs = cfg.epochs if epochs is None else epochs
        if cfg.select == "val_accuracy" and val is None:
            raise ValueError("select: val_accuracy needs held-out data: set val_fraction > 0, or select: last")
        if cfg.select == "test_fpr95" and selection is None:
            raise ValueError("select: test_fpr95 needs the selection function (ssdlib.ssod.runs.trained builds it)")
        bar = tqdm(range(self.epoch, epochs), desc="SSOD epochs", initial=self.epoch, total=epochs,
                   disable=not self.progress)
        report = progress_report.EpochReporter(self.name, epochs, self.epoch)
        for epoch in bar:
            self._train_epoch(train, epoch)
            self._end_epoch(val, selection)
            h = self.history
            bar.set_postfix(ce=f"{h.ce[-1]:.3f}", ce_ood=f"{h.ce_ood[-1]:.3f}")
            if warmup_checkpoint and self.epoch == cfg.warmup_epochs:
                self.save(warmup_checkpoint, params)
            if checkpoint:
                self.save(checkpoint, params, finished=self.epoch == epochs)
            report.epoch(self.epoch, {"CE": h.ce[-1], "CE_ood": h.ce_ood[-1], "val accuracy": h.val_accuracy[-1]})
        return self.history

    def use_selected(self) -> SSODNet:
        """Load the selected epoch's weights into the model (no-op for ``select="last"``) and return it."""
        if self.cfg.select != "last" and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.model

    def _train_epoch(self, train: Data, epoch: int) -> None:
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(epoch, cfg.lr, cfg.lr_step, cfg.lr_decay)
        start, first_step = time.perf_counter(), len(self.history.step_ce)
        self.model.train()
        pending = []
        for x, y in _batches(train, cfg.batch_size, self.generators["shuffle"], drop_last=True,
                             num_workers=self.num_workers):
            pending.append(self.step(x.to(self.device, non_blocking=True),
                                     y.to(self.device, non_blocking=True).long(), epoch))
            if len(pending) == self.read_log_every:
                self._read_log(pending, epoch)
                pending = []
        if pending:
            self._read_log(pending, epoch)
        h = self.history
        if len(h.step_ce) == first_step:
            raise ValueError(f"no full batch of {cfg.batch_size} images in the training set: lower batch_size")
        h.epoch.append(epoch + 1)
        h.ce.append(sum(h.step_ce[first_step:]) / (len(h.step_ce) - first_step))
        h.ce_ood.append(sum(h.step_ce_ood[first_step:]) / (len(h.step_ce_ood) - first_step))
        h.seconds.append(time.perf_counter() - start)
        self.epoch = epoch + 1

    def _end_epoch(self, val: Data | None, selection: Callable[[SSODNet], float] | None) -> None:
        h, select = self.history, self.cfg.select
        h.val_accuracy.append(math.nan if val is None else
                              accuracy(self.model, val, self.device, self.cfg.batch_size, self.num_workers))
        value = math.nan
        if self.ood_active(self.epoch - 1) and select != "last":
            value = h.val_accuracy[-1] if select == "val_accuracy" else selection(self.model)
        h.selection.append(value)
        if not math.isnan(value) and value > self.best_value:
            self.best_value, h.best_epoch = value, self.epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
        steps = h.step_epoch.count(self.epoch)
        per_image = lambda counts: sum(counts[-steps:]) / (steps * self.cfg.batch_size)  # noqa: E731
        self.log(f"epoch {self.epoch}: CE {h.ce[-1]:.4f}, CE_ood {h.ce_ood[-1]:.4f}, sampled ID/OOD locations per "
                 f"image {per_image(h.step_n_id):.2f}/{per_image(h.step_n_ood):.2f} of {h.locations}, val accuracy "
                 f"{h.val_accuracy[-1]:.4f} ({h.seconds[-1]:.1f} s)")

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self, params: dict[str, Any] | None = None, finished: bool = False) -> dict[str, Any]:
        return {
            "format": ckpt.FORMAT, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch, "finished": finished, "history": self.history.to_dict(),
            "best_state": self.best_state, "best_value": self.best_value,
            "params": params or {}, "rng": ckpt.rng_state(self.generators),
        }

    def save(self, path: str | Path, params: dict[str, Any] | None = None, finished: bool = False) -> None:
        ckpt.save_atomic(self.state_dict(params, finished), path)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where a saved state left off (weights, optimizer, history, random state)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.history = SSODHistory.from_dict(state["history"])
        self.best_state, self.best_value = state["best_state"], float(state["best_value"])
        ckpt.set_rng_state(state["rng"], self.generators)

