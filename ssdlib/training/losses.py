"""The contrastive loss of SSD: SimCLR (Chen et al. 2020) and SupCon (Khosla et al. 2020, Eq. 2).

Views are flattened view-major into N = V * B anchors. With unit vectors z and temperature T,
s_ab = z_a . z_b / T and, for every anchor a,

    l_a = -1/|P(a)| * sum_{p in P(a)} [ s_ap - log sum_{b != a} exp(s_ab) ]

where P(a) holds the other views of a's image (SimCLR, ``labels=None``) or every other anchor
with a's label, in any view (SupCon). The loss is mean_a l_a times ``T / base_temperature``.

SSD (through SupContrast's ``SupConLoss``) uses ``base_temperature=0.07`` with T = 0.5, so its loss
and gradients are 7.14 times the formula above (a quirk that only rescales the learning rate
against weight decay). Here the default is no scaling; ``base_temperature=0.07`` reproduces SSD.
"""

from __future__ import annotations

import torch


def contrastive_loss(
    z: torch.Tensor,
    labels: torch.Tensor | None = None,
    temperature: float = 0.5,
    base_temperature: float | None = None,
) -> torch.Tensor:
    """Scalar SimCLR / SupCon loss of unit-norm projections ``z`` [B, V, D] (V >= 2 views)."""
    if z.ndim != 3 or z.shape[1] < 2:
        raise ValueError(f"expected projections [batch, views >= 2, dim], got {tuple(z.shape)}")
    n_img, n_views = z.shape[:2]
    if labels is None:
        labels = torch.arange(n_img, device=z.device)
    elif labels.shape != (n_img,):
        raise ValueError(f"labels must have shape [{n_img}] (one per image), got {tuple(labels.shape)}")

    anchors = z.transpose(0, 1).reshape(n_views * n_img, -1)  # view-major: [view0 of all; view1 of all; ...]
    anchor_labels = labels.repeat(n_views)
    self_mask = torch.eye(len(anchors), dtype=torch.bool, device=z.device)
    positive = (anchor_labels[:, None] == anchor_labels[None, :]) & ~self_mask

    sim = anchors @ anchors.T / temperature
    sim = sim - sim.max(1, keepdim=True).values.detach()  # stability; cancels in the log-ratio
    log_denominator = torch.logsumexp(sim.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    log_prob = sim - log_denominator
    per_anchor = (log_prob * positive).sum(1) / positive.sum(1)
    scale = 1.0 if base_temperature is None else temperature / base_temperature
    return -scale * per_anchor.mean()
