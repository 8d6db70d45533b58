"""Batched data augmentation on image tensors [B, 3, H, W] in [0, 1], on whatever device they live.

SSD trains with torchvision's PIL pipeline, one image at a time in data-loader workers. Here each
step is one batched tensor operation with per-sample random parameters, so augmentation runs on
the training device (as in airbench). The random parameters follow torchvision's sampling rules:

- ``simclr_augment`` (SimCLR, Chen et al. 2020; SSD mode ``ssl``): RandomResizedCrop(scale
  (0.2, 1), ratio (3/4, 4/3), bilinear) -> RandomHorizontalFlip(0.5) -> RandomApply(ColorJitter(
  0.4, 0.4, 0.4, 0.1), p=0.8) -> RandomGrayscale(0.2). No Gaussian blur, as in SSD.
  Like torchvision's ColorJitter, each sample gets its own random order of the four jitter ops.
- ``supce_augment`` (SSD mode ``org``): RandomCrop(padding=4, zero fill) -> RandomHorizontalFlip.

Differences from SSD: images stay float (no uint8 rounding between steps), and the resize uses
torchvision's tensor formula (bilinear, half-pixel centres, clamped at the crop's edge) rather
than PIL's. All randomness comes from ``generator``; parameters are drawn on the generator's
device (CPU when ``generator`` is None, using the global RNG), so a CPU generator gives the same
augmentations on CPU and GPU (the trainers keep theirs on the CPU). A view's parameters travel to
the images' device in one copy, and on a GPU the colour jitter selects with masks rather than
indices: nothing in a view waits for the GPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ssdlib.data.luma import grayscale

CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop tries 10 boxes before its central fallback


def _check_images(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"expected a float batch of RGB images [B, 3, H, W] in [0, 1], got {tuple(x.shape)} {x.dtype}")


def _uniform(shape, low, high, generator, device) -> torch.Tensor:
    """U(low, high) of ``shape`` (low/high may be per-column sequences), drawn with ``generator``."""
    u = torch.rand(shape, generator=generator, device=generator.device if generator is not None else "cpu")
    low, high = torch.as_tensor(low, device=u.device), torch.as_tensor(high, device=u.device)
    return (low + (high - low) * u).to(device)


def _randint(high: torch.Tensor | int, n: int, generator, device) -> torch.Tensor:
    """Integers uniform in {0, ..., high - 1} (``high`` per sample), drawn with ``generator``."""
    high = torch.as_tensor(high, device=device)
    u = _uniform(n, 0, 1, generator, device)
    return torch.minimum((u * high).long(), high - 1)  # guard: float rounding can give u * high == high


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale towards black: clamp(f * x); one factor per sample."""
    return (factor.view(-1, 1, 1, 1) * x).clamp(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean luma: clamp(f * x + (1 - f) * mean(gray(x)))."""
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * grayscale(x).mean((1, 2, 3), keepdim=True)).clamp(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the per-pixel luma: clamp(f * x + (1 - f) * gray(x))."""
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * grayscale(x)).clamp(0, 1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue by ``shift`` turns (in [-0.5, 0.5]) keeping saturation and value.

    Hue in sextants: (g - b)/c if max = r, 2 + (b - r)/c if max = g, else 4 + (r - g)/c, with
    chroma c = max - min. Back to RGB: channel n (5, 3, 1 for r, g, b) is
    v - c * clamp(min(k, 4 - k), 0, 1) with k = (n + hue) mod 6.
    """
    r, g, b = x.unbind(1)
    v, _ = x.max(1)
    c = v - x.min(1).values
    safe_c = torch.where(c > 0, c, torch.ones_like(c))
    h = torch.where(
        v == r, (g - b) / safe_c, torch.where(v == g, 2 + (b - r) / safe_c, 4 + (r - g) / safe_c)
    ) + 6 * shift.view(-1, 1, 1)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = torch.remainder(n + h.unsqueeze(1), 6)
    return v.unsqueeze(1) - c.unsqueeze(1) * torch.minimum(k, 4 - k).clamp(0, 1)


JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def sample_crop_boxes(n: int, height: int, width: int, scale, ratio, generator=None) -> torch.Tensor:
    """Boxes [n, 4] = (top, left, h, w) drawn as torchvision's ``RandomResizedCrop.get_params``.

    Area fraction ~ U(scale), log aspect ratio ~ U(log ratio); the first of 10 draws that fits is
    kept, and samples where none fits get the central crop with the ratio clamped into range.
    """
    area = height * width * _uniform((n, CROP_ATTEMPTS), scale[0], scale[1], generator, "cpu")
    aspect = torch.exp(_uniform((n, CROP_ATTEMPTS), math.log(ratio[0]), math.log(ratio[1]), generator, "cpu"))
    w = torch.round(torch.sqrt(area * aspect)).long()
    h = torch.round(torch.sqrt(area / aspect)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.long().argmax(1, keepdim=True)  # index of the first fitting draw (0 when none)
    w, h, found = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0], fits.any(1)

    fb_w, fb_h = width, height  # central fallback, as torchvision
    if width / height < min(ratio):
        fb_h = int(round(width / min(ratio)))
    elif width / height > max(ratio):
        fb_w = int(round(height * max(ratio)))
    w, h = torch.where(found, w, fb_w), torch.where(found, h, fb_h)
    top = _randint(height - h + 1, n, generator, "cpu")
    left = _randint(width - w + 1, n, generator, "cpu")
    top = torch.where(found, top, (height - h) // 2)
    left = torch.where(found, left, (width - w) // 2)
    return torch.stack([top, left, h, w], 1)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
    """Crop each image to its box (top, left, h, w) and resize back to H x W, bilinearly.

    Output pixel u samples the crop at j + (u + 0.5) * w / W - 0.5, clamped to the crop's pixels:
    torchvision's tensor ``resized_crop`` for crops no larger than the image. ``flip`` [B] (bool)
    mirrors the chosen samples horizontally in the same pass.
    """
    _, _, height, width = x.shape
    boxes = boxes.to(device=x.device, dtype=x.dtype)
    top, left, h, w = boxes.unbind(1)

    def source(start, size, out):  # normalised sampling positions [B, out] (align_corners=False)
        pos = start[:, None] + (torch.arange(out, device=x.device, dtype=x.dtype) + 0.5) * size[:, None] / out - 0.5
        pos = torch.minimum(torch.maximum(pos, start[:, None]), (start + size - 1)[:, None])
        return (2 * pos + 1) / out - 1

    gx, gy = source(left, w, width), source(top, h, height)
    if flip is not None:
        gx = torch.where(flip[:, None], gx.flip(1), gx)
    grid = torch.stack([gx[:, None, :].expand(-1, height, -1), gy[:, :, None].expand(-1, -1, width)], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Apply brightness, contrast, saturation, hue (``factors`` [B, 4]) in per-sample ``order`` [B, 4].

    Samples where ``apply`` is False are returned untouched. On the CPU each op runs only on the
    subset whose step-``s`` op it is (the cost of one pass of the four ops). On a GPU every op runs
    on the whole batch and a mask keeps the chosen samples: four times the arithmetic, but no
    ``nonzero``, which would wait for the GPU 16 times per view. Both give the same values.
    """
    out = x.clone()
    for step in range(4):
        for op_index, op in enumerate(JITTER_OPS):
            chosen = apply & (order[:, step] == op_index)
            if x.is_cuda:
                out = torch.where(chosen.view(-1, 1, 1, 1), op(out, factors[:, op_index]), out)
            else:
                idx = chosen.nonzero()[:, 0]
                out[idx] = op(out[idx], factors[idx, op_index])
    return out


def to_device(draws: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """Move a view's random draws (1-D or 2-D, drawn on the CPU) to ``device`` in one copy."""
    if all(d.device == device for d in draws):
        return draws
    columns = [d.reshape(len(d), -1).double() for d in draws]
    packed = torch.cat(columns, 1)
    packed = packed.pin_memory() if device.type == "cuda" else packed
    moved = packed.to(device, non_blocking=True).split([c.shape[1] for c in columns], 1)
    return [m.reshape(d.shape).to(d.dtype) for m, d in zip(moved, draws)]


def simclr_views(
    x: torch.Tensor,
    boxes: torch.Tensor,
    flip: torch.Tensor,
    factors: torch.Tensor,
    order: torch.Tensor,
    apply: torch.Tensor,
    gray: torch.Tensor,
) -> torch.Tensor:
    """The arithmetic of a SimCLR view, given its random draws on the images' device.

    Crop + flip, colour jitter, grayscale: tensor operations only, so ``torch.compile`` can fuse
    them into a few kernels (the trainers do on CUDA; see :func:`simclr_augment`'s ``views``).
    """
    out = color_jitter(resized_crop(x, boxes, flip), factors, order, apply)
    return torch.where(gray.view(-1, 1, 1, 1), grayscale(out).expand(-1, 3, -1, -1), out)


def simclr_augment(
    x: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    scale=(0.2, 1.0),
    ratio=(3 / 4, 4 / 3),
    flip_p: float = 0.5,
    jitter=(0.4, 0.4, 0.4, 0.1),
    jitter_p: float = 0.8,
    gray_p: float = 0.2,
    views=simclr_views,
) -> torch.Tensor:
    """One SimCLR view of every image in ``x`` [B, 3, H, W] (call twice for the two views).

    ``jitter`` = (brightness, contrast, saturation, hue) strengths: factors ~ U(1 - s, 1 + s) and
    the hue shift ~ U(-hue, hue), as in torchvision's ColorJitter. ``views`` computes the view
    from the draws: :func:`simclr_views`, or a compiled version of it.
    """
    _check_images(x)
    n, _, height, width = x.shape
    src = generator.device if generator is not None else torch.device("cpu")
    boxes = sample_crop_boxes(n, height, width, scale, ratio, generator)
    flip = _uniform(n, 0, 1, generator, src) < flip_p
    b, c, s, hue = jitter
    factors = _uniform((n, 4), [1 - b, 1 - c, 1 - s, -hue], [1 + b, 1 + c, 1 + s, hue], generator, src)
    order = _uniform((n, 4), 0, 1, generator, src).argsort(1)  # a uniform random permutation per sample
    apply = _uniform(n, 0, 1, generator, src) < jitter_p
    gray = _uniform(n, 0, 1, generator, src) < gray_p
    return views(x, *to_device([boxes, flip, factors, order, apply, gray], x.device))


def supce_augment(
    x: torch.Tensor, *, generator: torch.Generator | None = None, padding: int = 4, flip_p: float = 0.5
) -> torch.Tensor:
    """Random crop of the zero-padded image (offsets ~ U{0..2*padding}) and a horizontal flip."""
    _check_images(x)
    n, _, height, width = x.shape
    dev, src = x.device, (generator.device if generator is not None else torch.device("cpu"))
    padded = F.pad(x, (padding,) * 4)
    top = _randint(2 * padding + 1, n, generator, src)
    left = _randint(2 * padding + 1, n, generator, src)
    flip = _uniform(n, 0, 1, generator, src) < flip_p
    top, left, flip = to_device([top, left, flip], dev)
    rows = top[:, None] + torch.arange(height, device=dev)
    cols = left[:, None] + torch.arange(width, device=dev)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    out = padded[torch.arange(n, device=dev)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()  # advanced indexing put channels last
