"""``ssdlib model``: train one shared-loop model of a profile outside the notebooks, e.g. on several GPUs.

    torchrun --nproc_per_node 8 -m ssdlib.cli model --params params/cifar10_ssod.yaml --method CSI

trains the network of a registered training method (``ssdlib.training.methods``: CSI, SupCon, SupCE,
...) with the profile's section for it into ``<output-dir>/checkpoints/`` (default
``outputs/<profile>/``, where ``ssdlib reproduce`` writes), under the same identity the notebooks
check (``ssdlib.experiment.model_for``), so that they load it instead of training it. A stopped run
resumes. Under torchrun each process trains on its slice of every batch (``ssdlib.training.loop``);
rank 0 writes. SSOD's runs have their own command, ``ssdlib ssod``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ssdlib import experiment
from ssdlib.cli import setup
from ssdlib.log import get as get_logger
from ssdlib.project import OUTPUTS_DIR
from ssdlib.training import distributed as dist
from ssdlib.training import methods as training_methods

LOG = get_logger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--params", type=Path, required=True, help="params profile, e.g. params/cifar10_ssod.yaml")
    add(
        "--method",
        required=True,
        choices=training_methods.loop_methods(),
        help="the training method whose network to train",
    )
    add("--output-dir", type=Path, help="where checkpoints/ goes (default: outputs/<profile>/, as ssdlib reproduce)")


def run(args: argparse.Namespace) -> int:
    loaded = setup.profile_and_data(args.params, "model")
    if loaded is None:
        return 1
    P, bundle = loaded
    output_dir = args.output_dir or OUTPUTS_DIR / P.profile
    method = training_methods.get(args.method)
    if not method.trains_in_loop(P):
        LOG.info(f"ssdlib model: {args.method} is the released network {method.section}.{method.release_key} names")
        return 0
    experiment.model_for(P, bundle, output_dir, args.method)
    if dist.rank() == 0:
        path = experiment.checkpoint_path(P, output_dir, args.method)
        LOG.info(f"ssdlib model: {args.method} is in {path}; the notebooks load it from there")
    return 0
