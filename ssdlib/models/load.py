"""Load SSD and SupContrast checkpoints into ssdlib models, safely by default.

File layouts met in the wild (see SSD's ``utils.py`` ``save_checkpoint`` and the loader in its
``eval_ssd.py``, and SupContrast's ``util.py`` ``save_model``):

- SSD ``train.py``: ``{"epoch", "arch", "state_dict", "best_prec1", "optimizer"}``;
- SupContrast (the released SSD models): ``{"opt", "model", "optimizer", "epoch"}``, where ``opt`` is
  an ``argparse.Namespace``, so the file cannot be read with ``weights_only=True``;
- a bare state dict.

Keys may carry DataParallel's ``module.`` (``encoder.module.conv1.weight``, or a leading
``module.``), and SupContrast's CE model names its classifier ``fc`` where ssdlib (like SSD) says
``head``. :func:`load_checkpoint` undoes both, loads the encoder strictly and the head when it fits.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from torch import nn

from ssdlib.log import get as get_logger

LOG = get_logger(__name__)

_SHOWN = 5  # keys listed per kind of mismatch in error messages
# torch's two wordings: "Unsupported global: GLOBAL argparse.Namespace ..." (an allow-list miss) and
# "Trying to load unsupported GLOBAL posix.system whose module posix is blocked" (a blocked module)
_UNSAFE_GLOBAL = re.compile(r"unsupported (?:global: )?GLOBAL (\S+)", re.IGNORECASE)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the model; the message says why and what to do."""


def read_checkpoint(path: str | Path, *, trust: bool = False):
    """``torch.load`` on CPU with ``weights_only=not trust``, turning failures into clear errors.

    Safe loading (``weights_only=True``) only rebuilds tensors and plain containers. Files that need
    more (SupContrast's ``argparse.Namespace``) raise :class:`CheckpointError` unless ``trust=True``,
    which unpickles fully and so can run code embedded in the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if trust:
        LOG.warning(f"{path}: unpickled fully (--trust-checkpoint): any code hidden in the file runs now")
    try:
        with warnings.catch_warnings():  # torch's note on a pickle's protocol would come before the one line
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError, UnpicklingError, ...
        message = str(err)
        unsafe = _UNSAFE_GLOBAL.search(message)
        kind = _kind(path)
        if kind == "neither":
            start = path.read_bytes()[:8]
            raise CheckpointError(
                f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle: "
                f"{f'it starts with {start!r}' if start else 'it is empty'}); download or save it again, or check "
                "that it is the file you meant"
            ) from None
        if kind == "pickle" and not trust and not unsafe:
            raise CheckpointError(
                f"{path}: a plain pickle (not a PyTorch zip archive) that safe loading cannot read: it holds "
                "Python objects, and full unpickling can run code hidden in the file. If you trust where it came "
                "from, load it with trust=True (CLI: --trust-checkpoint)."
            ) from None
        if unsafe and not trust:
            raise CheckpointError(
                f"{path}: the file holds Python objects beyond tensors ({unsafe.group(1)}; SupContrast "
                "stores its argparse options this way, but a file that calls functions such as os.system "
                "looks the same), so safe loading (weights_only=True) refuses it: "
                "full unpickling can run code hidden in the file. If you trust where it came from, load "
                "it with trust=True (CLI: --trust-checkpoint)."
            ) from None
        first_line = message.strip().splitlines()[0] if message.strip() else ""
        said = "" if first_line.startswith("Weights only load failed") else f" ({type(err).__name__}: {first_line})"
        raise CheckpointError(
            f"{path}: cannot be read as a PyTorch checkpoint; it looks corrupt or truncated{said}. "
            "Download or save it again."
        ) from None


def _kind(path: Path) -> str:
    """What a file that ``torch.load`` refused starts as: "zip" (torch.save's archive), "pickle" (a legacy
    torch.save, or any pickle) or "neither" (random bytes, a text file): torch's own error advises full
    unpickling for all three."""
    with path.open("rb") as fh:
        head = fh.read(2)
    if head == b"PK":
        return "zip"
    return "pickle" if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5 else "neither"


def state_dict_of(content, source: str = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The weights inside a loaded checkpoint: its ``model`` or ``state_dict`` entry, or the dict itself."""
    if isinstance(content, dict):
        for key in ("model", "state_dict"):
            if key in content:
                content = content[key]
                break
    if (
        not isinstance(content, dict)
        or not content
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in content.items())
    ):
        raise CheckpointError(
            f"{source}: found no state dict (expected a dict of tensors, or one under 'model' or 'state_dict')"
        )
    return content


def canonical_keys(state_dict: dict[str, torch.Tensor], target_keys) -> dict[str, torch.Tensor]:
    """Drop DataParallel's ``module.`` wherever it sits; map SupContrast's ``fc.*`` to ``head.*``.

    ``fc`` is renamed only when the target model has no ``fc`` of its own.
    """
    rename_fc = not any(k.startswith("fc.") for k in target_keys)
    out = {}
    for key, value in state_dict.items():
        key = re.sub(r"(^|\.)module\.", r"\1", key)
        if rename_fc and key.startswith("fc."):
            key = "head." + key[len("fc.") :]
        out[key] = value
    return out


def _mismatches(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> list[str]:
    """Lines describing missing, unexpected and wrongly shaped keys (empty when ``given`` fits)."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k}: file {tuple(given[k].shape)}, model {tuple(expected[k].shape)}"
        for k in expected
        if k in given and given[k].shape != expected[k].shape
    ]
    lines = []
    for what, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f", ... ({len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
            lines.append(f"  {len(items)} {what}: {', '.join(items[:_SHOWN])}{more}")
    return lines


def load_state_dict_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with an error that lists what does not fit."""
    problems = _mismatches(module.state_dict(), state_dict)
    if problems:
        raise CheckpointError(
            f"{source} does not fit the {type(module).__name__} (wrong arch or width?):\n" + "\n".join(problems)
        )
    module.load_state_dict(state_dict)


def load_checkpoint(path: str | Path, model: nn.Module, *, trust: bool = False, encoder_only: bool = False) -> dict:
    """Load an SSD / SupContrast / ssdlib checkpoint into ``model`` (an ``SSLNet`` or ``SupNet``).

    The encoder (``encoder.*``) must fit exactly. The rest (the head) must fit too, unless
    ``encoder_only=True`` (enough for SSD scoring, which uses encoder features): then a head that
    does not fit is skipped with a warning. Returns the file's other entries (epoch, arch, opt, ...),
    without the weights and optimizer state.
    """
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    content = read_checkpoint(path, trust=trust)
    expected = model.state_dict()
    given = canonical_keys(state_dict_of(content, str(path)), expected)

    def part(d, encoder):
        return {k: v for k, v in d.items() if k.startswith("encoder.") == encoder}

    encoder_problems = _mismatches(part(expected, True), part(given, True))
    if encoder_problems:
        raise CheckpointError(
            f"{path}: the encoder in the file does not fit the model's "
            f"{type(getattr(model, 'encoder', model)).__name__} "
            "(wrong arch or width?):\n" + "\n".join(encoder_problems)
        )
    head_problems = _mismatches(part(expected, False), part(given, False))
    if head_problems and not encoder_only:
        raise CheckpointError(
            f"{path}: the encoder fits but the head does not (pass encoder_only=True to load only the "
            "encoder, e.g. for SSD scoring):\n" + "\n".join(head_problems)
        )
    if head_problems:
        warnings.warn(f"{path}: head skipped, it does not fit the model:\n" + "\n".join(head_problems), stacklevel=2)
        given = part(given, True)
    model.load_state_dict(given, strict=not head_problems)
    meta = content if isinstance(content, dict) and ("model" in content or "state_dict" in content) else {}
    return {k: v for k, v in meta.items() if k not in ("model", "state_dict", "optimizer")}
