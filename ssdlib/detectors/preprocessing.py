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

from collections.abc import Callable

import torch

from ssdlib.detectors.base import FeatureSet
from ssdlib.features import collect, loader

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


def extract_preprocessed(
    model: torch.nn.Module,
    data,
    device,
    loss: Loss,
    epsilon: float,
    outputs: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 256,
    desc: str = "preprocessed features",
) -> FeatureSet:
    """Features of the preprocessed images, ``outputs(features)`` as logits (if given), and labels.

    ``data`` is a Dataset, a DataLoader or an image tensor, as for ``ssdlib.features.extract``.
    The model runs in eval mode and is left in the mode it was found in.
    """
    device = torch.device(device)
    return collect(
        model, loader(data, batch_size), lambda x: model.features(sign_step(loss, x.to(device), epsilon)), outputs, desc
    )
