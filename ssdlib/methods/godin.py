"""GODIN (Hsu et al. 2020): the encoder with GODIN's decomposed head (``ssdlib.models.godin``), trained
by the CE loop with ``classifier``'s recipe; its ``baselines.godin.similarity`` defines the network."""

from __future__ import annotations

from ssdlib.methods import resnet_encoder
from ssdlib.methods.supce import cross_entropy, supce_views
from ssdlib.models.godin import GODINNet
from ssdlib.training.methods import TrainingMethod, register


def _build(P, num_classes, normalize):
    return GODINNet(resnet_encoder(P), num_classes, normalize=normalize, similarity=P.baselines.godin.similarity)


register(
    TrainingMethod(
        key="GODIN",
        section="classifier",
        build=_build,
        objective=cross_entropy,
        augment=supce_views,
        monitors=("knn", "top1"),
        identity=lambda P: {"similarity": P.baselines.godin.similarity},
    )
)
