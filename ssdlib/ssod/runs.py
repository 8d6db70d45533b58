"""SSOD models of a params profile, trained once per output folder (scoring: ``ssdlib.ssod.scoring``).

``trained(P, bundle, output_dir, **overrides)`` gives the model of ``P.ssod`` with some fields
overridden (``alpha=0.0`` is the vanilla classifier of the same backbone, ``balance="DR"`` an
ablation run). With ``vanilla: released`` the vanilla classifier is the pretrained network scored as
it is, as the SSOD paper's Table 6 compares (nothing trains; :func:`released`); with ``fine_tuned`` it
is trained like any run. Each run is kept in ``<output_dir>/checkpoints/ssod_<backbone>_<hash>.pt``, where
the hash covers its identity (:mod:`ssdlib.train_once`: the training fields of the section, the seed
and the ID data), so a finished run is loaded, a killed one resumed, and a changed one trained afresh.

The CE-only warm-up (``warmup_epochs``) does not depend on alpha, the balance scheme or the
number of epochs, so runs that differ only in those share it: its end state, random state
included, is saved once (``ssod-warmup_<backbone>_<hash>.pt``) and every such run continues
from it, with the same weights it would reach from scratch. That keeps the offline ablations
(Tables 4-6) within the CPU budget.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Subset

from ssdlib import metrics, train_once
from ssdlib.data import held_or_streamed, preprocessing
from ssdlib.detectors.ssod import SSOD
from ssdlib.experiment import CHECKPOINT_DIR, resolve_device
from ssdlib.feature_set import FeatureSet
from ssdlib.log import get as get_logger
from ssdlib.params import Params, SSODParams
from ssdlib.ssod.build import new_ssod_net, released, settings
from ssdlib.ssod.model import SSODNet
from ssdlib.ssod.scoring import ssod_features
from ssdlib.ssod.train import SSODHistory, SSODRecipe, SSODTrainer, split_validation
from ssdlib.training import checkpoint as ckpt
from ssdlib.training.batches import Images

if TYPE_CHECKING:
    from ssdlib.data.registry import DatasetBundle

LOG = get_logger(__name__)

# fields that change nothing in the trained weights
NOT_TRAINING = {"score", "ablation_ood", "alphas", "balances", "backbones", "vanilla"}
SUPCON = {"supcon_weight", "supcon_temperature", "supcon_checkpoint"}  # SSOD (w/) only
# fields the CE-only warm-up does not depend on
NOT_WARMUP = NOT_TRAINING | {"alpha", "balance", "lw_factor", "epochs", "select"}


@dataclass
class SSODRun:
    """A trained model with its settings, training history and checkpoint file."""

    cfg: SSODParams
    model: SSODNet
    history: SSODHistory
    path: Path | None  # None: the released network, neither trained nor saved

    @property
    def label(self) -> str:
        c = self.cfg
        label = "vanilla" if c.alpha == 0 else f"alpha={c.alpha:g},balance={c.balance}"
        return label + (f",supcon={c.supcon_weight:g}" if c.supcon_weight else "")


def _identity(P: Params, cfg: SSODParams, exclude: set[str], data: dict[str, Any]) -> dict[str, Any]:
    """The run's identity (:mod:`ssdlib.train_once`): its section less ``exclude``, the seed and the data."""
    exclude = exclude if cfg.supcon_weight else exclude | SUPCON  # SSOD (w/o): as before SSOD (w/) existed
    return {"ssod": cfg.model_dump(mode="json", exclude=exclude), "seed": P.seed, "data": data}


def _digest(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def _selected_weights(state: dict[str, Any], cfg: SSODParams) -> dict[str, torch.Tensor]:
    return state["best_state"] if cfg.select != "last" and state["best_state"] is not None else state["model"]


def trained(
    P: Params,
    bundle: DatasetBundle,
    output_dir: str | Path,
    *,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
    supcon: bool = False,
    **overrides: Any,
) -> SSODRun:
    """The SSOD run of ``P.ssod`` + ``overrides`` on ``bundle``: loaded, resumed or trained now (eval mode);
    the released network as it is where :func:`released` says so. ``supcon``: SSOD (w/), with the
    section's SupCon term (:func:`settings`)."""
    log = log or LOG.info

    cfg = settings(P, supcon=supcon, **overrides)
    if released(cfg):
        model = new_ssod_net(cfg, bundle.num_classes, bundle.normalize(), P.seed)
        log(f"vanilla: released: {cfg.backbone} with the weights {cfg.pretrained} as they are, not trained")
        return SSODRun(cfg, model.to(resolve_device(P.device)).eval(), SSODHistory(), None)
    data = train_once.data_identity(P, bundle.train)  # a sample's fingerprint: the set is not copied to do it
    identity, warm_identity = _identity(P, cfg, NOT_TRAINING, data), _identity(P, cfg, NOT_WARMUP, data)
    folder = Path(output_dir) / CHECKPOINT_DIR
    path = folder / f"ssod_{cfg.backbone}_{_digest(identity)}.pt"
    warm_path = folder / f"ssod-warmup_{cfg.backbone}_{_digest(warm_identity)}.pt"
    device = resolve_device(P.device)
    model = new_ssod_net(cfg, bundle.num_classes, bundle.normalize(), P.seed)
    recipe = SSODRecipe.from_section(cfg)
    trainer = SSODTrainer(
        model,
        recipe,
        device=device,
        seed=P.seed,
        num_workers=P.data.num_workers,
        log=log,
        progress=progress,
        name=f"SSOD {cfg.backbone} w{cfg.width} {recipe.label}",
        deterministic=P.deterministic,
    )

    with train_once.slot(path, identity, f"training SSOD into {path}", log) as state:
        if state is not None and state["finished"]:
            model.load_state_dict(_selected_weights(state, cfg))
            log(f"loaded the SSOD run ({cfg.backbone}, alpha {cfg.alpha:g}, {cfg.balance}) from {path}")
            return SSODRun(cfg, model.to(device).eval(), SSODHistory.from_dict(state["history"]), path)
        if state is not None:
            trainer.load_state_dict(state)
            log(f"resuming {path} after epoch {trainer.epoch}/{cfg.epochs}")
        elif cfg.warmup_epochs and warm_path.is_file():
            trainer.load_state_dict(ckpt.load(warm_path))
            log(f"starting from the shared {cfg.warmup_epochs}-epoch CE warm-up {warm_path}")
        else:
            log(
                f"training SSOD ({cfg.backbone}, width {cfg.width}, alpha {cfg.alpha:g}, {cfg.balance}) for "
                f"{cfg.epochs} epochs on {device}; checkpoints go to {path}"
            )
        train_set, val = training_data(P, cfg, bundle)
        selection = _test_fpr95(bundle, device, cfg, P) if cfg.select == "test_fpr95" else None
        history = trainer.fit(
            train_set,
            val=val,
            selection=selection,
            checkpoint=path,
            params={"identity": identity, "params": P.model_dump(mode="json")},
            warmup_checkpoint=warm_path if cfg.warmup_epochs and not warm_path.is_file() else None,
        )
        return SSODRun(cfg, trainer.use_selected().eval(), history, path)


def training_data(P: Params, cfg: SSODParams, bundle: DatasetBundle) -> tuple[Images, Images | None]:
    """SSOD's training images and the held-out ones (``val_fraction``). At ImageNet scale the training
    images stream as RandomResizedCrops of the full decoded images, drawn in the loader's workers (two
    per image for SSOD (w/)), and the held-out ones as evaluated (:mod:`ssdlib.data.preprocessing`);
    else the set is held as one tensor (streamed when larger than ``ssdlib.data.held_or_streamed``
    allows) and cropped on the device."""
    if preprocessing.crops_in_loader(P.data.id_dataset, P.data.image_size):
        kept, val = split_validation(bundle.train, cfg.val_fraction, P.seed)
        views = 2 if cfg.supcon_weight else 1
        crops = preprocessing.random_crops(bundle.train, P.data.image_size, cfg.crop_scale, views)
        return (crops if val is None else Subset(crops, kept.indices)), val
    train_set = held_or_streamed(bundle.train)
    return split_validation(train_set, cfg.val_fraction, P.seed)


def _test_fpr95(bundle: DatasetBundle, device, cfg: SSODParams, P: Params) -> Callable[[SSODNet], float]:
    """The paper's selection (App. B): minus the mean FPR95 over the test OOD sets. It selects on test data."""

    def selection(model: SSODNet) -> float:
        det = SSOD.from_model(model, cfg.score).fit(FeatureSet())

        def scored(data) -> np.ndarray:
            return det.score(ssod_features(model, data, device, P.data.batch_size, P.data.num_workers, cfg.amp))

        id_scores = scored(bundle.test)
        return -float(np.mean([metrics.fpr_at_95_id_tpr(id_scores, scored(ood)) for ood in bundle.ood.values()]))

    return selection
