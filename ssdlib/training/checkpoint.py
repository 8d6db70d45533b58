"""Atomic training checkpoints and the random-number state that makes a resume exact.

A checkpoint is written by ``ssdlib.atomic.write_with`` (streamed into a temporary file in the same
folder, fsync, ``os.replace``), so a run killed while saving leaves the previous
checkpoint intact, never a truncated one. It holds everything a resumed run needs to reach the
same weights as an uninterrupted one: model, optimizer, schedule, grad scaler, completed epochs,
the history, every random state (torch CPU and CUDA, numpy, the shuffle and augmentation
generators) and the params that produced it. Files hold only tensors and plain data, so they load
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ssdlib import atomic
from ssdlib.models.load import CheckpointError, read_checkpoint
from ssdlib.training import batches

FORMAT = "ssdlib-train-1"


def save_atomic(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` so that readers only ever see the old or the complete new file."""
    return atomic.write_with(path, partial(torch.save, state))


def load(path: str | Path) -> dict[str, Any]:
    """Read an ssdlib training checkpoint safely (tensors and plain data only)."""
    try:
        state = read_checkpoint(path)
    except CheckpointError as err:
        if not Path(path).is_file():
            raise
        raise CheckpointError(f"{err} Delete it to train from scratch.") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not an ssdlib training checkpoint (format {FORMAT!r} expected). Delete it "
            "to train from scratch; released SSD files are loaded with ssdlib.models.load."
        )
    return state


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every random state of this process: torch CPU/CUDA, numpy, and the named generators."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    for name, g in generators.items():
        g.set_state(state["generators"][name])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def data_fingerprint(data: tuple[torch.Tensor, torch.Tensor] | Dataset) -> dict[str, Any]:
    """What a training set is, in a few numbers a checkpoint can keep: its size, image shape, labels'
    classes and a hash of a fixed sample of its pixels and labels (every image when there are few).

    ``data`` is (images, labels) held as tensors or a Dataset streamed from disk; the same images
    give the same fingerprint either way (classes: the highest label + 1, or a Dataset's ``classes``).
    """
    n = batches.size(data)
    sample = torch.linspace(0, max(n - 1, 0), steps=min(n, 256)).long()
    if isinstance(data, tuple):
        images, labels = data[0][sample], data[1]
        classes = int(labels.max().item()) + 1 if n else 0
        labels = labels[sample]
    else:
        items = [data[i] for i in sample.tolist()]
        images = torch.stack([torch.as_tensor(image) for image, _ in items])
        labels = torch.as_tensor([label for _, label in items])
        classes = len(data.classes) if hasattr(data, "classes") else int(labels.max().item()) + 1
    digest = hashlib.sha256()
    digest.update(images.detach().float().cpu().contiguous().numpy().tobytes())
    digest.update(labels.detach().long().cpu().numpy().tobytes())
    return {"images": n, "shape": list(images.shape[1:]), "classes": classes, "sample_sha256": digest.hexdigest()[:16]}


def data_differences(saved: dict[str, Any] | None, now: dict[str, Any]) -> list[str]:
    """How the training data of a checkpoint (``saved``; None for files from before fingerprints)
    differ from ``now``."""
    if not saved:
        return []
    return [f"{k}: {saved.get(k)!r} in the checkpoint, {v!r} now" for k, v in now.items() if saved.get(k) != v]
