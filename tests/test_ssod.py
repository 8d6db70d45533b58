"""SSOD: the sampler (Eq. 7), the balanced loss (Eq. 9, Sec. 5.3), the model's shared heads and the score.

Every expected value is computed here independently, with numpy, from the paper's formulas.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssdlib.detectors.base import FeatureSet
from ssdlib.detectors.ssod import SSOD
from ssdlib.ssod.loss import balanced_bce, equal_counts, ssod_loss, with_pooled, with_supcon
from ssdlib.ssod.model import SSODNet
from ssdlib.ssod.sampler import ID, IGNORED, OOD, location_labels, sample, target_confidence


def bce(z, target):
    """Binary cross-entropy of a logit, by the textbook formula."""
    p = 1 / (1 + np.exp(-np.asarray(z, dtype=np.float64)))
    return -np.log(p) if target == 1 else -np.log(1 - p)


# -- sampler ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sampler_thresholds_including_the_boundaries(dtype):
    gamma = 0.95
    conf = torch.tensor([[[0.95, 1.0, 0.9499, 0.5], [1 - gamma, 0.05, 0.0499, 0.0]]], dtype=dtype)
    expected = [[[ID, ID, IGNORED, IGNORED], [IGNORED, IGNORED, OOD, OOD]]]
    assert location_labels(conf, gamma).tolist() == expected


def test_sampler_other_gamma_boundaries():
    gamma = 0.8
    conf = torch.tensor([[[0.8, 0.2, 1 - gamma, 0.19, 0.79]]])
    assert location_labels(conf, gamma).tolist() == [[[ID, IGNORED, IGNORED, OOD, IGNORED]]]


def test_sampler_uses_the_target_class_not_the_argmax():
    # two locations, three classes; at location 0 class 2 wins, at location 1 class 0 wins
    logits = torch.tensor([[[[0.0, 5.0]], [[0.0, 0.0]], [[6.0, 0.0]]]])  # [1, 3, 1, 2]
    p = np.exp([[0.0, 0.0, 6.0], [5.0, 0.0, 0.0]])
    p /= p.sum(1, keepdims=True)
    for label in range(3):
        conf = target_confidence(logits, torch.tensor([label]))
        np.testing.assert_allclose(conf[0, 0].numpy(), p[:, label], rtol=1e-6)
    assert sample(logits, torch.tensor([2]), 0.95).tolist() == [[[ID, OOD]]]
    assert sample(logits, torch.tensor([0]), 0.95).tolist() == [[[OOD, ID]]]
    assert sample(logits, torch.tensor([1]), 0.95).tolist() == [[[OOD, OOD]]]


def test_sampler_rejects_bad_gamma_and_shapes():
    with pytest.raises(ValueError, match="gamma"):
        location_labels(torch.zeros(1, 2, 2), 0.4)
    with pytest.raises(ValueError, match=r"\[B, M, H, W\]"):
        target_confidence(torch.zeros(2, 3, 4), torch.zeros(2))


# -- loss -------------------------------------------------------------------------------

# Two images, 1x3 maps. Image 0: one ID location, two OOD; image 1: no OOD, one ignored.
MAP = torch.tensor([[[0.5, -1.0, 2.0]], [[1.5, -0.3, 0.7]]], dtype=torch.float64)
LABELS = torch.tensor([[[ID, OOD, OOD]], [[ID, ID, IGNORED]]])
POOLED = torch.tensor([0.2, -0.4], dtype=torch.float64)
ID_Z = [0.5, 0.2, 1.5, -0.3, -0.4]  # ID locations and both pooled features
OOD_Z = [-1.0, 2.0]


def loss_of(balance, **kw):
    logits, targets = with_pooled(MAP, LABELS, POOLED)
    return balanced_bce(logits, targets, balance, **kw).item()


def test_pooled_feature_is_one_more_id_sample():
    logits, targets = with_pooled(MAP, LABELS, POOLED)
    assert logits[:, -1].tolist() == POOLED.tolist()
    assert targets.tolist() == [[ID, OOD, OOD, ID], [ID, ID, IGNORED, ID]]


def test_lwb_is_the_mean_of_the_two_set_means():
    expected = (np.mean([bce(z, 1) for z in ID_Z]) + np.mean([bce(z, 0) for z in OOD_Z])) / 2
    assert loss_of("LWB") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("factor", [0.25, 1.0, 3.0])
def test_lw_weights_the_background_losses(factor):
    num = sum(bce(z, 1) for z in ID_Z) + factor * sum(bce(z, 0) for z in OOD_Z)
    expected = num / (len(ID_Z) + factor * len(OOD_Z))
    assert loss_of("LW", lw_factor=factor) == pytest.approx(expected, rel=1e-12)


def test_dr_keeps_equal_counts_per_image():
    # image 0 has 2 ID samples (location + pooled) and 2 OOD: all kept; image 1 has no OOD: none kept
    expected = np.mean([bce(0.5, 1), bce(0.2, 1), bce(-1.0, 0), bce(2.0, 0)])
    assert loss_of("DR") == pytest.approx(expected, rel=1e-12)


def test_dr_subsamples_the_larger_set_at_random():
    # one image: ID = pooled only, OOD = three locations -> one random OOD location is kept
    map_logits = torch.tensor([[[0.3, -2.0, 1.0]]], dtype=torch.float64)
    labels = torch.tensor([[[OOD, OOD, OOD]]])
    logits, targets = with_pooled(map_logits, labels, torch.tensor([0.9], dtype=torch.float64))
    possible = {round((bce(0.9, 1) + bce(z, 0)) / 2, 12) for z in (0.3, -2.0, 1.0)}
    seen = set()
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        keep = equal_counts(targets == ID, targets == OOD, g)
        assert keep.sum().item() == 2 and keep[0, -1]
        seen.add(round(balanced_bce(logits, targets, "DR", generator=torch.Generator().manual_seed(seed)).item(), 12))
    assert seen == possible


def test_total_loss_is_ce_plus_alpha_times_ood_loss():
    class_logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    log_p = class_logits.numpy() - np.log(np.exp(class_logits.numpy()).sum(1, keepdims=True))
    ce = -np.mean([log_p[0, 0], log_p[1, 2]])
    out = ssod_loss(class_logits, y, MAP, LABELS, POOLED, alpha=1.5, balance="LWB")
    assert out.ce.item() == pytest.approx(ce, rel=1e-12)
    assert out.ce_ood.item() == pytest.approx(loss_of("LWB"), rel=1e-12)
    assert out.total.item() == pytest.approx(ce + 1.5 * loss_of("LWB"), rel=1e-12)
    assert (out.n_id, out.n_ood) == (3, 2)  # locations only: pooled features are not counted


def test_ssod_with_supcon_adds_lambda_times_supcon_of_the_two_crops():
    """SSOD (w/) on a hand-made batch: CE + alpha L_ood + lambda SupCon, SupCon by Khosla et al.'s Eq. 2."""
    class_logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    base = ssod_loss(class_logits, y, MAP, LABELS, POOLED, alpha=1.5, balance="LWB")
    angles = np.array([[0.0, 0.3], [2.0, 2.6]])  # image i, crop v: a unit vector at this angle
    z = torch.tensor(np.stack([np.cos(angles), np.sin(angles)], -1))  # [2 images, 2 crops, 2]
    labels = torch.tensor([1, 1])  # one class: every other crop is a positive
    t = 0.1
    anchors = z.reshape(4, 2).numpy()  # image-major here; the loss is a mean over anchors, order-free
    of = np.array([1, 1, 1, 1])
    terms = []
    for a in range(4):
        others = [b for b in range(4) if b != a]
        log_den = np.log(sum(np.exp(anchors[a] @ anchors[b] / t) for b in others))
        positives = [b for b in others if of[b] == of[a]]
        terms.append(-np.mean([anchors[a] @ anchors[p] / t - log_den for p in positives]))
    total, supcon = with_supcon(base.total, z, labels, weight=0.5, temperature=t)
    assert supcon.item() == pytest.approx(np.mean(terms), rel=1e-12)
    assert total.item() == pytest.approx(base.ce.item() + 1.5 * loss_of("LWB") + 0.5 * np.mean(terms), rel=1e-12)
    _, by_image = with_supcon(base.total, z, torch.tensor([0, 1]), weight=0.5, temperature=t)
    assert by_image.item() != pytest.approx(supcon.item())  # two classes: only the other crop is a positive


@pytest.mark.parametrize("balance", ["LW", "DR", "LWB"])
@pytest.mark.parametrize("kind", ["no_id_locations", "no_ood_locations", "nothing_sampled"])
def test_empty_sets_give_finite_loss_and_gradients(balance, kind):
    map_logits = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    pooled = torch.randn(3, dtype=torch.float64, requires_grad=True)
    class_logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    fill = {"no_id_locations": OOD, "no_ood_locations": ID, "nothing_sampled": IGNORED}[kind]
    labels = torch.full((3, 2, 2), fill)
    out = ssod_loss(class_logits, torch.tensor([0, 1, 2]), map_logits, labels, pooled, alpha=1.5, balance=balance)
    out.total.backward()
    assert torch.isfinite(out.total)
    for t in (map_logits, pooled, class_logits):
        assert torch.isfinite(t.grad).all()
    if kind == "no_ood_locations" and balance == "LWB":  # an empty set's mean counts as 0
        ids = [bce(z, 1) for z in [*map_logits.detach().flatten().tolist(), *pooled.detach().tolist()]]
        assert out.ce_ood.item() == pytest.approx(np.mean(ids) / 2, rel=1e-10)


def test_no_sample_at_all_gives_zero_not_nan():
    logits = torch.randn(2, 5, requires_grad=True)
    labels = torch.full((2, 5), IGNORED)
    for balance in ("LW", "DR", "LWB"):
        loss = balanced_bce(logits, labels, balance)
        loss.backward()
        assert loss.item() == 0 and torch.isfinite(logits.grad).all()


def test_unknown_balance_is_named():
    with pytest.raises(ValueError, match="LWB"):
        loss_of("XX")


# -- model ------------------------------------------------------------------------------


class TinyBackbone(torch.nn.Module):
    """A 2-layer conv net with the backbone interface (stride 4)."""

    out_dim = 6

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 6, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(6, 6, 3, stride=2, padding=1),
        )

    def feature_map(self, x):
        return self.net(x)


def test_class_map_is_the_classifier_at_every_location():
    torch.manual_seed(0)
    model = SSODNet(TinyBackbone(), num_classes=4)
    x = torch.rand(2, 3, 16, 16)
    fmap = model.feature_map(x)
    cmap, omap = model.class_map(fmap), model.ood_map(fmap)
    for i in range(fmap.shape[2]):
        for j in range(fmap.shape[3]):
            torch.testing.assert_close(cmap[:, :, i, j], model.classify(fmap[:, :, i, j]))
            torch.testing.assert_close(omap[:, i, j], model.ood_logit(fmap[:, :, i, j]))
    # linear head: the image's logits are the mean of the location logits
    torch.testing.assert_close(model(x), cmap.mean(dim=(2, 3)))
    torch.testing.assert_close(model.features(x), fmap.mean(dim=(2, 3)))


def test_an_mlp_classifier_is_applied_at_every_location_without_dropout():
    """MobileNetV3's classifier shape: each Linear as a 1x1 convolution, the activation elementwise, dropout
    off even in training, so the sampler reads the classifier and not a random thinning of it."""
    torch.manual_seed(0)
    head = torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.Hardswish(), torch.nn.Dropout(0.5), torch.nn.Linear(8, 4)
    )
    model = SSODNet(TinyBackbone(), num_classes=4, head=head).train()
    fmap = model.feature_map(torch.rand(2, 3, 16, 16))
    cmap = model.class_map(fmap)
    w1, b1, w2, b2 = head[0].weight, head[0].bias, head[3].weight, head[3].bias
    for i in range(fmap.shape[2]):
        for j in range(fmap.shape[3]):
            hidden = F.hardswish(fmap[:, :, i, j] @ w1.T + b1)
            torch.testing.assert_close(cmap[:, :, i, j], hidden @ w2.T + b2)
    assert model.head is head and model.training


def test_input_is_resized_to_input_size_first():
    torch.manual_seed(0)
    model = SSODNet(TinyBackbone(), num_classes=4, input_size=32)
    x = torch.rand(2, 3, 16, 16)
    assert model.feature_map(x).shape[-2:] == (8, 8)
    up = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(model.features(x), model.encoder.feature_map(up).mean(dim=(2, 3)))
    with pytest.raises(TypeError, match="feature_map"):
        SSODNet(torch.nn.Linear(3, 3), num_classes=2)


# -- detector ---------------------------------------------------------------------------


def test_score_is_log_sigmoid_of_the_ood_head_and_times_msp():
    rng = np.random.default_rng(0)
    features, logits = rng.normal(size=(20, 6)), rng.normal(size=(20, 4)) * 3
    w, b = rng.normal(size=6), 0.3
    data = FeatureSet(features=features, logits=logits)
    p_id = 1 / (1 + np.exp(-(features @ w + b)))
    msp = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).max(1)

    ood = SSOD(w, b, "ood").fit(FeatureSet())
    np.testing.assert_allclose(np.exp(ood.score(data)), p_id, rtol=1e-12)
    both = SSOD(w, b, "ood_x_msp").fit(FeatureSet())
    np.testing.assert_allclose(np.exp(both.score(data)), p_id * msp, rtol=1e-12)
    assert (ood.name, both.name) == ("SSOD", "SSOD x MSP")


def test_score_does_not_tie_where_sigmoid_saturates():
    data = FeatureSet(features=np.array([[40.0], [45.0], [50.0]]))
    s = SSOD([1.0], 0.0).fit(FeatureSet()).score(data)
    assert s[0] < s[1] < s[2] < 0


def test_detector_from_model_uses_the_ood_head():
    torch.manual_seed(0)
    model = SSODNet(TinyBackbone(), num_classes=4).eval()
    x = torch.rand(5, 3, 16, 16)
    with torch.no_grad():
        f = model.features(x)
        expected = F.logsigmoid(model.ood_logit(f)).double().numpy()
    det = SSOD.from_model(model).fit(FeatureSet())
    np.testing.assert_allclose(det.score(FeatureSet(features=f.numpy())), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="6"):
        det.score(FeatureSet(features=np.zeros((2, 3))))
    with pytest.raises(ValueError, match="ood_x_msp"):
        SSOD([1.0], 0.0, "energy")


def test_locality_maps_of_a_dataset_equal_those_of_its_tensors():
    """Fig. 3's maps read batch by batch from a Dataset (ImageNet val) equal those of the same images held
    as tensors, and match the sampler on the class map."""
    from ssdlib.data.memory import ImageTensorDataset
    from ssdlib.ssod.analysis import locality

    torch.manual_seed(0)
    model = SSODNet(TinyBackbone(), num_classes=4)
    images, labels = torch.rand(10, 3, 16, 16), torch.arange(10) % 4
    held = locality(model, (images, labels), gamma=0.6, batch_size=4)
    streamed = locality(model, ImageTensorDataset(images, labels), gamma=0.6, batch_size=4)
    for a, b in (
        (held.confidence, streamed.confidence),
        (held.correct, streamed.correct),
        (held.picks, streamed.picks),
    ):
        np.testing.assert_array_equal(a, b)
    with torch.no_grad():
        expected = sample(model.class_map(model.feature_map(images)), labels, 0.6)
    np.testing.assert_array_equal(held.picks, expected.numpy())
