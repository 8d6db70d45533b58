"""Batched augmentations: agreement with torchvision's functional ops, edge settings, reproducibility."""

import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF

from ssdlib.training import augment

OFF = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0)  # every step a no-op


def images(n=6, size=16, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def test_shape_range_dtype():
    x = images(8, 20)
    for y in (augment.simclr_augment(x, generator=seeded(0)), augment.supce_augment(x, generator=seeded(0))):
        assert y.shape == x.shape and y.dtype == x.dtype
        assert y.min() >= 0 and y.max() <= 1


def test_seeded_generator_reproduces_and_resumes():
    x = images()
    g = seeded(1)
    first = augment.simclr_augment(x, generator=g)
    state = g.get_state()
    second = augment.simclr_augment(x, generator=g)
    g.set_state(state)
    torch.testing.assert_close(augment.simclr_augment(x, generator=g), second, rtol=0, atol=0)
    torch.testing.assert_close(augment.simclr_augment(x, generator=seeded(1)), first, rtol=0, atol=0)
    assert not torch.allclose(first, second)
    torch.testing.assert_close(
        augment.supce_augment(x, generator=seeded(2)), augment.supce_augment(x, generator=seeded(2))
    )


def test_samples_are_augmented_independently():
    x = images(1).expand(4, -1, -1, -1)
    y = augment.simclr_augment(x, generator=seeded(3))
    assert all(not torch.allclose(y[0], y[i]) for i in range(1, 4))


def test_all_steps_off_returns_the_input():
    x = images()
    torch.testing.assert_close(augment.simclr_augment(x, generator=seeded(0), **OFF), x, rtol=0, atol=1e-6)
    torch.testing.assert_close(augment.supce_augment(x, generator=seeded(0), padding=0, flip_p=0.0), x)


def test_flip_and_grayscale_at_p_one():
    x = images()
    flipped = augment.simclr_augment(x, generator=seeded(0), **(OFF | dict(flip_p=1.0)))
    torch.testing.assert_close(flipped, x.flip(-1), rtol=0, atol=1e-6)
    gray = augment.simclr_augment(x, generator=seeded(0), **(OFF | dict(gray_p=1.0)))
    torch.testing.assert_close(gray, torch.stack([TF.rgb_to_grayscale(im, 3) for im in x]), rtol=0, atol=1e-6)


def test_jitter_probability_is_respected():
    x = images(400, 4)
    y = augment.simclr_augment(x, generator=seeded(4), **(OFF | dict(jitter_p=0.8)))
    changed = (y - x).abs().flatten(1).amax(1) > 1e-6
    assert 0.72 < changed.float().mean().item() < 0.88  # 400 draws: sd 0.02


@pytest.mark.parametrize(
    "ours, theirs, factors",
    [
        (augment.adjust_brightness, TF.adjust_brightness, [0.6, 1.0, 1.37]),
        (augment.adjust_contrast, TF.adjust_contrast, [0.6, 0.93, 1.4]),
        (augment.adjust_saturation, TF.adjust_saturation, [0.0, 0.6, 1.4]),
        (augment.adjust_hue, TF.adjust_hue, [-0.1, -0.03, 0.0, 0.07, 0.5]),
    ],
)
def test_colour_ops_match_torchvision(ours, theirs, factors):
    x = images(len(factors), 12, seed=5)
    x[0, :, :2, :2] = 0.5  # grey pixels (zero chroma) and saturated corners
    x[-1, :, -2:, -2:] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    got = ours(x, torch.tensor(factors))
    want = torch.stack([theirs(im, f) for im, f in zip(x, factors)])
    torch.testing.assert_close(got, want, rtol=0, atol=2e-6)


def test_colour_jitter_runs_each_sample_in_its_own_order():
    x = images(3, 8, seed=6)
    factors = torch.tensor([[1.3, 0.7, 1.2, 0.08], [0.8, 1.35, 0.6, -0.05], [1.1, 1.1, 1.1, 0.1]])
    order = torch.tensor([[3, 1, 0, 2], [0, 1, 2, 3], [2, 3, 1, 0]])
    apply = torch.tensor([True, True, False])
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    got = augment.color_jitter(x, factors, order, apply)
    for i in range(2):
        want = x[i]
        for op_index in order[i].tolist():
            want = ops[op_index](want, factors[i, op_index].item())
        torch.testing.assert_close(got[i], want, rtol=0, atol=2e-6)
    torch.testing.assert_close(got[2], x[2], rtol=0, atol=0)


def test_resized_crop_matches_torchvision():
    x = images(4, 16, seed=7)
    boxes = torch.tensor([[0, 0, 16, 16], [3, 5, 7, 9], [0, 6, 16, 10], [9, 0, 4, 4]])
    flip = torch.tensor([False, True, False, True])
    got = augment.resized_crop(x, boxes, flip)
    for im, (top, left, h, w), f, out in zip(x, boxes.tolist(), flip, got):
        want = TF.resized_crop(im, top, left, h, w, [16, 16], antialias=True)
        torch.testing.assert_close(out, TF.hflip(want) if f else want, rtol=0, atol=2e-6)


def test_crop_boxes_follow_torchvision_sampling():
    scale, ratio, n = (0.2, 1.0), (3 / 4, 4 / 3), 4000
    boxes = augment.sample_crop_boxes(n, 24, 32, scale, ratio, seeded(8))
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 24).all() and (left + w <= 32).all()
    frac = (h * w).double() / (24 * 32)
    tv = torch.tensor([T.RandomResizedCrop.get_params(torch.empty(3, 24, 32), scale, ratio)[2:] for _ in range(n)])
    tv_frac = (tv[:, 0] * tv[:, 1]).double() / (24 * 32)
    assert frac.mean().item() == pytest.approx(tv_frac.mean().item(), abs=0.015)
    assert frac.min() > 0.18 and (w / h).min() > 0.7 and (w / h).max() < 1.43
    # When no draw can fit, torchvision's deterministic central fallback.
    for shape, bad_ratio in (((24, 32), (4.0, 5.0)), ((32, 24), (0.1, 0.2))):
        fallback = augment.sample_crop_boxes(3, *shape, (1.0, 1.0), bad_ratio, seeded(9))
        i, j, hh, ww = T.RandomResizedCrop.get_params(torch.empty(3, *shape), (1.0, 1.0), bad_ratio)
        assert fallback.tolist() == [[i, j, hh, ww]] * 3


def test_supce_crop_is_a_shifted_padded_window():
    x = images(20, 8, seed=10)
    y = augment.supce_augment(x, generator=seeded(11))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    found = []
    for i in range(len(x)):
        matches = [
            (top, left, f)
            for top in range(9)
            for left in range(9)
            for f in (False, True)
            if torch.equal(y[i], (lambda w: w.flip(-1) if f else w)(padded[i, :, top : top + 8, left : left + 8]))
        ]
        assert matches, f"sample {i} is no padded crop"
        found.append(matches[0])
    assert len({(top, left) for top, left, _ in found}) > 5 and {f for _, _, f in found} == {False, True}


def test_rejects_non_image_batches():
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        augment.simclr_augment(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="float"):
        augment.supce_augment(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_same_seed_same_views_on_gpu():
    x = images(8, 16)
    cpu = augment.simclr_augment(x, generator=seeded(12))
    gpu = augment.simclr_augment(x.cuda(), generator=seeded(12))
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-5)
    torch.testing.assert_close(
        augment.supce_augment(x.cuda(), generator=seeded(13)).cpu(), augment.supce_augment(x, generator=seeded(13))
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_compiled_views_equal_the_eager_ones_on_gpu():
    x = images(32, 16).cuda()
    compiled = torch.compile(augment.simclr_views, dynamic=False)
    eager = augment.simclr_augment(x, generator=seeded(14))
    fused = augment.simclr_augment(x, generator=seeded(14), views=compiled)
    torch.testing.assert_close(fused, eager, rtol=0, atol=1e-5)
