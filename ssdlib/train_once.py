"""Train once per output folder: the one cache of every trained model (SSD's encoders, the CE
classifier, GODIN, each SSOD run).

A model is kept in a checkpoint file with its **identity**, everything that determines its weights:

- what counts: the training method and its whole params section (the recipe; for SSOD the ``ssod``
  section with the run's overrides), the seed, the network's shape (arch, width, or SSOD's backbone),
  what names the ID data (``data.id_dataset``, ``image_size``, ``normalize``, the offline generator's
  sizes and seed) and a fingerprint of the training images themselves
  (``ssdlib.training.checkpoint.data_fingerprint``: size, shape, classes, a hash of a sample);
- what does not: monitoring (``save_every``, ``knn_k``, ``monitor_every``), ``compile`` and
  ``deterministic`` (float rounding only), how the data is read (``data.root``, ``batch_size`` of
  scoring, workers), and SSOD's scoring and ablation lists (``score``, ``alphas``, ...).

So moving the data folder retrains nothing, and changed images retrain everything they feed. On
asking for a model (:func:`slot`, which holds the file's lock, so a second process asking stops
at once): a finished checkpoint of the same identity is reused, an unfinished one resumed, and one of
another identity is never deleted: it is kept beside as ``*.other-params-<time>.pt`` and the model
trained afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ssdlib import locks, progress
from ssdlib.params import Params
from ssdlib.training import checkpoint as ckpt
from ssdlib.training.batches import Images

DATA_KEYS = {"id_dataset", "image_size", "normalize", "offline"}  # what names the ID data (not where it lies)


def data_identity(P: Params, train: Images) -> dict[str, Any]:
    """The data part of an identity: the names and sizes of ``P.data`` and the fingerprint of ``train``."""
    return {**P.data.model_dump(mode="json", include=DATA_KEYS), "images": ckpt.data_fingerprint(train)}


def _differences(saved: dict[str, Any], identity: dict[str, Any]) -> str:
    """Why a checkpoint of identity ``saved`` is not the model of ``identity``: its images, or the params
    that differ (at most five, each with both values)."""
    images = ckpt.data_differences((saved.get("data") or {}).get("images"), identity["data"]["images"])
    if images:
        return f"other data ({'; '.join(images)})"
    changed = _changed_keys(saved, identity)
    shown = "; ".join(changed[:5]) + (f"; ... ({len(changed) - 5} more)" if len(changed) > 5 else "")
    return f"other params ({shown})" if changed else "other params"


def _changed_keys(saved: Any, now: Any, key: str = "") -> list[str]:
    """``key.sub: saved -> now`` for each leaf that differs between two nested mappings."""
    if isinstance(saved, dict) and isinstance(now, dict):
        return [
            line
            for k in dict.fromkeys([*saved, *now])
            for line in _changed_keys(saved.get(k), now.get(k), f"{key}.{k}" if key else str(k))
        ]
    return [] if saved == now else [f"{key}: {saved!r} -> {now!r}"]


@contextmanager
def slot(path: Path, identity: dict[str, Any], what: str, log: Callable[[str], None]) -> Iterator[dict | None]:
    """Hold ``path``'s lock (``what`` says why, for a second process) and give its checkpoint state when it
    was trained with ``identity`` (finished or not); None when there is none, after keeping one of another
    identity aside (see the module docstring). ``identity["data"]`` is :func:`data_identity`."""
    with locks.holding(locks.checkpoint_lock(path), what):
        state = ckpt.load(path) if path.is_file() else None
        saved = (state or {}).get("params", {}).get("identity")
        if state is not None and saved != identity:
            kept = path.with_name(f"{path.stem}.other-params-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
            path.replace(kept)
            why = _differences(saved or {}, identity)
            message = f"{path} was trained with {why}; kept it as {kept.name} and training a new one"
            log(message)
            progress.logger().info(message)  # on the terminal of `ssdlib reproduce`, not only in the notebook
            state = None
        yield state
