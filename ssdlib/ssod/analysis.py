"""What the classifier sees where: the locality maps of Fig. 3 and where the sampler's picks lie.

Fig. 3 (a, b) marks the locations whose class is predicted correctly with more than 40 %
confidence, for a vanilla classifier and for SSOD; (c, d) marks the sampler's ID and OOD picks
(Eq. 7). ``locality`` computes both for labelled images: tensors, or a Dataset read in batches
(ImageNet's 50 000 validation images would take 30 GB as one float32 tensor).

The offline benchmark stores no object masks, but its objects are placed around the image
centre and the background is left around them, so ``pick_offsets`` measures how far from the
centre each kind of pick lies: background picks (OOD) should lie farther out than object picks (ID).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Subset

from ssdlib.features import extract
from ssdlib.plots import project_2d
from ssdlib.ssod.model import SSODNet
from ssdlib.ssod.sampler import ID, OOD, location_labels, target_confidence
from ssdlib.training import batches
from ssdlib.training.batches import Images

FIG3_CONFIDENCE = 0.4  # Fig. 3 (a, b): correctly classified with over 40 % confidence


@dataclass
class Locality:
    """Per-location maps [N, H, W] of a batch: target-class confidence, Fig. 3 (a/b) mask, sampler labels."""

    confidence: np.ndarray
    correct: np.ndarray
    picks: np.ndarray


@torch.no_grad()
def locality(
    model: SSODNet,
    data: Images,
    gamma: float,
    confidence: float = FIG3_CONFIDENCE,
    batch_size: int = 256,
    num_workers: int = 0,
) -> Locality:
    """Fig. 3's maps (eval mode) of labelled images in [0, 1]: ``(images [N, 3, H, W], labels [N])`` or a
    Dataset of (image, label), read in order with ``num_workers`` DataLoader workers."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    conf, correct, picks = [], [], []
    try:
        for x, y in batches.read(data, batches.in_order(data, batch_size), num_workers):
            x, y = batches.on_device(x, y, device)
            class_map = model.class_map(model.feature_map(x)).float()
            p = target_confidence(class_map, y)
            conf.append(p.cpu())
            correct.append(((class_map.argmax(1) == y[:, None, None]) & (p > confidence)).cpu())
            picks.append(location_labels(p, gamma).cpu())
    finally:
        model.train(was_training)
    return Locality(torch.cat(conf).numpy(), torch.cat(correct).numpy(), torch.cat(picks).numpy())


def centre_distance(height: int, width: int) -> np.ndarray:
    """Distance of each map cell's centre from the map's centre [H, W], 1 at the farthest cell."""
    i, j = np.meshgrid(np.arange(height) - (height - 1) / 2, np.arange(width) - (width - 1) / 2, indexing="ij")
    d = np.hypot(i, j)
    return d / d.max() if d.max() > 0 else d


def pick_offsets(picks: np.ndarray) -> dict[str, float]:
    """Mean centre distance of ID picks, of OOD picks and of all locations (NaN where there are none)."""
    d = np.broadcast_to(centre_distance(*picks.shape[1:]), picks.shape)
    mean = lambda mask: float(d[mask].mean()) if mask.any() else float("nan")  # noqa: E731
    return {
        "id": mean(picks == ID),
        "ood": mean(picks == OOD),
        "all": float(d.mean()),
        "id_share": float((picks == ID).mean()),
        "ood_share": float((picks == OOD).mean()),
    }


def embedding(
    model: SSODNet, id_set, ood_set, device, n: int = 300, method: str = "tsne", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Fig. 2: 2-D coordinates [2n, 2] of the pooled features of the first ``n`` images of an ID
    and an OOD set (t-SNE or PCA, ``ssdlib.plots.project_2d``), and which are ID."""
    parts = [extract(model, Subset(s, range(min(n, len(s)))), device=device).features for s in (id_set, ood_set)]
    points = project_2d(np.concatenate(parts), method=method, seed=seed)
    return points, np.arange(len(points)) < len(parts[0])
