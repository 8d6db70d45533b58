"""The offline benchmark: deterministic, cached (and rebuilt when the cache is corrupt), well formed."""

import numpy as np
import pytest
import torch

from ssdlib.data import offline, shapes
from ssdlib.data.memory import ImageTensorDataset
from ssdlib.params import OfflineBenchmark

TINY = OfflineBenchmark(seed=0, train_per_class=3, test_per_class=2, ood_per_set=12)
N_ID = len(shapes.ID_CLASSES)


@pytest.fixture(scope="module")
def tiny():
    return offline.generate(TINY, 32)


def test_same_seed_same_images(tiny):
    again = offline.generate(TINY, 32)
    for name, (images, labels) in tiny.items():
        assert torch.equal(images, again[name][0]), name
        assert torch.equal(labels, again[name][1]), name


def test_other_seed_other_images(tiny):
    other = offline.generate(TINY.model_copy(update={"seed": 1}), 32)
    for name, (images, _) in tiny.items():
        assert not torch.equal(images, other[name][0]), name


def test_each_set_has_its_own_random_stream(tiny):
    """More OOD images must not change the ID images (nor the other way round)."""
    more_ood = offline.generate(TINY.model_copy(update={"ood_per_set": 20}), 32)
    assert torch.equal(tiny["train"][0], more_ood["train"][0])
    assert torch.equal(tiny["test"][0], more_ood["test"][0])
    more_train = offline.generate(TINY.model_copy(update={"train_per_class": 4}), 32)
    assert torch.equal(tiny["near"][0], more_train["near"][0])


def test_sizes_types_and_labels(tiny):
    expected = {
        "train": (3 * N_ID, N_ID),
        "test": (2 * N_ID, N_ID),
        "near": (12, len(shapes.NEAR_CLASSES)),
        "textures": (12, 3),
        "digits": (12, 10),
        "scenes": (12, 4),
    }
    assert set(tiny) == set(expected)
    for name, (images, labels) in tiny.items():
        n, classes = expected[name]
        assert images.dtype == torch.uint8 and images.shape == (n, 3, 32, 32), name
        assert labels.dtype == torch.long and len(labels) == n, name
        assert 0 <= labels.min() and labels.max() < classes, name
        assert images.float().std() > 10, f"{name}: images are nearly constant"
    # the ID classes are balanced; the held-out classes within one image of balanced
    assert torch.bincount(tiny["train"][1], minlength=N_ID).tolist() == [3] * N_ID
    assert torch.bincount(tiny["near"][1]).tolist() == [2] * len(shapes.NEAR_CLASSES)


def test_other_image_sizes():
    sets = offline.generate(TINY.model_copy(update={"ood_per_set": 4}), 48)
    assert all(images.shape[1:] == (3, 48, 48) for images, _ in sets.values())


def test_shape_templates_have_the_designed_areas():
    """Fraction of the square [-1, 1]^2 each indicator covers, computed by hand."""
    masks = shapes.templates(("circle", "square", "ring", "cross", "frame", "hourglass"), resolution=64)
    area = masks.mean((1, 2, 3)).numpy()
    expected = [
        np.pi * 0.85**2 / 4,
        1.4**2 / 4,
        np.pi * (0.85**2 - 0.5**2) / 4,
        (2 * 0.5 * 1.7 - 0.5**2) / 4,
        (1.6**2 - 1.0**2) / 4,
        2 * 0.85 * 0.85**2 / 4,
    ]
    np.testing.assert_allclose(area, expected, atol=0.005)


def test_objects_are_placed_whole_and_leave_background():
    """Rotation and aspect keep a shape's area (s^2 x its template area) and nothing is cut off by
    the image border; the widest object, a circle at the largest scale (pi 0.85^2 s^2 / 4 of the image), leaves the
    rest to background (SSOD samples OOD there)."""
    rng = np.random.default_rng(0)
    templates = shapes.templates(shapes.ID_CLASSES)
    labels = np.arange(N_ID).repeat(3)
    placed = offline._warp(templates, labels, 32, rng, scale=(0.5, 0.5), max_angle=np.pi)
    template_area = templates.mean((1, 2, 3))[labels]
    np.testing.assert_allclose(placed.mean((1, 2, 3)), 0.25 * template_area, rtol=0.05)
    widest = offline._warp(templates, labels, 32, rng, scale=(offline.OBJECT_SCALE[1],) * 2, max_angle=np.pi)
    circle = np.pi * (0.85 * offline.OBJECT_SCALE[1]) ** 2 / 4
    np.testing.assert_allclose(widest.mean((1, 2, 3)).max(), circle, rtol=0.01)
    assert circle < 0.55


def test_cache_is_written_and_reused(tmp_path, monkeypatch):
    first = offline.load_benchmark(TINY, 32, cache_dir=tmp_path)
    files = list(tmp_path.glob("offline-*.pt"))
    assert len(files) == 1 and offline.cache_key(TINY, 32) in files[0].name
    monkeypatch.setattr(offline, "generate", lambda *a: pytest.fail("the cache was not used"))
    second = offline.load_benchmark(TINY, 32, cache_dir=tmp_path)
    assert isinstance(second["train"], ImageTensorDataset)
    assert torch.equal(first["train"].images, second["train"].images)
    assert second["train"].class_names == list(shapes.ID_CLASSES)


def test_cache_key_changes_with_every_design_constant(monkeypatch):
    keys = {offline.cache_key(TINY, 32)}
    for name in offline.DESIGN:
        with monkeypatch.context() as patch:
            patch.setattr(offline, name, tuple(2 * v for v in np.atleast_1d(getattr(offline, name))))
            keys.add(offline.cache_key(TINY, 32))
    assert len(keys) == len(offline.DESIGN) + 1


def test_cache_key_changes_with_every_parameter():
    keys = {offline.cache_key(TINY, 32), offline.cache_key(TINY, 48)}
    for field, value in [("seed", 1), ("train_per_class", 4), ("test_per_class", 3), ("ood_per_set", 13)]:
        keys.add(offline.cache_key(TINY.model_copy(update={field: value}), 32))
    assert len(keys) == 6


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other_key"])
def test_corrupt_cache_is_rebuilt(tmp_path, damage):
    original = offline.load_benchmark(TINY, 32, cache_dir=tmp_path)
    [path] = tmp_path.glob("offline-*.pt")
    if damage == "garbage":
        path.write_bytes(b"not a torch file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        torch.save({"key": "something else", "sets": {}}, path)
    with pytest.warns(UserWarning, match="rebuilding"):
        rebuilt = offline.load_benchmark(TINY, 32, cache_dir=tmp_path)
    assert torch.equal(rebuilt["test"].images, original["test"].images)
    assert offline._read_cache(path, offline.cache_key(TINY, 32)) is not None  # the rebuilt file is sound


def test_items_are_float_in_unit_range(tmp_path):
    sets = offline.load_benchmark(TINY, 32, cache_dir=tmp_path)
    x, y = sets["digits"][5]
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert x.mul(255).round().to(torch.uint8).equal(sets["digits"].images[5]) and y == int(sets["digits"].labels[5])
