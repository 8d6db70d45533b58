"""The SSOD network (Pei et al. 2023, Sec. 4.2): backbone h, classifier f_cls, OOD head f_ood.

- ``feature_map(x)`` = X = h(x) [B, C, H, W], the last convolutional stage;
- ``features(x)`` = GAP(X) [B, C], the pooled feature (what ``ssdlib.features.extract`` stores);
- ``classify(f)`` = f_cls(f), Eq. 6; ``class_map(X)`` applies the *same* f_cls at every location
  (each Linear as a 1x1 convolution with its weight and bias, activations elementwise) -> [B, M, H, W],
  the confidence map the sampler reads (Eq. 7). f_cls is one Linear, or the backbone's own MLP
  classifier where torchvision's network has one (MobileNetV3: Linear, Hardswish, Dropout, Linear;
  :func:`ssdlib.models.backbones.classifier`), whose dropout is off in the map;
- ``ood_logit(f)`` = f_ood(f), one logit, positive = in-distribution; ``ood_map(X)`` applies it at
  every location (Eq. 8, training) while the test score uses the pooled feature (Eq. 10);
- ``project(f)``: SSOD (w/) only (``projection_dim``), the unit-norm projection of the pooled feature
  its SupCon term compares: SupContrast's MLP head (Linear C -> C, ReLU, Linear C -> dim).

When f_cls is linear, f_cls(GAP(X)) = GAP(f_cls(X)): the image's prediction is the mean of the
location logits (not so for an MLP classifier). Inputs are images in [0, 1]; the first layers
resize them to ``input_size`` (the paper upsamples CIFAR's 32 px to 224 px to get a bigger map,
App. A) and normalise them, so every evaluation, ID or OOD, sees the same pre-processing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Resize(nn.Module):
    """Bilinear resize of a batch to ``size`` x ``size`` (antialiased when shrinking); no-op if it fits."""

    def __init__(self, size: int | None) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is None or x.shape[-2:] == (self.size, self.size):
            return x
        shrink = min(x.shape[-2:]) > self.size
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=shrink)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class SSODNet(nn.Module):
    """Backbone + classifier + OOD head; ``forward`` returns class logits of the pooled feature.

    ``head`` is f_cls (default: one Linear to ``num_classes``), e.g. MobileNetV3's MLP classifier.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        normalize: nn.Module | None = None,
        input_size: int | None = None,
        projection_dim: int | None = None,
        head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not hasattr(encoder, "feature_map") or not hasattr(encoder, "out_dim"):
            raise TypeError(
                f"{type(encoder).__name__} is not a feature-map backbone: it needs .feature_map(x) "
                "and .out_dim (see ssdlib.models.backbones.backbone)"
            )
        self.resize = Resize(input_size)
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.encoder = encoder
        self.head = head if head is not None else nn.Linear(encoder.out_dim, num_classes)  # f_cls
        self.ood_head = nn.Linear(encoder.out_dim, 1)  # f_ood: logit of P(x is ID)
        if projection_dim is not None:  # SSOD (w/): SupCon's projection head
            dim = encoder.out_dim
            self.projection = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, projection_dim))

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """X = h(x) [B, C, H, W] for images in [0, 1]."""
        return self.encoder.feature_map(self.normalize(self.resize(x)))

    @staticmethod
    def pool(feature_map: torch.Tensor) -> torch.Tensor:
        """GAP over the spatial axes: [B, C, H, W] -> [B, C]."""
        return feature_map.mean(dim=(2, 3))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.feature_map(x))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def ood_logit(self, features: torch.Tensor) -> torch.Tensor:
        """f_ood of pooled features [B, C] -> [B]; sigmoid of it is P(ID) (Eq. 10)."""
        return self.ood_head(features)[:, 0]

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """SSOD (w/): the unit-norm projection [B, D] of pooled features [B, C] that SupCon compares."""
        return F.normalize(self.projection(features), dim=1)

    def class_map(self, feature_map: torch.Tensor) -> torch.Tensor:
        """f_cls at every location: [B, C, H, W] -> [B, M, H, W] (same weights and biases as ``classify``).

        Dropout stays off, also in training: the sampler reads the classifier, not a random thinning of it.
        """
        x = feature_map
        for layer in self.head if isinstance(self.head, nn.Sequential) else [self.head]:
            if isinstance(layer, nn.Linear):
                x = F.conv2d(x, layer.weight[:, :, None, None], layer.bias)
            elif not isinstance(layer, nn.Dropout):
                x = layer(x)  # an elementwise activation
        return x

    def ood_map(self, feature_map: torch.Tensor) -> torch.Tensor:
        """f_ood at every location: [B, C, H, W] -> [B, H, W]."""
        return F.conv2d(feature_map, self.ood_head.weight[:, :, None, None], self.ood_head.bias)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))
