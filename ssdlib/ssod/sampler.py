"""The self-supervised location sampler of SSOD (Pei et al. 2023, Eq. 7).

The classifier is applied at every location of the feature map; the softmax probability of the
image's *ground-truth* class there (not the arg-max class) decides the location's OOD label:

    label = ID (1)        if p >= gamma
            OOD (0)       if p <  1 - gamma
            IGNORED (-1)  otherwise (1 - gamma <= p < gamma)

The comparisons are the paper's (a third-party sketch uses p <= 1 - gamma for OOD). They run in
the confidence map's dtype, and the OOD test is written as 1 - p > gamma, so a confidence equal
to gamma, or to 1 - gamma, falls on the paper's side of the boundary despite rounding (in
float64, 1 - 0.95 is 0.050000000000000044, and p = 0.05 < that would wrongly count as OOD).
No temperature is applied and the labels carry no gradient: they are targets, computed from the
current classifier (no EMA copy), under ``torch.no_grad``.
The pooled feature of each training image is one more ID sample; the loss adds it
(:mod:`ssdlib.ssod.loss`), not the sampler.
"""

from __future__ import annotations

import torch

ID, OOD, IGNORED = 1, 0, -1


@torch.no_grad()
def target_confidence(class_map: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax probability of each image's label at each location: [B, M, H, W], [B] -> [B, H, W]."""
    if class_map.ndim != 4 or labels.shape != class_map.shape[:1]:
        raise ValueError(
            f"expected a class map [B, M, H, W] and labels [B], got {tuple(class_map.shape)} and {tuple(labels.shape)}"
        )
    probs = class_map.float().softmax(dim=1)
    index = labels.long().view(-1, 1, 1, 1).expand(-1, 1, *probs.shape[2:])
    return probs.gather(1, index)[:, 0]


@torch.no_grad()
def location_labels(confidence: torch.Tensor, gamma: float) -> torch.Tensor:
    """Eq. 7 on a target-confidence map: ID (1), OOD (0) or IGNORED (-1) per location (int64)."""
    if not 0.5 < gamma < 1:
        raise ValueError(f"gamma must lie in (0.5, 1) so that the ID and OOD ranges do not overlap, got {gamma}")
    ood = torch.where(1 - confidence > gamma, OOD, IGNORED)
    return torch.where(confidence >= gamma, ID, ood).long()


def sample(class_map: torch.Tensor, labels: torch.Tensor, gamma: float) -> torch.Tensor:
    """Location labels [B, H, W] from the classifier's map [B, M, H, W] and the image labels [B]."""
    return location_labels(target_confidence(class_map, labels), gamma)
