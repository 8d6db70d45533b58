"""Input preprocessing shared by ODIN, GODIN and Mahalanobis: one signed-gradient step on the image.

x~ = x - eps * sign(grad_x L(x)), then the representation of x~ is scored (Liang et al. 2018,
Eq. 2; Lee et al. 2018, Eq. 4; Hsu et al. 2020, Eq. 9). Each method brings its own L.

Units. The reference codes take the gradient w.r.t. the *normalised* input x_n = (x - m) / s and
step by eps * sign(grad_{x_n} L) / s per channel, in normalised units. Here normalisation is the
model's first layer and images stay in [0, 1], so the step is taken on x itself: since
grad_x L = grad_{x_n} L / s and s > 0, sign(grad_x L) = sign(grad_{x_n} L), and a step of
eps * sign(grad_x L) on x moves x_n by eps * sign(grad_{x_n} L) / s, exactly the reference step.
``tests/test_baselines_preprocessing.py`` checks this against pytorch-ood's ``norm_std`` version.
Like the references, x~ is not clipped to [0, 1].
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ssdlib.detectors.base import FeatureSet
from ssdlib.features import _loader

Loss = Callable[[torch.Tensor], torch.Tensor]  # images [B, 3, H, W] -> per-sample losses [B]


def sign_step(loss: Loss, x: torch.Tensor, epsilon: float) -> torch.Tensor:
    """x - epsilon * sign(grad_x sum(loss(x))): one step that lowers each sample's own loss.

    Summing is safe because samples do not interact in eval mode (BatchNorm uses running stats),
    so the gradient of the sum is each sample's own gradient.
    """
    if epsilon == 0:
        return x.detach()
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(x).sum(), x)
    return (x - epsilon * grad.sign()).detach()


def extract_preprocessed(model: torch.nn.Module, data, device, loss: Loss, epsilon: float,
                         outputs: Callable[[torch.Tensor], torch.Tensor] | None = None, batch_size: int = 256,
                         desc: str = "preprocessed features") -> FeatureSet:
    """Features of the preprocessed images, ``outputs(features)`` as logits (if given), and labels.

    ``data`` is a Dataset, a DataLoader or an image tensor, as for ``ssdlib.features.extract``.
    The model runs in eval mode and is left in the mode it was found in.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    features, logits, labels = [], [], []
    try:
        for batch in tqdm(_loader(data, batch_size), desc=desc, leave=False):
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            x = sign_step(loss, x.to(device), epsilon)
            with torch.no_grad():
                f = model.features(x)
                features.append(f.float().cpu())
                if outputs is not None:
                    logits.append(outputs(f).float().cpu())
            if isinstance(batch, (list, tuple)) and len(batch) > 1:
                labels.append(torch.as_tensor(batch[1]).cpu())
    finally:
        model.train(was_training)
    if not features:
        raise ValueError("got an empty dataset: there is nothing to preprocess")
    return FeatureSet(features=torch.cat(features).numpy(), logits=torch.cat(logits).numpy() if logits else None,
                      labels=torch.cat(labels).numpy().astype(np.int64) if labels else None)
