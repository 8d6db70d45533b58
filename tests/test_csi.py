"""CSI: the rotations, the loss against an independent NT-Xent + cross-entropy, the score on a hand-made
case, and a tiny training run through the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_experiment import tiny_bundle, tiny_params
from torch import nn

from ssdlib import experiment, profiles
from ssdlib.detectors.base import FeatureSet
from ssdlib.detectors.csi import CSI
from ssdlib.methods.csi import ShiftedContrastive
from ssdlib.models.csi import CSINet, rotations
from ssdlib.training import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rotations_are_shift_major_quarter_turns():
    x = torch.arange(8.0).view(2, 1, 2, 2).expand(2, 3, 2, 2)  # image 0: [[0, 1], [2, 3]]
    r = rotations(x)
    assert r.shape == (8, 3, 2, 2)
    assert r[0, 0].tolist() == [[0, 1], [2, 3]]  # rotation 0 of image 0
    assert r[2, 0].tolist() == [[1, 3], [0, 2]]  # 90 degrees counter-clockwise
    assert r[4, 0].tolist() == [[3, 2], [1, 0]]  # 180 degrees
    assert r[7, 0].tolist() == [[6, 4], [7, 5]]  # 270 degrees of image 1


class Fixed(nn.Module):
    """Projections and shift logits that are fixed functions of the pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(12, 5))
        self.v = nn.Parameter(torch.randn(12, 4))

    def project_and_shift(self, x):
        flat = x[:, :, :2, :2].flatten(1)  # 12 numbers
        return flat @ self.w, flat @ self.v

    forward = project_and_shift


def shifted_views(x, generator=None, scale=None):
    """A deterministic 'augmentation': a brightness shift per call, so the two views differ."""
    shifted_views.calls += 1
    return x + 0.1 * shifted_views.calls


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent written out: z [2n, D] unit rows, row i's positive is row (i + n) mod 2n."""
    n2 = len(z)
    losses = []
    for i in range(n2):
        others = [j for j in range(n2) if j != i]
        logits = torch.stack([z[i] @ z[j] / temperature for j in others])
        positive = others.index((i + n2 // 2) % n2)
        losses.append(-(logits[positive] - torch.logsumexp(logits, 0)))
    return torch.stack(losses).mean()


def test_the_loss_is_nt_xent_over_rotated_instances_plus_shift_cross_entropy():
    torch.manual_seed(0)
    model, x = Fixed(), torch.rand(3, 3, 4, 4)
    generator = torch.Generator().manual_seed(5)
    shifted_views.calls = 0
    loss = ShiftedContrastive(shifted_views, temperature=0.5, crop_scale=(0.08, 1.0))(
        model, x, None, generator, torch.no_grad
    )
    flip = torch.rand(3, generator=torch.Generator().manual_seed(5)) < 0.5  # the loss's first draw
    flipped = torch.stack([xi.flip(2) if f else xi for xi, f in zip(x, flip)])
    instances = torch.cat([torch.rot90(flipped, k, dims=(2, 3)) for k in range(4)])  # 12 instances
    views = torch.cat([instances + 0.1, instances + 0.2])
    z, logits = model.project_and_shift(views)
    expected = nt_xent(F.normalize(z, dim=1), 0.5) + F.cross_entropy(
        logits, torch.tensor([0, 1, 2, 3] * 2).repeat_interleave(3)
    )
    torch.testing.assert_close(loss, expected)


def features(z: np.ndarray, logits: np.ndarray) -> FeatureSet:
    """z [N, 4, D] and shift logits [N, 4, 4] flattened as CSI.extract gives them."""
    return FeatureSet(features=z.reshape(len(z), -1), logits=logits.reshape(len(logits), -1))


def test_the_score_on_a_hand_computed_case():
    # two training images, D = 2; projections the same under every shift, shift logits on the diagonal
    z_train = np.array([[[3.0, 4.0]] * 4, [[1.0, 0.0]] * 4])  # norms 5 and 1: lambda = 1 / 3
    s_train = np.stack([np.eye(4) * 2.0, np.eye(4) * 6.0])  # right-shift logits 2 and 6: mu = 1 / 4
    detector = CSI().fit(features(z_train, s_train))
    z_test = np.array([[[0.0, 2.0]] * 4])  # nearest unit bank row (0.6, 0.8): 1.6; (1, 0): 0
    s_test = np.eye(4)[None] * 4.0
    # per shift: 1.6 / 3 + 4 / 4; the mean over the 4 shifts is the same
    np.testing.assert_allclose(detector.score(features(z_test, s_test)), [1.6 / 3 + 1.0])
    # the training images themselves average 1 + 1 over their terms (lambda, mu are 1 / the means)
    assert detector.score(features(z_train, s_train)).mean() == pytest.approx(
        np.mean([5 / 3 + 2 / 4, 1 / 3 + 6 / 4]), rel=1e-12
    )


def csi_params(**csi):
    P = tiny_params()
    return profiles.validate(
        {
            **P.model_dump(mode="json"),
            "csi": {"epochs": 1, "warmup_epochs": 0, "batch_size": 8, "lr": 0.05, "knn_k": 5, "ood_samples": 2, **csi},
        }
    )


@pytest.mark.slow
def test_a_tiny_csi_run_trains_once_and_scores(tmp_path):
    P, bundle = csi_params(), tiny_bundle()
    model = experiment.model_for(P, bundle, tmp_path, "CSI")
    assert isinstance(model, CSINet) and not model.training
    path = tmp_path / "checkpoints" / "CSI_resnet18_w4.pt"
    state = load_checkpoint(path)
    assert state["finished"] and np.isfinite(state["history"]["loss"]).all()
    assert state["recipe"]["section"]["crop_scale"] == [0.08, 1.0]
    assert "ood_samples" not in state["recipe"]["section"]  # a scoring key: not part of the identity
    rescored = csi_params(ood_samples=3)
    assert experiment.recipe_for(rescored, "CSI") == experiment.recipe_for(P, "CSI")
    detector = CSI(samples=P.csi.ood_samples, crop=P.csi.score_crop)
    detector.fit(detector.extract(model, bundle.train))
    scores = detector.score(detector.extract(model, bundle.test))
    assert scores.shape == (len(bundle.test),) and np.isfinite(scores).all()
    again = detector.score(detector.extract(model, bundle.test))
    np.testing.assert_array_equal(scores, again)  # each sample's views are seeded: the score repeats
