"""SupCE (SSD ``trainers.supervised``): the encoder with a linear classifier, cross-entropy on one
``supce_augment`` view. The classifier MSP and the post-hoc baselines score, and SSD's SupCE mode."""

from __future__ import annotations

from ssdlib.methods import resnet_encoder
from ssdlib.models.heads import SupNet, torchvision_classifier
from ssdlib.params import ParamsError
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


def _released(P, num_classes, normalize):
    """The released classifier ``classifier.pretrained`` names: the ImageNet tables' baselines score
    torchvision's ResNet-50 as it is."""
    model = torchvision_classifier(P.encoder.arch, P.classifier.pretrained, normalize)
    if model.head.out_features != num_classes:
        raise ParamsError(
            f"classifier.pretrained={P.classifier.pretrained!r} classifies {model.head.out_features} classes, "
            f"the ID set {P.data.id_dataset!r} has {num_classes}: name weights trained on it, or pretrained: none"
        )
    return model


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
        release_key="pretrained",
        released=_released,
    )
)
