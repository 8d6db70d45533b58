"""Batched feature extraction: a model and a dataset in, a :class:`FeatureSet` out.

SSD scores the pooled penultimate features (``model.features``), not the projection head
(Sehwag et al. 2021, Sec. 3); classifier models (those with ``model.classify``) also give logits
for the logit-based baselines. Extraction runs in eval mode (BatchNorm uses its running
statistics) without gradients, and leaves the model in the mode it found it in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from ssdlib.detectors.base import FeatureSet

if TYPE_CHECKING:
    from ssdlib.data.registry import DatasetBundle


def loader(data, batch_size: int) -> DataLoader:
    """``data`` (a Dataset, a DataLoader or an image tensor) as a DataLoader that keeps its order."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, torch.Tensor):
        data = TensorDataset(data)
    if isinstance(data, Dataset):
        return DataLoader(data, batch_size=batch_size, shuffle=False)
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
        for batch in tqdm(batches, desc=desc, leave=False):
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


def extract(model, data, device="cpu", batch_size: int = 256, desc: str | None = None) -> FeatureSet:
    """Features [N, D] (float32), logits [N, M] when the model classifies, and labels [N] of ``data``.

    ``data`` is a Dataset yielding ``(image, label)`` or ``(image,)``, a DataLoader over one, or an
    image tensor. Labels are None when the data carries none.
    """
    device = torch.device(device)
    return collect(
        model,
        loader(data, batch_size),
        lambda x: model.features(x.to(device)),
        getattr(model, "classify", None),
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


def extract_splits(model, bundle: DatasetBundle, device="cpu", batch_size: int = 256) -> SplitFeatures:
    """:func:`extract` on ``bundle.train`` (un-augmented), ``bundle.test`` and every ``bundle.ood`` set."""
    return SplitFeatures(
        train=extract(model, bundle.train, device, batch_size, desc="ID train"),
        test=extract(model, bundle.test, device, batch_size, desc="ID test"),
        ood={name: extract(model, ds, device, batch_size, desc=name) for name, ds in bundle.ood.items()},
    )
