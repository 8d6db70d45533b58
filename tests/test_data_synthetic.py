"""SSD's synthetic OOD sets: blobs exactly as SSD defines them, noise with the stated distributions."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.stats import truncnorm

from ssdlib.data.synthetic import SyntheticImages, blob_image


@pytest.mark.parametrize("size", [32, 20])
def test_blobs_equal_an_independent_scipy_computation(size):
    """Bernoulli(0.7) -> ONE 3-D blur over H, W and channels (sigma 1.5, nearest, truncate 4) -> < 0.75 zeroed."""
    blobs = SyntheticImages("blobs", 6, size, seed=3)
    for i in range(6):
        draws = blobs.rng(i).binomial(n=1, p=0.7, size=(size, size, 3)).astype(np.float64)
        expected = gaussian_filter(draws, sigma=1.5, mode="nearest", truncate=4.0)
        expected[expected < 0.75] = 0
        image, label = blobs[i]
        assert label == 0 and image.shape == (3, size, size)
        np.testing.assert_allclose(image.numpy(), expected.transpose(2, 0, 1), atol=1e-6)


def test_blobs_blur_across_channels_not_per_channel():
    rng = np.random.default_rng(0)
    image = blob_image(np.random.default_rng(0), 16)
    draws = rng.binomial(n=1, p=0.7, size=(16, 16, 3)).astype(np.float64)
    per_channel = np.stack([gaussian_filter(draws[..., c], 1.5, mode="nearest", truncate=4.0) for c in range(3)], -1)
    per_channel[per_channel < 0.75] = 0
    assert not np.allclose(image, per_channel)


def test_blobs_statistics_match_the_reference():
    """About 22 % of pixels stay non-zero, with a maximum near 0.87, as SSD's ``data.py`` ``blobs`` gives."""
    x = torch.stack([SyntheticImages("blobs", 40, 32, seed=0)[i][0] for i in range(40)])
    assert 0.17 < (x > 0).float().mean() < 0.27
    assert x[x > 0].min() >= 0.75 and 0.82 < x.max() < 0.95


def test_noise_distributions():
    g = torch.stack([SyntheticImages("gaussian", 30, 32, seed=0)[i][0] for i in range(30)])
    u = torch.stack([SyntheticImages("uniform", 30, 32, seed=0)[i][0] for i in range(30)])
    assert g.min() >= 0 and g.max() <= 1 and u.min() >= 0 and u.max() <= 1
    # N(0.5, 0.25^2) clipped: P(x = 0) = P(x = 1) = Phi(-2) = 0.0228
    assert abs(g.mean() - 0.5) < 0.01 and abs((g == 0).float().mean() - 0.0228) < 0.004
    inner = g[(g > 0) & (g < 1)]
    assert abs(inner.std() - 0.25 * truncnorm(-2, 2).std()) < 0.005  # the unclipped part: N truncated to 2 sigma
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.003


def test_images_do_not_depend_on_reading_order():
    a = SyntheticImages("gaussian", 10, 16, seed=0)
    b = SyntheticImages("gaussian", 10, 16, seed=0)
    last_first = [b[i][0] for i in reversed(range(10))][::-1]
    assert all(torch.equal(a[i][0], last_first[i]) for i in range(10))
    assert not torch.equal(a[0][0], SyntheticImages("gaussian", 10, 16, seed=1)[0][0])
    assert not torch.equal(a[0][0], a[1][0])


def test_bad_kind_and_index():
    with pytest.raises(ValueError, match="blobs"):
        SyntheticImages("stripes", 3, 8)
    with pytest.raises(IndexError):
        SyntheticImages("uniform", 3, 8)[3]
