"""Models: CIFAR / ImageNet ResNet encoders and the SSD heads (SSOD and GODIN models live beside them)."""

from ssdlib.models.heads import SSLNet, SupNet, torchvision_classifier
from ssdlib.models.resnet import ARCHS, ResNet, resnet, torchvision_resnet

__all__ = ["ARCHS", "ResNet", "SSLNet", "SupNet", "resnet", "torchvision_classifier", "torchvision_resnet"]
