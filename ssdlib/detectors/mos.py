"""MOS (Huang & Li, CVPR 2021): the classes split into groups, each group with an extra "others"
class, and one softmax per group (the deeplearning-wisc/large_scale_ood repository: ``finetune.py``'s
group loss, ``test_mos.py``'s score).

A group's logits are [others, its classes...]. An image's target in a group is the index of its class
there (1 + its place in the group) when the group holds it, else 0 ("others"); the loss is the sum over
groups of the cross-entropy of each group's softmax. The score is -min over groups of p(others): an ID
image has one group sure it is not "others". Higher = more ID.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ssdlib.detectors.base import Detector, FeatureSet

Groups = Sequence[Sequence[int]]  # class indices per group
PRESETS = {"imagenet": Path(__file__).resolve().parent.parent / "data" / "mos_imagenet_groups.txt"}


def resolve(groups: Groups | str) -> list[list[int]]:
    """Groups as class indices: as written, or a preset's (``mos.groups``). The ``imagenet`` preset lists
    each class by WordNet id; its index is its place among the sorted ids, torchvision's ImageNet order."""
    if not isinstance(groups, str):
        return [list(g) for g in groups]
    if groups not in PRESETS:
        raise ValueError(f"no MOS group preset named {groups!r}; presets: {', '.join(PRESETS)}")
    return [list(g) for g in _preset(groups)]


@functools.cache
def _preset(name: str) -> tuple[tuple[int, ...], ...]:
    """A preset's groups, read once per process."""
    rows = [line.split() for line in PRESETS[name].read_text().splitlines() if not line.startswith("#")]
    index = {wnid: i for i, wnid in enumerate(sorted(wnid for wnid, _, _ in rows))}
    out: list[list[int]] = [[] for _ in range(1 + max(int(g) for _, g, _ in rows))]
    for wnid, g, _place in sorted(rows, key=lambda r: (int(r[1]), int(r[2]))):
        out[int(g)].append(index[wnid])
    return tuple(tuple(g) for g in out)


def check_groups(groups: Groups, num_classes: int) -> None:
    """Every class in exactly one group, and no group empty."""
    flat = [c for g in groups for c in g]
    if any(len(g) == 0 for g in groups) or sorted(flat) != list(range(num_classes)):
        raise ValueError(
            f"MOS groups must hold each of the {num_classes} classes exactly once, in non-empty groups; got {groups}"
        )


def slices(groups: Groups) -> list[slice]:
    """Where each group's logits lie in the head's output: its own "others" first, then its classes."""
    out, start = [], 0
    for g in groups:
        out.append(slice(start, start + len(g) + 1))
        start += len(g) + 1
    return out


def targets(labels: torch.Tensor, groups: Groups) -> torch.Tensor:
    """[N, G] targets: 1 + the class's place in its group there, 0 ("others") in every other group."""
    out = torch.zeros(len(labels), len(groups), dtype=torch.long, device=labels.device)
    for g, members in enumerate(groups):
        for place, c in enumerate(members):
            out[labels == c, g] = place + 1
    return out


def group_loss(logits: torch.Tensor, group_targets: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Sum over groups of the mean cross-entropy of the group's softmax."""
    return sum(F.cross_entropy(logits[:, s], group_targets[:, g]) for g, s in enumerate(slices(groups)))


class MOS(Detector):
    """-min over groups of p(others) from the group head's logits [N, classes + groups]."""

    name = "MOS"

    def __init__(self, groups: Groups) -> None:
        super().__init__()
        self.groups = [list(g) for g in groups]

    def _fit(self, train: FeatureSet) -> None:
        """Nothing to estimate: the score reads the logits only."""

    def _score(self, data: FeatureSet) -> np.ndarray:
        logits = torch.from_numpy(np.asarray(data.require("logits", self.name), dtype=np.float64))
        others = torch.stack([logits[:, s].softmax(dim=1)[:, 0] for s in slices(self.groups)], dim=1)
        return (-others.min(dim=1).values).numpy()
