"""Several GPUs or machines with torch.distributed (torchrun + DistributedDataParallel).

Every rank draws the same shuffled order each epoch (same seed) and takes its contiguous slice
of every global batch, so one optimisation step sees ``batch_size`` images in total, as on one
device. Contrastive embeddings are gathered across ranks with gradients
(:func:`gather`), so negatives come from the whole global batch, as with
SSD's ``DataParallel``; batch norm statistics stay per replica, as in SSD (no SyncBN). Only rank 0
writes checkpoints and logs. Without an initialised process group everything here is a no-op.

SSOD's trainer calls its network's heads one by one rather than through ``forward``, which
DistributedDataParallel needs to synchronise gradients; it therefore starts from rank 0's weights
(:func:`broadcast_from_first`), computes its loss on the gathered global batch and averages the
gradients itself (:func:`average_gradients`), which gives the same step as one process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_from_env() -> bool:
    """Join the process group torchrun describes in the environment; False when not launched by it.

    Uses NCCL with one GPU per process (``LOCAL_RANK``) when CUDA is available, gloo otherwise.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return True


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when a process group is initialised, else unchanged."""
    if not is_distributed():
        return model
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return (
        model.module
        if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel)
        else model
    )


def shard_batches(order: torch.Tensor, batch_size: int, world: int, this_rank: int) -> list[torch.Tensor]:
    """This rank's slice of every global batch of ``order``.

    Every global batch is cut to a multiple of ``world`` so that all ranks hold equally many
    samples (all_gather needs equal shapes); the incomplete last batch is kept, as in SSD (no
    drop_last), unless fewer than two samples per rank remain.
    """
    if batch_size % world:
        raise ValueError(
            f"batch_size {batch_size} is not divisible by the {world} processes: choose a multiple of {world}"
        )
    out = []
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        per_rank = len(batch) // world
        if per_rank < 2:
            continue
        out.append(batch[this_rank * per_rank : (this_rank + 1) * per_rank])
    return out


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient of the gathered tensor, then returns this
    rank's slice: each rank's identical global loss thus gives ``world x dL/dz_rank``, and DDP's
    gradient average turns that into exactly dL/dtheta of the global batch."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad.chunk(dist.get_world_size())[dist.get_rank()]


def gather(t: torch.Tensor) -> torch.Tensor:
    """All ranks' ``t`` (equal shapes) concatenated along dim 0 in rank order, with gradients."""
    if not is_distributed():
        return t
    if not t.requires_grad:
        parts = [torch.empty_like(t) for _ in range(world_size())]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)
    return _GatherWithGrad.apply(t)


def mean_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """The mean of a detached scalar over ranks (a NaN on any rank makes it NaN everywhere)."""
    if not is_distributed():
        return t
    t = t.detach().clone()
    dist.all_reduce(t)
    return t / world_size()


def gather_objects(obj) -> list:
    """``obj`` from every rank, in rank order (for the per-rank random states in checkpoints)."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_from_first(tensors) -> None:
    """Overwrite ``tensors`` (e.g. a model's parameters or buffers) in place with rank 0's values."""
    if not is_distributed():
        return
    for t in tensors:
        dist.broadcast(t.data, src=0)


def average_gradients(model: torch.nn.Module) -> None:
    """Replace every gradient by its mean over the processes, in one all_reduce of the flattened gradients.

    A parameter without a gradient (a head not used in this step) has none on every process, as in
    one process, so the optimizer skips it alike.
    """
    if not is_distributed():
        return
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    for g, mean in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(mean.view_as(g))
