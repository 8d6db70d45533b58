"""What every ssdlib trainer shares, in one place: the encoder trainer (:mod:`ssdlib.training.loop`)
and SSOD's (:mod:`ssdlib.ssod.train`) derive from :class:`TrainerSkeleton` and add only their step,
epoch loop and checkpoint fields. So each speed or safety rule is written once:

- **Device.** CUDA gets channels-last weights, cuDNN's autotuner and fused optimizer kernels
  (:meth:`TrainerSkeleton.optimizer_options`); none changes results beyond float rounding.
- **Determinism.** ``deterministic=True`` (params: ``deterministic``) asks torch for deterministic
  kernels only (:func:`set_determinism`), so a resumed GPU run reaches the same weights bit for bit,
  as a CPU run always does. Without it a GPU run is reproducible to float rounding only: cuDNN's
  autotuner may pick other convolution algorithms, and some backward kernels add with atomics.
- **Mixed precision.** bf16 autocast on CUDA where the GPU has it, else fp16 with a GradScaler;
  fp32 on the CPU (:func:`autocast_for`).
- **Randomness.** Named generators on the CPU, seeded from the run's seed, so a seed gives the
  same run on every device; every random state is saved in checkpoints.
- **Deferred reads and the NaN stop.** Each step returns its log row (loss first) as a tensor on the
  device; rows are read every ``LOSS_READ_EVERY`` steps on CUDA (every step on the CPU, where
  reading is free), so the CPU never waits for the GPU between steps. A non-finite loss stops the
  run naming its step (:class:`NonFiniteLossError`) before any checkpoint is written.
- **Checkpoints.** Atomic (:mod:`ssdlib.training.checkpoint`), refused when the weights are not
  finite, holding model, optimizer, grad scaler, completed epochs, history, params and every random
  state (one entry per process under torchrun), so a resumed run reaches the same weights.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch

from ssdlib.log import get as get_logger
from ssdlib.progress import messages as run_messages
from ssdlib.training import checkpoint as ckpt
from ssdlib.training import distributed as dist

LOSS_READ_EVERY = 50  # steps between reads of the step log on a GPU (every step on the CPU, where it is free)


class NonFiniteLossError(FloatingPointError):
    """The loss (or the weights) became NaN or inf; the message names where and the last good checkpoint."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or JupyterLab's Kernel > Interrupt) during training, said in one line: where it stopped and
    how to go on. IPython shows ``_render_traceback_`` instead of a traceback through torch's internals."""

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self}"]


def autocast_for(device: torch.device, amp: bool) -> tuple[Callable, torch.dtype | None]:
    """Mixed precision on CUDA only: bf16 where the GPU supports it, else fp16 (needs a GradScaler)."""
    if not (amp and device.type == "cuda"):
        return nullcontext, None
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return partial(torch.autocast, "cuda", dtype=dtype), dtype


def set_determinism(deterministic: bool, cuda: bool) -> None:
    """Deterministic kernels only (cuDNN, cuBLAS, scatter and index ops; an op without one raises), or
    cuDNN's autotuner on CUDA. The switches are process-wide, so every trainer sets them both ways.

    cuBLAS is deterministic only with a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, PyTorch's
    "Reproducibility" notes), read when CUDA starts: set here unless the environment sets it.
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = cuda and not deterministic


Log = TypeVar("Log", bound="RunLog")


@dataclass
class RunLog:
    """The columns every training log keeps (epoch, seconds per epoch, lr per step) and the
    log's round trip through a checkpoint."""

    epoch: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[Log], data: dict[str, Any]) -> Log:
        """Keys this log does not have are dropped; columns ``data`` lacks start empty."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


class TrainerSkeleton(ABC):
    """Device, precision, generators, deferred reads, NaN stop and checkpoints of a trainer.

    A subclass sets ``self.optimizer`` (with :meth:`optimizer_options`) and ``history_type``,
    and implements ``_step(batch) -> tensor`` (the step's log row, loss first), ``_record(row)``
    (append a read row to the history) and ``_advice()`` (what to change after a NaN). ``seeds``
    names the generators and their seeds; ``name`` names the run in progress lines; ``log`` takes
    the run's messages (default: one output updated in place in a notebook, :class:`ssdlib.progress.Panel`,
    the subclass module's logger elsewhere);
    ``deterministic``: deterministic kernels only (:func:`set_determinism`).
    """

    history_type: type[RunLog] = RunLog

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        device: str | torch.device,
        amp: bool,
        seeds: dict[str, int],
        log: Callable[[str], None] | None,
        progress: bool,
        name: str,
        deterministic: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.deterministic = deterministic
        set_determinism(deterministic, self.cuda)
        self.model = model.to(self.device, memory_format=torch.channels_last if self.cuda else torch.preserve_format)
        self.autocast, amp_dtype = autocast_for(self.device, amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        self.generators = {key: torch.Generator().manual_seed(seed) for key, seed in seeds.items()}
        self.read_every = LOSS_READ_EVERY if self.cuda else 1
        self.rank = dist.rank()
        log = log or run_messages(get_logger(type(self).__module__).info)  # one in-place output in a notebook
        self.log = log if self.rank == 0 else (lambda _msg: None)
        self.progress = progress and self.rank == 0
        self.name = name
        self.history = self.history_type()
        self.epoch = 0  # completed epochs
        self.position = "before the first step"
        self.last_good: Path | None = None
        self.saved_epoch = 0  # the epochs that last_good holds
        self.optimizer: torch.optim.Optimizer | None = None

    def optimizer_options(self) -> dict[str, Any]:
        """Keyword arguments for the optimizer: the fused kernel on CUDA."""
        return {"fused": True} if self.cuda else {}

    # -- steps ------------------------------------------------------------------------------
    @abstractmethod
    def _step(self, batch: Any) -> torch.Tensor:
        """One optimisation step; its log row (loss first) as a tensor on the device."""

    @abstractmethod
    def _record(self, row: list[float]) -> None:
        """Append one read log row to the history."""

    @abstractmethod
    def _advice(self) -> str:
        """What to change after a NaN (the message adds where the last good checkpoint is)."""

    def _backward(self, loss: torch.Tensor) -> None:
        """Gradients of ``loss`` (scaled under fp16) and one optimizer step."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self._after_backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def _after_backward(self) -> None:  # noqa: B027 - a hook: most trainers need nothing there
        """Between backward and the optimizer step: nothing here (SSOD averages gradients over processes)."""

    def _run_steps(self, batches: Iterable[Any], where: Callable[[int], str]) -> None:
        """:meth:`_step` on every batch; the rows are read every ``read_every`` steps and at the end."""
        pending: list[torch.Tensor] = []
        positions: list[str] = []
        for i, batch in enumerate(batches):
            self.position = where(i)
            pending.append(self._step(batch))
            positions.append(self.position)
            if len(pending) == self.read_every:
                self._read(pending, positions)
                pending, positions = [], []
        if pending:
            self._read(pending, positions)

    def _read(self, pending: list[torch.Tensor], positions: list[str]) -> None:
        """Read pending rows (one transfer), stop at the first non-finite loss, record the others."""
        for row, position in zip(torch.stack(pending).float().tolist(), positions):
            row = row if isinstance(row, list) else [row]
            if not math.isfinite(row[0]):
                raise NonFiniteLossError(f"the loss is {row[0]} at {position}. {self._advice()} {self._where_saved()}")
            self._record(row)

    def _where_saved(self) -> str:
        if self.last_good:
            return f"The last good checkpoint is {self.last_good} (it was not overwritten)."
        return "No checkpoint was written yet."

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """What a resume needs; subclasses add their own fields. Collective under torchrun."""
        return {
            "format": ckpt.FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "history": self.history.to_dict(),
            "params": params or {},
            "rng": dist.gather_objects(ckpt.rng_state(self.generators)),
        }

    def save(self, path: str | Path, params: dict[str, Any] | None = None, **extra: Any) -> None:
        """Write a checkpoint atomically (rank 0); refuse to replace a good one with non-finite weights."""
        bad = [name for name, p in self.model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise NonFiniteLossError(
                f"weights {bad[:3]} became non-finite by the end of epoch {self.epoch}. "
                f"{self._advice()} {self._where_saved()}"
            )
        state = {**self.state_dict(params), **extra}
        path = Path(path)
        if self.rank == 0:
            ckpt.save_atomic(state, path)
        self.last_good, self.saved_epoch = path, self.epoch

    @contextmanager
    def interruptible(self, total_epochs: int) -> Iterator[None]:
        """Turn Ctrl-C inside the block into :class:`TrainingInterrupted`, naming the epoch and what a rerun does."""
        try:
            yield
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt:
            where = f"{self.name} stopped in epoch {self.epoch + 1}/{total_epochs}"
            if self.last_good is None:
                raise TrainingInterrupted(f"{where}, before its first checkpoint: a rerun starts it over") from None
            raise TrainingInterrupted(
                f"{where}; {self.last_good} holds epoch {self.saved_epoch}: run the same cell or command again "
                "to resume from there"
            ) from None

    def load_state_dict(self, state: dict[str, Any], source: str | Path = "checkpoint") -> None:
        """Continue exactly where ``state`` left off: weights, optimizer, scaler, epochs, history, random state."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = self.saved_epoch = int(state["epoch"])
        self.history = self.history_type.from_dict(state["history"])
        rngs = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]  # one entry per process
        try:
            ckpt.set_rng_state(rngs[self.rank], self.generators)
        except (IndexError, RuntimeError, KeyError) as err:
            self.log(
                f"warning: random state of {source} not restored ({err}); the run continues, "
                "but not bit-identically (different device or number of processes)"
            )
