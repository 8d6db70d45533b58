"""SupCE (SSD ``trainers.supervised``): the encoder with a linear classifier, cross-entropy on one
``supce_augment`` view. The classifier MSP and the post-hoc baselines score, and SSD's SupCE mode."""

from __future__ import annotations

from ssdlib.methods import resnet_encoder
from ssdlib.models.heads import SupNet
from ssdlib.training.augment import supce_augment
from ssdlib.training.methods import TrainingMethod, register
from ssdlib.training.objectives import CrossEntropy


def cross_entropy(recipe, augment):
    """The CE objective of the shared loop (GODIN's too)."""
    return CrossEntropy(augment)


def supce_views(compiled: bool):
    """One ``supce_augment`` view (no compiled variant: it is cheap)."""
    return supce_augment


def _build(P, num_classes, normalize):
    return SupNet(resnet_encoder(P), num_classes, normalize=normalize)


register(
    TrainingMethod(
        key="SupCE",
        section="classifier",
        build=_build,
        objective=cross_entropy,
        augment=supce_views,
        monitors=("knn", "top1"),
        encoder_mode=True,
        ssd_name="SSD (SupCE)",
    )
)
