"""What SSD's own scripts do when a flag is not given, for ``ssdlib train`` and ``ssdlib eval``
without a ``--params`` profile, so that the same command line means the same run.

From the SSD repository: ``train.py`` (``--dataset cifar10``, ``--data-dir ./datasets/``,
``--size 32``, no normalisation, warm-up only with ``--warmup``, fp32) and ``eval_ssd.py`` (its OOD
list ``["cifar10", "cifar100", "svhn", "texture", "blobs"]`` less the ID set, batch 256). The
training hyper-parameters (500 epochs, batch 512, lr 0.5, momentum 0.9, weight decay 1e-4,
T 0.5, the released loss scale and momentum) are the params schema's defaults already.
"""

from __future__ import annotations

import os
from typing import Any

from ssdlib.cli import CALLER_DIR

DATA_DIR = "./datasets"  # train.py / eval_ssd.py's --data-dir
OOD_SETS = ("cifar10", "cifar100", "svhn", "textures", "blobs")  # eval_ssd.py, less the ID set
DATA = {"id_dataset": "cifar10", "image_size": 32, "batch_size": 256, "normalize": False}


def data_root(flag: str | None) -> str:
    """``--data-dir``, else ``$SSDLIB_DATA``, else SSD's ``./datasets`` in the folder the command was
    typed in."""
    return (
        flag
        or os.environ.get("SSDLIB_DATA")
        or os.path.normpath(os.path.join(os.environ.get(CALLER_DIR, "."), DATA_DIR))
    )


def profile(name: str, id_dataset: str | None, *, ood: bool) -> dict[str, Any]:
    """A params mapping of SSD's defaults for the ID set ``id_dataset`` (SSD's when None), with
    eval_ssd.py's OOD sets when ``ood``; ``train.py`` trains in fp32 and warms up only when asked."""
    chosen = id_dataset or DATA["id_dataset"]
    data = {**DATA, "id_dataset": chosen, "ood_datasets": [d for d in OOD_SETS if d != chosen] if ood else []}
    return {"profile": name, "data": data, "encoder": {"warmup_epochs": 0, "amp": False}}
