"""SSOD (Pei et al.): a classifier trained jointly with an OOD head on the locations its own sampler
picks. It has a trainer of its own (``ssdlib.ssod.train``: sampler, two heads, AdamW, selection), so
it declares no loop objective; ``ssdlib.ssod.runs.trained`` trains each variant once per output folder."""

from __future__ import annotations

from ssdlib.ssod.build import new_ssod_net
from ssdlib.training.methods import TrainingMethod, register


def _build(P, num_classes, normalize):
    return new_ssod_net(P.ssod, num_classes, normalize, P.seed)


register(TrainingMethod(key="SSOD", section="ssod", build=_build, monitors=("top1",)))
