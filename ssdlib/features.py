"""Batched feature extraction: a model and a dataset in, a :class:`FeatureSet` out.

SSD scores the pooled penultimate features (``model.features``), not the projection head
(Sehwag et al. 2021, Sec. 3); classifier models (those with ``model.classify``) also give logits
for the logit-based baselines. Extraction runs in eval mode (BatchNorm uses its running
statistics) without gradients, and leaves the model in the mode it found it in. Large sets on a
GPU go faster with ``num_workers`` (decoding in worker processes, pinned batches copied while the
GPU works) and ``amp`` (bf16 autocast on CUDA, where the GPU has it; features are returned in
float32 either way, but their values change by bf16 rounding, so SSD's own extraction keeps fp32).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ssdlib.feature_set import FeatureSet
from ssdlib.progress import bar as progress_bar
from ssdlib.training.skeleton import autocast_for

if TYPE_CHECKING:
    from ssdlib.data.registry import DatasetBundle


def loader(data, batch_size: int, num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """``data`` (a Dataset, a DataLoader or an image tensor) as a DataLoader that keeps its order."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, torch.Tensor):
        data, num_workers = TensorDataset(data), 0  # already decoded: workers would only copy it
    if isinstance(data, Dataset):
        return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=pin_memory)
    raise TypeError(
        f"extract() takes a Dataset, a DataLoader or an image tensor [N, 3, H, W], got {type(data).__name__}"
    )


@torch.no_grad()
def collect(
    model,
    batches: DataLoader,
    features_of: Callable[[torch.Tensor], torch.Tensor],
    outputs: Callable[[torch.Tensor], torch.Tensor] | None,
    desc: str,
) -> FeatureSet:
    """``features_of(images)``, ``outputs(features)`` as logits (if given) and the labels of ``batches``.

    The one loop behind :func:`extract` and preprocessed extraction (which enables gradients for its
    own input step): the model runs in eval mode and is left in the mode it was found in.
    """
    was_training = model.training
    model.eval()
    features, logits, labels = [], [], []
    try:
        for batch in progress_bar(batches, desc=desc, leave=False):
            f = features_of(batch[0] if isinstance(batch, (list, tuple)) else batch)
            features.append(f.float().cpu())
            if outputs is not None:
                logits.append(outputs(f).float().cpu())
            if isinstance(batch, (list, tuple)) and len(batch) > 1:
                labels.append(torch.as_tensor(batch[1]).cpu())
    finally:
        model.train(was_training)
    if not features:
        raise ValueError(f"got an empty dataset ({desc}): there is nothing to compute features of")
    return FeatureSet(
        features=torch.cat(features).numpy(),
        logits=torch.cat(logits).numpy() if logits else None,
        labels=torch.cat(labels).numpy().astype(np.int64) if labels else None,
    )


def extract(
    model,
    data,
    device="cpu",
    batch_size: int = 256,
    desc: str | None = None,
    num_workers: int = 0,
    amp: bool = False,
) -> FeatureSet:
    """Features [N, D] (float32), logits [N, M] when the model classifies, and labels [N] of ``data``.

    ``data`` is a Dataset yielding ``(image, label)`` or ``(image,)``, a DataLoader over one, or an
    image tensor. Labels are None when the data carries none. ``num_workers``: DataLoader workers for
    a Dataset; ``amp``: bf16 (or fp16) autocast on CUDA (ignored on the CPU).
    """
    device = torch.device(device)
    autocast, _ = autocast_for(device, amp)
    classify = getattr(model, "classify", None)

    def features_of(x: torch.Tensor) -> torch.Tensor:
        with autocast():
            return model.features(x.to(device, non_blocking=True))

    def outputs(f: torch.Tensor) -> torch.Tensor:
        with autocast():
            return classify(f)

    return collect(
        model,
        loader(data, batch_size, num_workers, pin_memory=device.type == "cuda"),
        features_of,
        outputs if classify is not None else None,
        desc or "features",
    )


def subset(data: FeatureSet, index) -> FeatureSet:
    """The rows ``index`` (indices or a boolean mask) of every array in ``data``."""

    def pick(a):
        return None if a is None else a[index]

    return FeatureSet(features=pick(data.features), logits=pick(data.logits), labels=pick(data.labels))


@dataclass
class SplitFeatures:
    """A model's representations of a whole benchmark: ID train, ID test and each OOD set."""

    train: FeatureSet
    test: FeatureSet
    ood: dict[str, FeatureSet]


def extract_splits(
    model, bundle: DatasetBundle, device="cpu", batch_size: int = 256, num_workers: int = 0
) -> SplitFeatures:
    """:func:`extract` (fp32) on ``bundle.train`` (un-augmented), ``bundle.test`` and every ``bundle.ood`` set."""

    def of(data, desc: str) -> FeatureSet:
        return extract(model, data, device, batch_size, desc=desc, num_workers=num_workers)

    return SplitFeatures(
        train=of(bundle.train, "ID train"),
        test=of(bundle.test, "ID test"),
        ood={name: of(ds, name) for name, ds in bundle.ood.items()},
    )
