"""The object classes of the offline benchmark: filled shapes and block letters as masks.

Each shape is an indicator function on the square [-1, 1]^2 (u to the right, v up). The ID
classes and the held-out near-OOD classes are chosen so that several held-out ones resemble an
ID one (frame ~ square and ring, semicircle ~ circle and crescent, hourglass ~ triangle,
L and E ~ T and cross), as CIFAR-100 classes resemble CIFAR-10 ones, and so that no held-out
shape is a rotation of an ID shape (objects are drawn upright, tilted by at most 14 degrees).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from matplotlib.path import Path as PolygonPath

Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _regular_polygon(corners: int, radius: float) -> Mask:
    angles = np.pi / 2 + 2 * np.pi * np.arange(corners) / corners
    return _polygon(np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1))


def _star(points: int, outer: float, inner: float) -> Mask:
    angles = np.pi / 2 + np.pi * np.arange(2 * points) / points
    radii = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return _polygon(np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1))


def _polygon(vertices) -> Mask:
    path = PolygonPath(np.asarray(vertices, dtype=float))
    return lambda u, v: path.contains_points(np.stack([u.ravel(), v.ravel()], 1)).reshape(u.shape)


def _box(u, v, u0, u1, v0, v1):
    return (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)


def _heart(u, v):
    x, y = 1.3 * u, 1.3 * v + 0.25  # the classic sextic heart curve, centred in the square
    return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0


SHAPES: dict[str, Mask] = {
    # in-distribution classes
    "circle": lambda u, v: u**2 + v**2 <= 0.85**2,
    "square": lambda u, v: np.maximum(abs(u), abs(v)) <= 0.7,
    "triangle": _regular_polygon(3, 0.95),
    "star": _star(5, 0.95, 0.4),
    "cross": lambda u, v: _box(u, v, -0.25, 0.25, -0.85, 0.85) | _box(u, v, -0.85, 0.85, -0.25, 0.25),
    "ring": lambda u, v: (u**2 + v**2 <= 0.85**2) & (u**2 + v**2 >= 0.5**2),
    "arrow": _polygon([(-0.9, 0.2), (0.15, 0.2), (0.15, 0.6), (0.9, 0), (0.15, -0.6), (0.15, -0.2), (-0.9, -0.2)]),
    "heart": _heart,
    "crescent": lambda u, v: (u**2 + v**2 <= 0.85**2) & ((u - 0.38) ** 2 + v**2 > 0.7**2),
    "letter_T": lambda u, v: _box(u, v, -0.8, 0.8, 0.45, 0.85) | _box(u, v, -0.2, 0.2, -0.85, 0.45),
    # held-out classes (near-OOD)
    "pentagon": _regular_polygon(5, 0.9),
    "semicircle": lambda u, v: (u**2 + (v + 0.35) ** 2 <= 0.9**2) & (v >= -0.35),
    "frame": lambda u, v: (np.maximum(abs(u), abs(v)) <= 0.8) & (np.maximum(abs(u), abs(v)) >= 0.5),
    "letter_L": lambda u, v: _box(u, v, -0.6, -0.2, -0.85, 0.85) | _box(u, v, -0.6, 0.6, -0.85, -0.45),
    "letter_E": lambda u, v: (
        _box(u, v, -0.6, -0.2, -0.85, 0.85)
        | _box(u, v, -0.6, 0.6, 0.55, 0.85)
        | _box(u, v, -0.6, 0.5, -0.15, 0.15)
        | _box(u, v, -0.6, 0.6, -0.85, -0.55)
    ),
    "hourglass": lambda u, v: (abs(u) <= 0.85 * abs(v)) & (abs(v) <= 0.85),
}
ID_CLASSES = ("circle", "square", "triangle", "star", "cross", "ring", "arrow", "heart", "crescent", "letter_T")
NEAR_CLASSES = ("pentagon", "semicircle", "frame", "letter_L", "letter_E", "hourglass")


def templates(names: tuple[str, ...], resolution: int = 128, supersample: int = 4) -> torch.Tensor:
    """Anti-aliased masks [K, 1, R, R] in [0, 1]; row 0 is the top (v = 1)."""
    n = resolution * supersample
    centres = (np.arange(n) + 0.5) / n * 2 - 1
    u, v = np.meshgrid(centres, -centres)
    masks = torch.tensor(np.stack([SHAPES[name](u, v) for name in names]), dtype=torch.float32)
    return torch.nn.functional.avg_pool2d(masks[:, None], supersample)
