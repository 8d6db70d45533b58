"""``ssdlib ssod``: train one SSOD run of a profile outside the notebooks, e.g. on several GPUs.

    torchrun --nproc_per_node 8 -m ssdlib.cli ssod --params params/imagenet_ssod.yaml [--supcon]

trains the run that notebook 04 trains first (``ssod:`` of the profile; SSOD (w/) with
``--supcon``; ``--alpha 0`` is the vanilla classifier, ``--balance`` / ``--backbone`` the
ablations' runs) into ``<output-dir>/checkpoints/`` (default ``outputs/<profile>/``, where
``ssdlib reproduce`` writes), so that notebook 04 loads it instead of training it. A stopped run
resumes. Under torchrun each process trains on its slice of every batch with the same result as
one process (``ssdlib.ssod.train``); rank 0 writes and logs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ssdlib import params as params_mod
from ssdlib.cli import choices, setup
from ssdlib.log import get as get_logger
from ssdlib.project import OUTPUTS_DIR
from ssdlib.ssod import build, runs
from ssdlib.training import distributed as dist

LOG = get_logger(__name__)
OVERRIDES = ("alpha", "balance", "backbone")  # the fields the ablations of notebook 04 vary


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--params", type=Path, required=True, help="params profile, e.g. params/imagenet_ssod.yaml")
    add("--output-dir", type=Path, help="where checkpoints/ goes (default: outputs/<profile>/, as ssdlib reproduce)")
    add("--supcon", action="store_true", help="SSOD (w/): add the profile's SupCon term (ssod.supcon_weight)")
    add("--alpha", type=float, help="weight of the OOD loss (0: the vanilla classifier)")
    add("--balance", choices=choices(params_mod.Balance), help="ID/OOD balance scheme")
    add("--backbone", help="backbone of the run, e.g. resnet50, mobilenet_v3_large")


def run(args: argparse.Namespace) -> int:
    overrides = {key: getattr(args, key) for key in OVERRIDES if getattr(args, key) is not None}
    loaded = setup.profile_and_data(args.params, "ssod", lambda P: build.settings(P, supcon=args.supcon, **overrides))
    if loaded is None:
        return 1
    P, bundle = loaded
    output_dir = args.output_dir or OUTPUTS_DIR / P.profile
    first = dist.rank() == 0
    run = runs.trained(
        P,
        bundle,
        output_dir,
        log=LOG.info if first else (lambda _msg: None),
        progress=first,
        supcon=args.supcon,
        **overrides,
    )
    if first and run.path is not None:
        LOG.info(f"ssdlib ssod: the run {run.label} is in {run.path}; notebook 04 loads it from there")
    elif first:
        LOG.info(f"ssdlib ssod: {run.label} is the released network, scored as it is: nothing to train")
    return 0
