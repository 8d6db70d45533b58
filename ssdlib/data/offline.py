"""The offline benchmark: a small CIFAR-like OOD benchmark generated on a CPU in seconds.

In-distribution: 10 classes of shapes and letters (``shapes.ID_CLASSES``), upright (tilted by at
most 14 degrees, as photographed objects mostly are), of random grey level, size, aspect and
position, pasted on half-contrast crops of five skimage photos, from sharp to out of focus (object
photos taken with more or less depth of field). An object spans most of its image, as CIFAR's
objects do, and background is left around it (its corners; SSOD samples its OOD locations there).

Every image is grey. SimCLR learns whatever tells two views of one image apart from the other
images of a batch; its colour jitter does not hide a random hue, so a random colour per object
identified an image better than its shape did, and so did a detailed background and a random
rotation (``docs/offline_benchmark.md`` gives the study: SimCLR's kNN accuracy went from 0.13 to
about 0.7 as these cues were removed). Only shape tells the class.

The OOD sets stand in for those of the SSD and SSOD papers:

- ``near``: held-out shape classes on the same backgrounds (CIFAR-10 -> CIFAR-100, near-OOD);
- ``textures``: crops of skimage's texture photos (DTD);
- ``digits``: scikit-learn's digits, upscaled, on plain backgrounds (SVHN);
- ``scenes``: object-free crops of photos never used as backgrounds, at half contrast and as
  sharp or defocused as the ID backgrounds (Places365 / LSUN): ID backgrounds without their
  objects, the case SSOD is built for. Their sharp clutter makes a CE classifier confident now
  and then (MSP's FPR95 about 0.3), while SSOD's head learnt such clutter as background.

Every set draws from its own random stream of ``seed``, so changing one set's size leaves the
others unchanged. The result is cached under ``outputs/cache/`` keyed by a hash of the
generator's parameters and :data:`VERSION`; an unreadable cache file is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from ssdlib import atomic
from ssdlib.data import photos, shapes
from ssdlib.data.luma import grayscale
from ssdlib.data.memory import ImageTensorDataset
from ssdlib.params import OfflineBenchmark

VERSION = 5  # bump whenever the generator's code changes its output, so stale caches are not reused
OOD_SETS = ("near", "textures", "digits", "scenes")
DESCRIPTIONS = {
    "offline": "10 upright shape and letter classes on crops of 5 skimage photos, grey (stands in for CIFAR-10)",
    "near": "6 held-out shape and letter classes on the same kind of backgrounds (CIFAR-100: near-OOD)",
    "textures": "crops of skimage's brick, grass and gravel photos (Textures / DTD)",
    "digits": "scikit-learn's 8x8 digits, upscaled, on plain backgrounds (SVHN)",
    "scenes": "object-free crops of 4 skimage photos never used as ID backgrounds (Places365 / LSUN)",
}
CLASS_NAMES = {
    "train": list(shapes.ID_CLASSES),
    "test": list(shapes.ID_CLASSES),
    "near": list(shapes.NEAR_CLASSES),
    "textures": list(photos.TEXTURES),
    "digits": [str(d) for d in range(10)],
    "scenes": list(photos.SCENES),
}
_STREAMS = {"train": 0, "test": 1, "near": 2, "textures": 3, "digits": 4, "scenes": 5}

BACKGROUND_SCALE = (0.15, 0.45)  # crop side / the photo's shorter side: varied, not one flat region
TEXTURE_SCALE = (0.1, 0.4)
OBJECT_SCALE = (0.75, 0.95)  # half-width of a shape's square / half the image width: objects fill most of it
MAX_TILT = 0.25  # radians (14 degrees): objects are upright, as SimCLR's views never rotate
DIGIT_SCALE = (0.55, 0.8)
DEFOCUS = (0.005, 0.12)  # Gaussian blur sigma of backgrounds / the image side: from sharp to 4 px at 32 px
BACKGROUND_CONTRAST = 0.5  # backgrounds keep half their contrast about their mean: less to match views by
MIN_CONTRAST = 0.2  # grey-level difference between an object and the background under it
DESIGN = (
    "BACKGROUND_SCALE",
    "TEXTURE_SCALE",
    "OBJECT_SCALE",
    "MAX_TILT",
    "DIGIT_SCALE",
    "DEFOCUS",
    "BACKGROUND_CONTRAST",
    "MIN_CONTRAST",
)  # the constants above, which the cache key includes
CHUNK = 256  # images warped at once (bounds the memory of the sampling grids)


def _contrasting_levels(reference: np.ndarray, rng: np.random.Generator, tries: int = 8) -> np.ndarray:
    """Random grey levels [n], each the first of ``tries`` draws at least MIN_CONTRAST away from
    ``reference`` [n] (else the farthest draw): an object stands out from its background, but its
    grey level never tells the class."""
    candidates = rng.uniform(0, 1, (len(reference), tries))
    distance = np.abs(candidates - reference[:, None])
    far = distance >= MIN_CONTRAST
    pick = np.where(far.any(1), far.argmax(1), distance.argmax(1))
    return candidates[np.arange(len(reference)), pick]


def _warp(
    masks: torch.Tensor,
    index: np.ndarray,
    size: int,
    rng: np.random.Generator,
    scale: tuple[float, float],
    max_angle: float,
) -> torch.Tensor:
    """Place mask ``index[i]`` (of masks [M, 1, R, R] spanning [-1, 1]^2) in image i: [n, 1, size, size].

    Each mask gets a random half-width s (in image half-widths), aspect a, rotation and a centre
    that keeps it inside the image. Sampling at twice the size and averaging 2x2 anti-aliases edges.
    """
    n = len(index)
    s = rng.uniform(*scale, n)
    aspect = np.exp(rng.uniform(-0.15, 0.15, n))
    angle = rng.uniform(-max_angle, max_angle, n)
    room = np.clip(1 - s * np.maximum(aspect, 1 / aspect), 0, None)
    centre = rng.uniform(-1, 1, (n, 2)) * room[:, None]
    cos, sin = np.cos(angle), np.sin(angle)
    # affine_grid maps image coordinates p to mask coordinates q = A (p - centre),
    # A = diag(1 / (s a), a / s) @ rotation(-angle)
    a = np.stack(
        [np.stack([cos / (s * aspect), sin / (s * aspect)], 1), np.stack([-sin * aspect / s, cos * aspect / s], 1)], 1
    )
    b = -np.einsum("nij,nj->ni", a, centre)
    theta = torch.tensor(np.concatenate([a, b[:, :, None]], 2), dtype=torch.float32)
    out = torch.empty((n, 1, size, size))
    for start in range(0, n, CHUNK):
        part = slice(start, start + CHUNK)
        grid = F.affine_grid(theta[part], [len(index[part]), 1, 2 * size, 2 * size], align_corners=False)
        sampled = F.grid_sample(masks[index[part]], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out[part] = F.avg_pool2d(sampled, 2)
    return out


def _paint(backgrounds: torch.Tensor, masks: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Composite a lit, slightly translucent object (masks [n, 1, S, S]) of a contrasting grey level
    onto grey backgrounds [n, 1, S, S], then add sensor noise."""
    n, _, size, _ = backgrounds.shape
    coverage = masks.sum((2, 3)).clamp_min(1e-6)
    under = ((backgrounds * masks).sum((2, 3)) / coverage).numpy()[:, 0]
    level = torch.tensor(_contrasting_levels(under, rng), dtype=torch.float32)[:, None, None, None]
    # a linear light gradient in a random direction, so objects are not flat stencils
    direction = rng.normal(size=(n, 2))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    gain = torch.tensor(rng.uniform(0, 0.3, n)[:, None] * direction, dtype=torch.float32)
    ramp = torch.linspace(-1, 1, size)
    light = 1 + gain[:, 0, None, None] * ramp[None, None, :] + gain[:, 1, None, None] * ramp[None, :, None]
    painted = (level * light[:, None]).clamp(0, 1)
    alpha = masks * torch.tensor(rng.uniform(0.85, 1.0, n), dtype=torch.float32)[:, None, None, None]
    images = backgrounds * (1 - alpha) + painted * alpha
    return images + _noise(rng, images.shape)


def _noise(rng: np.random.Generator, shape) -> torch.Tensor:
    """Gaussian pixel noise with a random strength in [0, 0.03] per image."""
    sigma = rng.uniform(0, 0.03, shape[0]).reshape(-1, 1, 1, 1)
    return torch.from_numpy(rng.standard_normal(shape, dtype=np.float32) * sigma.astype(np.float32))


def _backgrounds(names: tuple[str, ...], n: int, size: int, rng: np.random.Generator):
    """Grey crops [n, 1, S, S] of the named photos at BACKGROUND_CONTRAST about each crop's mean,
    each blurred by a random sigma in DEFOCUS * size: the background of an object in focus, from a
    sharp one (clutter that can pass for part of an object) to a smooth blur."""
    import torchvision.transforms.v2.functional as TF  # only when generating: the cache spares the import

    crops, sources = photos.crops_of(names, n, size, rng, BACKGROUND_SCALE)
    crops = grayscale(crops)
    mean = crops.mean((2, 3), keepdim=True)
    crops = mean + BACKGROUND_CONTRAST * (crops - mean)
    sigmas = rng.uniform(*DEFOCUS, n) * size
    radius = int(np.ceil(3 * sigmas.max()))
    for i, sigma in enumerate(sigmas):
        crops[i] = TF.gaussian_blur(crops[i], [2 * radius + 1] * 2, [float(sigma)] * 2)
    return crops, sources


def _objects(classes: tuple[str, ...], n: int, size: int, rng: np.random.Generator):
    labels = rng.permutation(np.arange(n) % len(classes))
    backgrounds, _ = _backgrounds(photos.ID_BACKGROUNDS, n, size, rng)
    masks = _warp(shapes.templates(classes), labels, size, rng, OBJECT_SCALE, max_angle=MAX_TILT)
    return _paint(backgrounds, masks, rng), torch.from_numpy(labels)


def _textures(n: int, size: int, rng: np.random.Generator):
    crops, source = photos.crops_of(photos.TEXTURES, n, size, rng, TEXTURE_SCALE)
    return grayscale(crops), source


def _digits(n: int, size: int, rng: np.random.Generator):
    digits = load_digits()
    pick = rng.choice(len(digits.images), n, replace=n > len(digits.images))
    ink = torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None]
    masks = _warp(ink, pick, size, rng, DIGIT_SCALE, max_angle=0.2)
    paper = torch.tensor(rng.uniform(0, 1, n), dtype=torch.float32)[:, None, None, None].repeat(1, 1, size, size)
    return _paint(paper, masks, rng), torch.from_numpy(digits.target[pick]).long()


def _scenes(n: int, size: int, rng: np.random.Generator):
    return _backgrounds(photos.SCENES, n, size, rng)


def generate(config: OfflineBenchmark, size: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Every set of the benchmark as (uint8 images [N, 3, size, size], labels [N])."""

    def rng(name: str) -> np.random.Generator:
        return np.random.default_rng([config.seed, _STREAMS[name]])

    n_id = len(shapes.ID_CLASSES)
    made = {
        "train": _objects(shapes.ID_CLASSES, config.train_per_class * n_id, size, rng("train")),
        "test": _objects(shapes.ID_CLASSES, config.test_per_class * n_id, size, rng("test")),
        "near": _objects(shapes.NEAR_CLASSES, config.ood_per_set, size, rng("near")),
        "textures": _textures(config.ood_per_set, size, rng("textures")),
        "digits": _digits(config.ood_per_set, size, rng("digits")),
        "scenes": _scenes(config.ood_per_set, size, rng("scenes")),
    }
    return {name: (_to_uint8(images), labels.long()) for name, (images, labels) in made.items()}


def _to_uint8(grey: torch.Tensor) -> torch.Tensor:
    """Grey images [n, 1, S, S] as uint8 RGB [n, 3, S, S]: every model takes three channels."""
    return grey.clamp(0, 1).mul(255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


def cache_key(config: OfflineBenchmark, size: int) -> str:
    """Hash of everything the generated images depend on: the sizes and seed, :data:`VERSION` and the
    design constants (a study that patches one, as ``docs/offline_benchmark.md`` describes, gets its own cache)."""
    design = {name: globals()[name] for name in DESIGN}
    spec = {"version": VERSION, "image_size": size, "design": design, **config.model_dump()}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$SSDLIB_CACHE`` if set, else ``outputs/cache`` in the project."""
    env = os.environ.get("SSDLIB_CACHE")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "outputs" / "cache"


def _read_cache(path: Path, key: str):
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, weights_only=True)
        sets = stored["sets"]
        if stored["key"] != key or set(sets) != set(_STREAMS):
            raise ValueError("it holds a different benchmark")
        for images, labels in sets.values():
            if images.dtype != torch.uint8 or images.ndim != 4 or len(labels) != len(images):
                raise ValueError("a set has the wrong type or shape")
        return sets
    except Exception as err:  # any unreadable file is rebuilt, whatever broke it
        warnings.warn(f"{path}: unreadable offline benchmark cache ({err}); rebuilding it", stacklevel=3)
        return None


def _write_cache(path: Path, key: str, sets) -> None:
    try:
        atomic.write_with(path, partial(torch.save, {"key": key, "sets": sets}))  # a reader never sees half a file
    except OSError as err:
        warnings.warn(
            f"could not cache the offline benchmark at {path} ({err}); it will be generated again next time",
            stacklevel=3,
        )


def load_benchmark(
    config: OfflineBenchmark, size: int, cache_dir: str | Path | None = None
) -> dict[str, ImageTensorDataset]:
    """The benchmark's sets (train, test, near, textures, digits, scenes), from the cache or generated."""
    key = cache_key(config, size)
    path = Path(cache_dir or default_cache_dir()) / f"offline-{key}.pt"
    sets = _read_cache(path, key)
    if sets is None:
        sets = generate(config, size)
        _write_cache(path, key, sets)
    return {name: ImageTensorDataset(images, labels, CLASS_NAMES[name]) for name, (images, labels) in sets.items()}
