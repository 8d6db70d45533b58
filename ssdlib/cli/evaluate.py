"""``ssdlib eval``: SSD / SSD+ / SSD_k on a checkpoint, with the flags of SSD's ``eval_ssd.py`` / ``eval_ssdk.py``.

Plain SSD by default; ``--k K`` runs SSD_k with K known outliers per OOD class (``--copies`` views
each). Like SSD, it appends to ``<results-dir>/<exp-name>_ssd.txt`` (``_ssdk.txt`` for SSD_k) the
argument Namespace, then one line per OOD set::

    In-data = cifar10, OOD = svhn, Clusters = 1, FPR95 = 0.0206..., AUROC = 0.9962..., AUPR = 0.9985...

(FPR95 at 95% ID acceptance, AUPR with OOD as positive, fractions), and adds the same results as
rows of ``<results-dir>/results.jsonl``. ``--params`` takes the datasets (OOD list, offline sizes,
root) from a profile; ``--dataset``, ``--data-dir``, ``--size``, ``--batch-size`` and
``--normalize`` override it. Unlike SSD, every OOD set gets the ID normalisation or none does:
``--normalize`` puts the ID set's Normalize layer in front of the encoder.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ssdlib import params as params_mod
from ssdlib import profiles
from ssdlib.cli import choices, ssd_defaults
from ssdlib.data import get_datasets
from ssdlib.detectors.ssd import SSD
from ssdlib.detectors.ssdk import SSDk, evaluate_ssdk
from ssdlib.evaluation.results import record, row
from ssdlib.evaluation.rows import method_name
from ssdlib.experiment import build_model, resolve_device
from ssdlib.features import extract_splits
from ssdlib.log import get as get_logger
from ssdlib.models.load import CheckpointError, load_checkpoint
from ssdlib.models.resnet import ARCHS
from ssdlib.training.methods import encoder_modes

if TYPE_CHECKING:
    from ssdlib.data.registry import DatasetBundle

LOG = get_logger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="resnet50", choices=list(ARCHS))
    parser.add_argument("--width", type=int, default=64, help="first-stage channels of the ResNet (64: standard)")
    parser.add_argument(
        "--training-mode",
        required=True,
        choices=encoder_modes(),
        help="how the checkpoint was trained (SupCon: SSD+; SupCE with --clusters > 1 clusters by class)",
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint: SSD, SupContrast or ssdlib format")
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="unpickle fully (needed for SupContrast files; only for files you trust)",
    )
    parser.add_argument("--dataset", help="ID dataset (default cifar10, or the --params profile's)")
    parser.add_argument("--data-dir", help="dataset root (default: the profile's, else $SSDLIB_DATA, else ./datasets)")
    parser.add_argument("--params", type=Path, help="params profile giving the data section, e.g. params/offline.yaml")
    parser.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="put the ID set's normalisation in front of the encoder (default: off, or the profile's)",
    )
    parser.add_argument("--size", type=int, help="image side (default 32, or the profile's)")
    parser.add_argument("--batch-size", type=int, help="feature extraction batch (default 256, or the profile's)")
    parser.add_argument("--clusters", type=int, default=1, help="k-means clusters of the ID train features")
    parser.add_argument(
        "--kmeans",
        choices=choices(params_mod.SSDParams, "kmeans"),
        default="faiss",
        help="k-means for --clusters > 1: faiss as eval_ssd.py (default), or scikit-learn's k-means++",
    )
    parser.add_argument("--k", type=int, help="run SSD_k with this many known outliers per OOD class")
    parser.add_argument("--copies", type=int, default=10, help="SSD_k: augmented views per known outlier")
    parser.add_argument("--exp-name", default="temp_eval_ssd")
    parser.add_argument("--results-dir", default="./eval_results")
    parser.add_argument("--seed", type=int, default=12345, help="seeds k-means and SSD_k's choice and views")
    parser.add_argument("--device", default="auto", choices=choices(params_mod.Params, "device"))


def eval_params(args: argparse.Namespace) -> params_mod.Params:
    """The profile of ``--params`` (else SSD's defaults: ``ssdlib.cli.ssd_defaults``, eval_ssd.py's OOD sets
    included) with the command line's data, arch and width."""
    raw = profiles.load_raw(args.params) if args.params else ssd_defaults.profile("cli", args.dataset, ood=True)
    flags = {
        "id_dataset": args.dataset,
        "root": args.data_dir if args.params else ssd_defaults.data_root(args.data_dir),
        "image_size": args.size,
        "batch_size": args.batch_size,
        "normalize": args.normalize,
    }
    data = {**raw.get("data", {}), **{k: v for k, v in flags.items() if v is not None}}
    encoder = {**raw.get("encoder", {}), "arch": args.arch, "width": args.width, "training_mode": args.training_mode}
    return profiles.validate(
        {**raw, "data": data, "encoder": encoder, "seed": args.seed, "device": args.device},
        f"ssdlib eval ({args.params or 'command line'})",
    )


def check_args(args: argparse.Namespace) -> None:
    if args.clusters < 1:
        raise ValueError(f"--clusters must be at least 1, got {args.clusters}")
    if args.k is not None:
        if args.k < 1 or args.copies < 1:
            raise ValueError(f"--k and --copies must be at least 1, got --k {args.k} --copies {args.copies}")
        if args.clusters != 1:
            raise ValueError("SSD_k supports one cluster only (as in SSD's eval_ssdk.py): drop --clusters")


def results_line(id_dataset: str, ood_dataset: str, clusters: int, r: dict) -> str:
    """SSD's log line for one OOD set (FPR95 = classic, AUPR = AUPR-Out), fractions."""
    return (
        f"In-data = {id_dataset}, OOD = {ood_dataset}, Clusters = {clusters}, "
        f"FPR95 = {r['fpr95']}, AUROC = {r['auroc']}, AUPR = {r['aupr_out']}"
    )


def _load_model(P: params_mod.Params, bundle: DatasetBundle, args: argparse.Namespace, device):
    """The network of ``--training-mode`` with the checkpoint's encoder (SSD scores encoder features only).
    An ssdlib checkpoint records how it was trained: a SimCLR encoder scored as SupCon is refused."""
    model = build_model(P, bundle, args.training_mode)
    meta = load_checkpoint(args.ckpt, model, trust=args.trust_checkpoint, encoder_only=True)
    trained = meta["recipe"].get("mode") if isinstance(meta.get("recipe"), dict) else None
    if trained and trained != args.training_mode:
        raise CheckpointError(
            f"{args.ckpt}: trained as {trained} (the checkpoint records it), evaluated with --training-mode "
            f"{args.training_mode}: pass --training-mode {trained}"
        )
    return model.to(device).eval()


def _ssd_scores(args, train, id_test, ood_features) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """Scores per OOD set, and the setting: SSD's SupCE mode takes the classes as clusters when asked for several."""
    by_class = args.training_mode == "SupCE" and args.clusters > 1
    if by_class:
        LOG.info("Using data labels as clusters since the model is cross-entropy (SupCE)")
    detector = SSD(
        clusters=1 if by_class else args.clusters, seed=args.seed, use_labels=by_class, kmeans=args.kmeans
    ).fit(train)
    id_scores = detector.score(id_test)
    setting = "class clusters" if by_class else f"clusters={args.clusters}"
    return {name: (id_scores, detector.score(fs)) for name, fs in ood_features.items()}, setting


def _ssdk_scores(
    args, model, bundle: DatasetBundle, train, id_test, ood_features, device, batch_size: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    LOG.info("Using ledoit-wolf covariance estimator.")
    detector = SSDk().fit(train)
    out = {}
    for name, fs in ood_features.items():
        r = evaluate_ssdk(
            model,
            detector,
            id_test,
            bundle.ood[name],
            fs,
            k=args.k,
            copies=args.copies,
            seed=args.seed,
            device=device,
            batch_size=batch_size,
        )
        LOG.info(
            f"{name}: number of selected OOD images (k * num_classes_ood_dataset) = {r.known}, "
            f"after augmentation = {r.views}, remaining in the OOD test set = {r.evaluated}"
        )
        out[name] = (r.id_scores, r.ood_scores)
    return out


def run(args: argparse.Namespace) -> int:
    try:
        check_args(args)
        P = eval_params(args)
        bundle = get_datasets(P.data)
        if not bundle.ood:
            raise ValueError(
                f"no OOD sets to evaluate for {P.data.id_dataset}: list them under data.ood_datasets "
                "in a params file and pass it with --params"
            )
        device = resolve_device(P.device)
        model = _load_model(P, bundle, args, device)
    except (ValueError, CheckpointError, FileNotFoundError, RuntimeError) as err:  # RuntimeError: no GPU for cuda
        LOG.error(f"ssdlib eval: {err}")
        return 1

    batch = P.data.batch_size
    f = extract_splits(model, bundle, device, batch, num_workers=P.data.num_workers)
    train, id_test, ood = f.train, f.test, f.ood
    LOG.info(f"In-distribution features shape: {train.features.shape}, {id_test.features.shape}")
    LOG.info(f"Out-of-distribution features shape: {[fs.features.shape for fs in ood.values()]}")

    if args.k is None:
        scores, setting = _ssd_scores(args, train, id_test, ood)
        suffix, method = "ssd", method_name(args.training_mode)
    else:
        scores = _ssdk_scores(args, model, bundle, train, id_test, ood, device, batch)
        suffix, method, setting = "ssdk", "SSD_k", f"k={args.k},copies={args.copies}"

    rows = [
        row(
            method,
            id_s,
            ood_s,
            ood_dataset=name,
            id_dataset=P.data.id_dataset,
            training_mode=args.training_mode,
            arch=args.arch,
            setting=setting,
            seed=args.seed,
            params_file=str(args.params) if args.params else None,
        )
        for name, (id_s, ood_s) in scores.items()
    ]
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    lines = [str(args)] + [results_line(P.data.id_dataset, r["ood_dataset"], args.clusters, r) for r in rows]
    with (results_dir / f"{args.exp_name}_{suffix}.txt").open("a") as fh:
        for line in lines:
            fh.write(line + "\n")
            LOG.info(line)
    record(results_dir, rows)
    return 0
