"""Smoke runs: a profile's notebooks end to end on a CPU in minutes (``ssdlib reproduce --smoke``).

A paper profile trains for GPU-days on data that CI does not have, so an error in it would surface
hours into a real run. A smoke run executes the same notebooks with the same architectures, stems,
input sizes, backbones, balance schemes, detectors and checks, and cuts only what sets the size of
the work:

- data: tiny files in each set's real on-disk format (:mod:`ssdlib.data.tiny`), written under a
  temporary data root, which torchvision's integrity check accepts for this run only;
- pretrained weights: random ones, written as local files in torchvision's format, one per backbone
  (``ssod.pretrained`` and ``classifier.pretrained`` then name that folder), so that the loading
  code runs too; their classifier has the tiny ID set's classes, so it loads, and is scored as
  released, as the real one on ImageNet;
- epochs (:data:`EPOCHS` after a warm-up of 1 where the profile has one), batch sizes
  (:data:`BATCH`), CSI's scoring views, MOS's steps, the synthetic and offline sets' sizes, the
  neighbours of KNN and of the kNN monitor, SSD's clusters (each needs points for a covariance),
  SSD_k's k (it must leave an outlier of each class to score), SSOD's held-out share (at least one
  image to select on), MOS's groups (halves of the tiny set's classes), no data-loading workers, the CPU;
- checks are evaluated and recorded but do not stop a notebook (``checks.enforce: false``): tiny
  models cannot meet them. Every other error does.

:func:`prepare` writes the data and weights and returns the overrides; the runner merges them over
the profile (:func:`ssdlib.profiles.merged`) and passes them to every notebook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ssdlib import plan
from ssdlib.data import offline, tiny
from ssdlib.params import Params

PER_CLASS = 3  # images per class of each tiny OOD set
ID_PER_CLASS = 4  # and of the ID set's splits: k-means, the kNN monitor and SSOD's hold-out need a few
CLASSES = 4  # classes of the tiny folder sets (ImageNet, image folders)
EPOCHS = 1
BATCH = 8
SYNTHETIC = 12  # images per synthetic OOD set
NEIGHBOURS = 5  # KNN's k and the kNN monitor's, below the tiny training sets' size
CLUSTERS = 2  # SSD's k-means clusters at most: each needs a few points for its covariance
HELD_OUT = 0.2  # SSOD's held-out share at least, so that a tiny set holds out an image to select on
SCORE_VIEWS = 2  # CSI's augmented views per image and shift when scoring
MOS_STEPS = [1, 2, 3]  # MOS's schedule: a warm-up step, one at lr, one at lr / 10
OFFLINE = {"train_per_class": 8, "test_per_class": 4, "ood_per_set": 40}
TORCHVISION_CLASSES = 1000  # the classes of torchvision's ImageNet weights


def _warmup(epochs: int) -> int:
    return min(epochs, 1)


def overrides(P: Params, data_root: Path, weights: Path | None) -> dict[str, Any]:
    """The cuts of a smoke run of ``P`` (see the module docstring), as a params overrides mapping."""
    e, c, s, b = P.encoder, P.classifier, P.ssod, P.baselines
    data = {
        "root": str(data_root),
        "num_workers": 0,
        "batch_size": min(P.data.batch_size, 2 * BATCH),
        "synthetic_per_set": SYNTHETIC,
        "offline": OFFLINE,
    }
    knn = b.section("knn")
    out: dict[str, Any] = {
        "device": "cpu",
        "data": data,
        "encoder": {
            "epochs": EPOCHS,
            "supcon_epochs": EPOCHS if e.supcon_epochs is not None else None,
            "warmup_epochs": _warmup(e.warmup_epochs),
            "batch_size": min(e.batch_size, BATCH),
            "save_every": 1,
            "monitor_every": min(e.monitor_every, 1),
            "knn_k": min(e.knn_k, NEIGHBOURS),
        },
        "classifier": {
            "epochs": EPOCHS,
            "warmup_epochs": _warmup(c.warmup_epochs),
            "batch_size": min(c.batch_size, BATCH),
            "save_every": 1,
            "monitor_every": min(c.monitor_every, 1),
        },
        "ssd": {
            "clusters": sorted({min(c, CLUSTERS) for c in P.ssd.clusters}),
            "k": sorted({min(k, PER_CLASS - 1) for k in P.ssd.k}),
        },
        "ssod": {
            "epochs": _warmup(s.warmup_epochs) + EPOCHS,  # its epochs include the warm-up
            "warmup_epochs": _warmup(s.warmup_epochs),
            "batch_size": min(s.batch_size, BATCH),
            "val_fraction": max(s.val_fraction, HELD_OUT) if s.val_fraction else 0.0,
        },
        "baselines": {
            "tune_samples": min(b.tune_samples, 2 * SYNTHETIC),
            "knn": {
                "k": min(knn.k, NEIGHBOURS),
                "grid": {**knn.grid, "k": sorted({min(k, NEIGHBOURS) for k in knn.grid.get("k", [])})},
            },
        },
        "csi": {
            "epochs": EPOCHS,
            "warmup_epochs": _warmup(P.csi.warmup_epochs),
            "batch_size": min(P.csi.batch_size, BATCH),
            "save_every": 1,
            "monitor_every": min(P.csi.monitor_every, 1),
            "knn_k": min(P.csi.knn_k, NEIGHBOURS),
            "ood_samples": min(P.csi.ood_samples, SCORE_VIEWS),
        },
        "mos": {"batch_size": min(P.mos.batch_size, BATCH), "steps": MOS_STEPS},
        "checks": {"enforce": False},
    }
    if s.pretrained != "none":
        out["ssod"]["pretrained"] = str(weights)
    if c.pretrained != "none":
        out["classifier"]["pretrained"] = str(weights)
    return out


def write_weights(P: Params, folder: Path, num_classes: int = TORCHVISION_CLASSES) -> Path:
    """Random weights of each SSOD backbone of ``P`` and of the released CE classifier's arch, as
    torchvision's full network (its classifier for ``num_classes`` classes), saved as torchvision's files
    are (a state dict), named ``<backbone>.pth`` in ``folder``."""
    from torchvision import models  # local: importing torchvision takes seconds

    folder.mkdir(parents=True, exist_ok=True)
    released = [P.encoder.arch] if P.classifier.pretrained != "none" else []
    for name in dict.fromkeys([*plan.backbones(P), *released]):
        torch.manual_seed(P.seed)
        torch.save(getattr(models, name)(weights=None, num_classes=num_classes).state_dict(), folder / f"{name}.pth")
    return folder


def prepare(P: Params, root: Path) -> dict[str, Any]:
    """Write the tiny data sets and random weights of ``P`` under ``root``; return the overrides."""
    data_root = root / "data"
    sets = dict(per_class=PER_CLASS, classes=CLASSES, seed=P.seed)
    id_set = tiny.write_sets(
        [P.data.id_dataset], data_root, id_dataset=P.data.id_dataset, **{**sets, "per_class": ID_PER_CLASS}
    ).get(P.data.id_dataset)
    generated = offline.OOD_SETS if P.data.id_dataset == "offline" else ()
    tiny.write_sets([n for n in P.data.ood_datasets if n not in generated], data_root, **sets)
    # a tiny set holds its highest label (ssdlib.data.tiny), so this is the class count its loader reports
    classes = max(id_set["train"].labels) + 1 if id_set else None
    weights = None
    if P.ssod.pretrained != "none" or P.classifier.pretrained != "none":
        weights = write_weights(P, root / "weights", classes or TORCHVISION_CLASSES)
    cuts = overrides(P, data_root, weights)
    if P.mos.groups is not None and classes is not None:  # the profile's groups name classes the tiny set lacks
        cuts["mos"]["groups"] = [list(range(classes // 2)), list(range(classes // 2, classes))]
    return cuts
