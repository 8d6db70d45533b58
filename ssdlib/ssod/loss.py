"""The SSOD objective (Pei et al. 2023, Eq. 9) and its three ID/OOD balance schemes (Sec. 5.3).

    L = CE(f_cls(GAP(X)), y) + alpha * L_ood

L_ood is the binary cross-entropy of f_ood (one logit, target 1 = ID, 0 = OOD) over the sampled
samples of the batch: every location the sampler labelled ID or OOD, plus each image's pooled
feature as one more ID sample (Sec. 4.2). Background locations far outnumber object locations,
so the paper balances the two sets in one of three ways. Let l_i be the per-sample BCE:

- ``LWB`` (loss-wise balance, the paper's default): the mean over ID samples and the mean over
  OOD samples, averaged: L_ood = (mean_ID l + mean_OOD l) / 2.
- ``LW`` (loss weighting): the OOD (background) losses are multiplied by ``lw_factor`` and the
  weighted mean is taken, as PyTorch's class-weighted losses do:
  L_ood = (sum_ID l + w sum_OOD l) / (n_ID + w n_OOD).
- ``DR`` (data resampling): in every image, keep k = min(n_ID, n_OOD) random samples of each set
  (the pooled feature counts as ID), then one plain mean over what is kept; an image without OOD
  (or ID) locations contributes nothing.

Empty sets never give NaN: a mean over no samples counts as 0 (so with no OOD location LWB is
half the ID mean), and gradients stay finite. ``alpha = 0`` leaves the OOD head untrained: the
"vanilla" classifier of the paper's comparisons (Fig. 3, Table 6).

SSOD (w/) (Table 1) adds a supervised contrastive term (:func:`with_supcon`): L + lambda * L_SupCon,
with L_SupCon Khosla et al.'s Eq. 2 over the unit-norm projections of two crops of every image,
the positives of an anchor being every other crop of its class in the batch (``docs/ssod.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssdlib.ssod.sampler import ID, OOD
from ssdlib.training.losses import contrastive_loss

BALANCES = ("LW", "DR", "LWB")


@dataclass
class SSODLoss:
    """The total loss and its parts for one batch (counts are of sampled *locations*, pooled feature excluded).

    Every field is a 0-d tensor on the batch's device, so building it never waits for a GPU.
    """

    total: torch.Tensor
    ce: torch.Tensor
    ce_ood: torch.Tensor
    n_id: torch.Tensor
    n_ood: torch.Tensor


def with_pooled(
    map_logits: torch.Tensor, location_labels: torch.Tensor, pooled_logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image samples [B, H*W + 1]: the location logits and labels, plus the pooled feature as ID."""
    logits = torch.cat([map_logits.flatten(1), pooled_logits[:, None]], dim=1)
    ones = torch.full_like(location_labels[:, :1, 0], ID)
    return logits, torch.cat([location_labels.flatten(1), ones], dim=1)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def equal_counts(
    id_mask: torch.Tensor, ood_mask: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """DR's selection [B, S]: per row, k = min(#ID, #OOD) uniformly random members of each set."""
    k = torch.minimum(id_mask.sum(1), ood_mask.sum(1))[:, None]
    u = torch.rand(id_mask.shape, generator=generator, device=generator.device if generator is not None else "cpu").to(
        id_mask.device
    )
    keep = torch.zeros_like(id_mask)
    for mask in (id_mask, ood_mask):
        rank = torch.where(mask, u, 2.0).argsort(1).argsort(1)  # members first, in random order
        keep |= mask & (rank < k)
    return keep


def balanced_bce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    balance: str = "LWB",
    lw_factor: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L_ood over samples ``logits`` [B, S] labelled ID (1) / OOD (0) / ignored (-1), balanced by ``balance``."""
    per_sample = F.binary_cross_entropy_with_logits(logits, (labels == ID).to(logits.dtype), reduction="none")
    id_mask, ood_mask = labels == ID, labels == OOD
    if balance == "LWB":
        return (_masked_mean(per_sample, id_mask) + _masked_mean(per_sample, ood_mask)) / 2
    if balance == "LW":
        weight = id_mask.to(logits.dtype) + lw_factor * ood_mask.to(logits.dtype)
        return (weight * per_sample).sum() / weight.sum().clamp(min=torch.finfo(logits.dtype).tiny)
    if balance == "DR":
        return _masked_mean(per_sample, equal_counts(id_mask, ood_mask, generator))
    raise ValueError(f"unknown balance scheme {balance!r}; choose one of {', '.join(BALANCES)}")


def ssod_loss(
    class_logits: torch.Tensor,
    labels: torch.Tensor,
    map_logits: torch.Tensor,
    location_labels: torch.Tensor,
    pooled_logits: torch.Tensor,
    *,
    alpha: float,
    balance: str = "LWB",
    lw_factor: float = 1.0,
    generator: torch.Generator | None = None,
) -> SSODLoss:
    """Eq. 9 for one batch: class logits [B, M], labels [B], OOD-head logits at locations [B, H, W]
    and on the pooled features [B], and the sampler's location labels [B, H, W]."""
    ce = F.cross_entropy(class_logits, labels)
    logits, targets = with_pooled(map_logits, location_labels, pooled_logits)
    ce_ood = balanced_bce(logits, targets, balance, lw_factor, generator)
    return SSODLoss(
        total=ce + alpha * ce_ood,
        ce=ce,
        ce_ood=ce_ood,
        n_id=(location_labels == ID).sum(),
        n_ood=(location_labels == OOD).sum(),
    )


def with_supcon(
    total: torch.Tensor, projections: torch.Tensor, labels: torch.Tensor, *, weight: float, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """SSOD (w/): ``total`` (Eq. 9, or the warm-up's CE) plus ``weight`` times SupCon of ``projections``
    [B, 2, D] (unit-norm, two crops per image) with class ``labels`` [B]; returns (the new total, SupCon)."""
    supcon = contrastive_loss(projections, labels, temperature)
    return total + weight * supcon, supcon
