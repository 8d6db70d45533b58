"""SSOD models of a params profile, trained once per output folder, and their evaluation.

``trained(P, bundle, output_dir, **overrides)`` gives the model of ``P.ssod`` with some fields
overridden (``alpha=0.0`` is the vanilla classifier of the same backbone, ``balance="DR"`` an
ablation run). With ``vanilla: released`` the vanilla classifier is the pretrained network scored as
it is, as the SSOD paper's Table 6 compares (nothing trains; :func:`released`); with ``fine_tuned`` it
is trained like any run. Each run is kept in ``<output_dir>/checkpoints/ssod_<backbone>_<hash>.pt``, where
the hash covers everything that determines its weights (the training fields of the section, the
seed and the ID data), so a finished run is loaded, a killed one resumed, and a changed one
trained afresh.

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

from ssdlib import locks, metrics
from ssdlib.detectors.base import FeatureSet
from ssdlib.evaluation import results
from ssdlib.experiment import CHECKPOINT_DIR, resolve_device
from ssdlib.log import get as get_logger
from ssdlib.params import Params, SSODParams
from ssdlib.ssod.model import SSODNet
from ssdlib.ssod.train import SSODHistory, SSODRecipe, SSODTrainer, split_validation
from ssdlib.training import checkpoint as ckpt
from ssdlib.training.batches import Images

if TYPE_CHECKING:
    import pandas as pd

    from ssdlib.data.registry import DatasetBundle

LOG = get_logger(__name__)

# fields that change nothing in the trained weights
NOT_TRAINING = {"score", "ablation_ood", "alphas", "balances", "backbones", "vanilla"}
SUPCON = {"supcon_weight", "supcon_temperature", "supcon_checkpoint"}  # SSOD (w/) only
PROJECTION_DIM = 128  # SSOD (w/)'s projection, as SupContrast's head
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


def new_ssod_net(cfg: SSODParams, num_classes: int, normalize: torch.nn.Module | None, seed: int = 0) -> SSODNet:
    """A freshly initialised (or ImageNet-pretrained) SSOD network of ``cfg``, seeded with ``seed``.

    The classifier has torchvision's shape for the backbone (one Linear, MobileNetV3's MLP). With
    ``pretrained`` the backbone gets torchvision's weights, and the classifier starts from
    torchvision's whole classifier when it has the same classes (ImageNet), as the paper
    fine-tunes the released ResNet-50; the released vanilla classifier (:func:`released`) must have it.
    SSOD (w/) (``supcon_weight`` > 0) has a projection head, and with ``supcon_checkpoint`` its
    backbone starts from that SupCon-pretrained encoder.
    """
    from ssdlib.models.backbones import backbone, classifier, load_pretrained

    torch.manual_seed(seed)
    encoder = backbone(cfg.backbone, width=cfg.width, stem=cfg.stem)
    head = classifier(cfg.backbone, encoder.out_dim, num_classes, cfg.width)
    projection = PROJECTION_DIM if cfg.supcon_weight else None
    model = SSODNet(
        encoder, num_classes, normalize=normalize, input_size=cfg.input_size, projection_dim=projection, head=head
    )
    if cfg.pretrained != "none":
        pretrained_head = load_pretrained(encoder, cfg.backbone, cfg.pretrained)
        if _shapes(pretrained_head) == _shapes(model.head.state_dict()):
            model.head.load_state_dict(pretrained_head)
        elif released(cfg):
            raise ValueError(
                f"vanilla: released scores the classifier of {cfg.pretrained} as it is, but it does not fit the "
                f"ID set's {num_classes} classes: use vanilla: fine_tuned, or the ID set of those weights"
            )
    if cfg.supcon_checkpoint != "none":
        load_encoder(model, cfg.supcon_checkpoint)
    return model


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def released(cfg: SSODParams) -> bool:
    """Whether ``cfg`` is the vanilla classifier scored as released (alpha 0 with ``vanilla: released``):
    the pretrained network with its own classifier, which nothing trains."""
    return cfg.alpha == 0 and cfg.vanilla == "released"


def load_encoder(model: SSODNet, path: str) -> None:
    """The backbone of a SupCon-pretrained checkpoint (SupContrast's or KNN's layout: ``encoder.*``,
    DataParallel's ``module.`` dropped) into ``model.encoder``, which it must fit exactly; the file's
    own heads are not SSOD's and are left out."""
    from ssdlib.models.load import canonical_keys, load_state_dict_strict, read_checkpoint, state_dict_of

    state = canonical_keys(state_dict_of(read_checkpoint(path), path), model.state_dict())
    encoder = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    load_state_dict_strict(model.encoder, encoder, f"{path} (its encoder.* weights)")


def settings(P: Params, *, supcon: bool = False, **overrides: Any) -> SSODParams:
    """``P.ssod`` with ``overrides`` applied and validated: SSOD (w/o) (no SupCon term) unless ``supcon``,
    then SSOD (w/) with the section's SupCon settings."""
    values = {**P.ssod.model_dump(), **overrides}
    if not supcon:
        values.update(supcon_weight=0.0, supcon_checkpoint="none")
    elif not values["supcon_weight"]:
        raise ValueError("SSOD (w/) needs ssod.supcon_weight > 0 in the params")
    return SSODParams.model_validate(values)


def _identity(P: Params, cfg: SSODParams, exclude: set[str]) -> dict[str, Any]:
    data = P.data.model_dump(mode="json", include={"id_dataset", "image_size", "normalize", "offline", "root"})
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
    identity, warm_identity = _identity(P, cfg, NOT_TRAINING), _identity(P, cfg, NOT_WARMUP)
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

    with locks.holding(locks.checkpoint_lock(path), f"training SSOD into {path}"):  # one trainer per file
        state = ckpt.load(path) if path.is_file() else None
        if state is not None and state["finished"] and state["params"].get("identity") == identity:
            model.load_state_dict(_selected_weights(state, cfg))
            log(f"loaded the SSOD run ({cfg.backbone}, alpha {cfg.alpha:g}, {cfg.balance}) from {path}")
            return SSODRun(cfg, model.to(device).eval(), SSODHistory.from_dict(state["history"]), path)
        if state is not None and state["params"].get("identity") == identity:
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
    from ssdlib.data import held_or_streamed, preprocessing

    if preprocessing.crops_in_loader(P.data.id_dataset, P.data.image_size):
        kept, val = split_validation(bundle.train, cfg.val_fraction, P.seed)
        views = 2 if cfg.supcon_weight else 1
        crops = preprocessing.random_crops(bundle.train, P.data.image_size, cfg.crop_scale, views)
        return (crops if val is None else Subset(crops, kept.indices)), val
    train_set = held_or_streamed(bundle.train)
    return split_validation(train_set, cfg.val_fraction, P.seed)


# -- evaluation ------------------------------------------------------------------------------


def ssod_features(
    model: SSODNet, data, device: torch.device | str, batch_size: int = 256, num_workers: int = 0, amp: bool = False
) -> FeatureSet:
    """Pooled features, logits and labels of a dataset (see ``ssdlib.features.extract``); ``amp``: autocast
    on CUDA, as SSOD trains (its scores are a sigmoid and a softmax, not a covariance)."""
    from ssdlib.features import extract as extract_features

    return extract_features(
        model, data, device=device, batch_size=batch_size, desc="SSOD features", num_workers=num_workers, amp=amp
    )


def detector_for(run: SSODRun, score: str | None = None):
    """The score of a run: SSOD's OOD head (``score``, default ``cfg.score``), or MSP for the
    vanilla classifier (alpha 0), whose OOD head was never trained."""
    from ssdlib.detectors.msp import MSP
    from ssdlib.detectors.ssod import SSOD

    return (MSP() if run.cfg.alpha == 0 else SSOD.from_model(run.model, score or run.cfg.score)).fit(FeatureSet())


def _test_fpr95(bundle: DatasetBundle, device, cfg: SSODParams, P: Params) -> Callable[[SSODNet], float]:
    """The paper's selection (App. B): minus the mean FPR95 over the test OOD sets. It selects on test data."""
    from ssdlib.detectors.ssod import SSOD

    def selection(model: SSODNet) -> float:
        det = SSOD.from_model(model, cfg.score).fit(FeatureSet())

        def scored(data) -> np.ndarray:
            return det.score(ssod_features(model, data, device, P.data.batch_size, P.data.num_workers, cfg.amp))

        id_scores = scored(bundle.test)
        return -float(np.mean([metrics.fpr_at_95_id_tpr(id_scores, scored(ood)) for ood in bundle.ood.values()]))

    return selection


def scores(run: SSODRun, P: Params, bundle: DatasetBundle, *, sets: list[str] | None = None, score: str | None = None):
    """The run's detector (:func:`detector_for`), its ID test scores, its scores of each OOD set (all of
    ``bundle.ood`` unless ``sets``) and its ID test accuracy."""
    device = resolve_device(P.device)
    det = detector_for(run, score)

    def features(data) -> FeatureSet:
        return ssod_features(run.model, data, device, P.data.batch_size, P.data.num_workers, run.cfg.amp)

    test = features(bundle.test)
    ood = {name: det.score(features(bundle.ood[name])) for name in sets or list(bundle.ood)}
    return det, det.score(test), ood, metrics.accuracy(test.logits, test.labels)


def training_mode(run: SSODRun) -> str:
    """``SSOD``, ``SSOD+SupCon`` for SSOD (w/), or ``CE`` for the vanilla classifier (alpha 0)."""
    if not run.cfg.alpha:
        return "CE"
    return "SSOD+SupCon" if run.cfg.supcon_weight else "SSOD"


def evaluate(
    run: SSODRun,
    P: Params,
    bundle: DatasetBundle,
    *,
    sets: list[str] | None = None,
    setting: str = "",
    score: str | None = None,
    notebook: str = "",
    params_file: str | None = None,
) -> list[dict[str, Any]]:
    """One results row per OOD set (all of ``bundle.ood`` unless ``sets``), with the run's ID
    accuracy; ``score`` ("ood" or "ood_x_msp") overrides ``cfg.score``."""
    det, id_scores, ood, accuracy = scores(run, P, bundle, sets=sets, score=score)
    method = det.name.replace("SSOD", "SSOD+", 1) if run.cfg.supcon_weight else det.name  # SSOD (w/), as KNN+
    return [
        results.row(
            method,
            id_scores,
            ood_scores,
            ood_dataset=name,
            id_dataset=P.data.id_dataset,
            training_mode=training_mode(run),
            arch=run.cfg.backbone,
            setting=setting or run.label,
            id_accuracy=accuracy,
            notebook=notebook,
            params_file=params_file,
            seed=P.seed,
        )
        for name, ood_scores in ood.items()
    ]


# -- ablations (Tables 4-6) ------------------------------------------------------------------

ABLATIONS = {"alpha": "alphas", "balance": "balances", "backbone": "backbones"}


def ablation(
    P: Params,
    bundle: DatasetBundle,
    output_dir: str | Path,
    field: str,
    *,
    notebook: str = "",
    params_file: str | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Results rows of the ablation over ``field`` ("alpha", "balance" or "backbone") on ``P.ssod.ablation_ood``.

    Each value of the matching list (``alphas``, ``balances``, ``backbones``) is one run, the rest
    of ``P.ssod`` unchanged; ``setting`` names it (e.g. ``"balance=DR"``). For backbones each also
    gets its vanilla classifier (alpha 0, scored by MSP; released or fine-tuned as ``vanilla`` says),
    as Table 6 compares the two.
    """
    if field not in ABLATIONS:
        raise ValueError(f"unknown ablation {field!r}; choose one of {', '.join(ABLATIONS)}")
    bundle.require_ood("ssod.ablation_ood", P.ssod.ablation_ood)
    rows = []
    for value in getattr(P.ssod, ABLATIONS[field]):
        variants = [{field: value}] + ([{field: value, "alpha": 0.0}] if field == "backbone" else [])
        for overrides in variants:
            run = trained(P, bundle, output_dir, log=log, progress=progress, **overrides)
            rows += evaluate(
                run,
                P,
                bundle,
                sets=[P.ssod.ablation_ood],
                setting=f"{field}={value}",
                notebook=notebook,
                params_file=params_file,
            )
    return rows


def ablation_table(rows: list[dict[str, Any]], field: str) -> pd.DataFrame:
    """The rows of one ablation as a table: the ablated value (column ``field``), method, FPR95,
    AUROC and ID accuracy, in the order the runs were made."""
    import pandas as pd

    table = pd.DataFrame(rows)
    table = table[table["setting"].str.startswith(f"{field}=")].copy()
    values = table["setting"].str.split("=", n=1).str[1]
    table[field] = pd.to_numeric(values) if field == "alpha" else values
    return table[[field, "method", "ood_dataset", "fpr95", "auroc", "id_accuracy"]].reset_index(drop=True)
