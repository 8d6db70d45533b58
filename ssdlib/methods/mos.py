"""MOS (Huang & Li 2021): the CE classifier's network with a group-softmax head (classes + groups
outputs) of which only the head is fine-tuned, by its own small trainer (:mod:`ssdlib.mos`) on the
profile's classifier; its score is :class:`ssdlib.detectors.mos.MOS`. The recipe is the ``mos`` section."""

from __future__ import annotations

from ssdlib.detectors.mos import resolve
from ssdlib.methods import resnet_encoder
from ssdlib.models.heads import SupNet
from ssdlib.training.methods import TrainingMethod, register


def _build(P, num_classes, normalize):
    groups = len(resolve(P.mos.groups)) if P.mos.groups is not None else 0
    return SupNet(resnet_encoder(P), num_classes + groups, normalize=normalize)


register(TrainingMethod(key="MOS", section="mos", build=_build, monitors=()))
