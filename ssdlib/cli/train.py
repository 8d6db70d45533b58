"""``ssdlib train``: train an encoder with SSD's ``train.py`` vocabulary.

Flags default to the ``--params`` profile, or without one to what SSD's ``train.py`` does
(``ssdlib.cli.ssd_defaults``: CIFAR-10 from ``./datasets`` or $SSDLIB_DATA, 32 px, fp32, no
warm-up unless ``--warmup``, SSD's released recipe); the flags given on the command line replace
them. A run writes ``<results-dir>/<exp-name>/`` with ``setup.log`` (the params first, then one
line per epoch), ``params.yaml`` (what was used) and ``checkpoint.pt`` (atomic; every
``--save-freq`` epochs and at the end). ``--resume`` continues a stopped run there to the same
weights it would have reached. Launched by ``torchrun``, it trains on all processes with
DistributedDataParallel; rank 0 writes.

Differences from SSD's flags: ``--warmup`` takes an optional number of epochs (10 when bare, the
profile's value when absent, 0 without a profile; ``--warmup 0`` turns it off); ``--normalize`` /
``--no-normalize`` only choose the model's normalisation layer, which every dataset passes through
alike.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from ssdlib import data, experiment, locks, profiles
from ssdlib import params as params_mod
from ssdlib.cli import choices, ssd_defaults
from ssdlib.log import get as get_logger
from ssdlib.training import CheckpointError, NonFiniteLossError, load_checkpoint, train
from ssdlib.training import distributed as dist
from ssdlib.training.checkpoint import data_fingerprint
from ssdlib.training.loop import resume_problems
from ssdlib.training.methods import encoder_modes

LOG = get_logger(__name__)

CHECKPOINT = "checkpoint.pt"
# command-line flag -> (params section or None for top level, key)
OVERRIDES = {
    "arch": ("encoder", "arch"),
    "width": ("encoder", "width"),
    "training_mode": ("encoder", "training_mode"),
    "epochs": ("encoder", "epochs"),
    "batch_size": ("encoder", "batch_size"),
    "lr": ("encoder", "lr"),
    "momentum": ("encoder", "momentum"),
    "weight_decay": ("encoder", "weight_decay"),
    "warmup": ("encoder", "warmup_epochs"),
    "temperature": ("encoder", "temperature"),
    "save_freq": ("encoder", "save_every"),
    "dataset": ("data", "id_dataset"),
    "data_dir": ("data", "root"),
    "normalize": ("data", "normalize"),
    "size": ("data", "image_size"),
    "seed": (None, "seed"),
    "device": (None, "device"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--params", type=Path, help="params profile supplying the defaults, e.g. params/cifar10.yaml")
    add("--results-dir", type=Path, default=Path("runs"), help="parent of the run folder (default: runs)")
    add("--exp-name", default="temp", help="run folder name under --results-dir (default: temp)")
    add("--resume", action="store_true", help="continue the stopped run in <results-dir>/<exp-name>")
    add("--training-mode", choices=encoder_modes())
    add("--arch", choices=choices(params_mod.Arch))
    add("--width", type=int, help="channels of the first stage (64: the standard ResNet)")
    add("--dataset", help="ID training set, e.g. cifar10 (the default without --params), cifar100, svhn, offline")
    add("--data-dir", help="dataset root (else the profile's data.root, else $SSDLIB_DATA, else ./datasets)")
    add(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="normalise with the ID set's mean and std as the model's first layer",
    )
    add("--size", type=int, help="image side in pixels")
    add("--epochs", type=int, help="cosine-phase epochs (warm-up epochs come on top, as in SSD)")
    add("--warmup", type=int, nargs="?", const=10, help="warm-up epochs (10 when given bare; 0: none)")
    add("--batch-size", type=int)
    add("--lr", type=float)
    add("--momentum", type=float)
    add("--weight-decay", type=float)
    add("--temperature", type=float)
    add("--save-freq", type=int, help="epochs between checkpoints")
    add("--seed", type=int)
    add("--device", choices=choices(params_mod.Params, "device"))


def effective_params(args: argparse.Namespace) -> params_mod.Params:
    """The profile (or SSD's defaults: ``ssdlib.cli.ssd_defaults``) with the given flags applied, validated;
    no OOD sets are loaded."""
    if args.params:
        raw = profiles.load_raw(args.params)
    else:  # SSD's train.py defaults (ssdlib.cli.ssd_defaults)
        raw = ssd_defaults.profile("train", args.dataset, ood=False)
        raw["data"]["root"] = ssd_defaults.data_root(args.data_dir)
    for flag, (section, key) in OVERRIDES.items():
        value = getattr(args, flag)
        if value is not None:
            (raw.setdefault(section, {}) if section else raw)[key] = value
    raw.setdefault("data", {})["ood_datasets"] = []  # training needs only the ID set
    return profiles.validate(raw, f"{args.params or 'SSD defaults'} + command-line flags")


def _logger(run_dir: Path) -> logging.Logger:
    """SSD's logging: bare messages to stderr and to ``<run dir>/setup.log`` (appended on resume)."""
    log = logging.getLogger(f"ssdlib.train.{run_dir.resolve()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(run_dir / "setup.log")):
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    return log


def _close(log: logging.Logger) -> None:
    for handler in list(log.handlers):
        handler.close()
        log.removeHandler(handler)


def run(args: argparse.Namespace) -> int:
    try:
        P = effective_params(args)
        run_dir = args.results_dir / args.exp_name
        checkpoint = run_dir / CHECKPOINT
        if checkpoint.exists() and not args.resume:
            raise CheckpointError(
                f"{run_dir} already holds a run ({checkpoint}); pass --resume to continue it, "
                "or choose another --exp-name"
            )
        if args.resume and not checkpoint.exists():
            raise CheckpointError(f"--resume: there is no {checkpoint} to continue; drop --resume to start the run")
        dist.init_from_env()
        device = experiment.resolve_device(P.device)
        bundle = data.get_datasets(P.data)  # a missing or misspelt dataset stops here, before anything is written
        train_set = data.held_or_streamed(bundle.train)
        if args.resume:  # a resume with other settings or data is refused before params.yaml is rewritten
            problems = resume_problems(
                load_checkpoint(checkpoint), experiment.encoder_recipe(P), data_fingerprint(train_set)
            )
            if problems:
                raise CheckpointError(f"--resume: {checkpoint} {problems}")
    except (params_mod.ParamsError, CheckpointError, data.DatasetNotFoundError, data.UnknownDatasetError) as err:
        LOG.error(f"ssdlib train: {err}")
        return 1
    try:
        with locks.holding(locks.folder_lock(run_dir), f"ssdlib train into {run_dir}", "another --exp-name"):
            return _train(P, args, bundle, train_set, run_dir, checkpoint, device)
    except locks.BusyError as err:
        LOG.error(f"ssdlib train: {err}")
        return 1


def _train(P, args, bundle, train_set, run_dir: Path, checkpoint: Path, device) -> int:
    """:func:`run` once the run folder is locked and every check has passed."""
    rank0 = dist.rank() == 0
    if rank0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "params.yaml").write_text(yaml.safe_dump(P.model_dump(mode="json"), sort_keys=False))
    log = _logger(run_dir) if rank0 else logging.getLogger("ssdlib.train.other-ranks")
    try:
        log.info(f"params: {P.model_dump(mode='json')}")
        e = P.encoder
        if e.batch_size > 256 and not e.warmup_epochs:
            log.info("warning: batch size above 256 without warm-up; SSD recommends --warmup for large batches")
        model = experiment.build_model(P, bundle, e.training_mode)
        train(
            model,
            train_set,
            experiment.encoder_recipe(P),
            test=data.held_or_streamed(bundle.test),
            device=device,
            checkpoint=checkpoint,
            resume=args.resume,
            params={"params": P.model_dump(mode="json")},
            log=log.info,
            num_workers=P.data.num_workers,
        )
        log.info(f"finished: {checkpoint}")
    except NonFiniteLossError as err:  # resuming would replay the same step: the way out is a new run
        lower = f"{P.encoder.lr / 2:g}"
        log.info(
            f"ssdlib train: stopped: {err} To train again, run the same command with a lower lr and a new name, "
            f"e.g. --lr {lower} --exp-name {args.exp_name}-lr{lower} ({run_dir} stays as it is)"
        )  # stderr and setup.log on rank 0
        return 1
    except CheckpointError as err:
        log.info(f"ssdlib train: stopped: {err}")
        return 1
    finally:
        _close(log)
    return 0
