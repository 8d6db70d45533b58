"""What each notebook trains, declared once: ``ssdlib.plan`` lists it before a run starts,
``ssdlib.evaluation.comparison`` (notebook 05) trains and scores what it names, and the smoke test of
every profile checks the list against the checkpoints a run leaves.

A need is a training method's key (:mod:`ssdlib.training.methods`); for SSOD, the variants of
``P.ssod`` a notebook trains are the overrides of :func:`ssod_variants`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ssdlib.params import Params
from ssdlib.training import methods as training_methods


def comparison(P: Params) -> list[str]:
    """Notebook 05's models: the CE classifier (the post-hoc baselines; released where
    ``classifier.pretrained`` names one), GODIN's network when ``baselines.methods`` has it, the SupCon
    encoder for KNN+ (``baselines.knn_plus``) and SSD+, the SimCLR encoder (SSD) unless
    ``ssd.in_comparison`` is off, CSI's network with ``csi.in_comparison``, SSOD, and MOS's group head
    (on the CE classifier) when ``mos.groups`` is set."""
    godin = ["GODIN"] if "godin" in P.baselines.methods else []
    supcon = ["SupCon"] if P.baselines.knn_plus or P.ssd.in_comparison else []
    simclr = ["SimCLR"] if P.ssd.in_comparison else []
    csi = ["CSI"] if P.csi.in_comparison else []
    mos = ["MOS"] if P.mos.groups is not None else []
    return ["SupCE", *godin, *supcon, *simclr, *csi, "SSOD", *mos]


NOTEBOOKS: dict[str, Callable[[Params], list[str]]] = {
    "01": lambda P: [P.encoder.training_mode],
    "02": lambda P: ["SimCLR", "SupCon", "SupCE"],
    "03": lambda P: ["SimCLR"],
    "04": lambda P: ["SSOD"],
    "05": comparison,
}


def of(P: Params, notebook: str) -> list[str]:
    """The training methods notebook ``notebook`` ("01" ... "05") trains; none for the others."""
    return NOTEBOOKS[notebook](P) if notebook in NOTEBOOKS else []


def encoders(P: Params, notebook: str) -> list[str]:
    """The SSD encoders among a notebook's needs: the methods its registry entry trains with ``encoder``."""
    return [m for m in of(P, notebook) if training_methods.get(m).section == "encoder"]


def ssod_variants(P: Params, notebook: str) -> list[dict[str, Any]]:
    """The SSOD runs (overrides of ``P.ssod``) a notebook trains: 05 scores the profile's SSOD; 04 also
    trains the vanilla classifier (alpha 0), SSOD (w/) when ``supcon_weight`` is set, and the ablations."""
    if "SSOD" not in of(P, notebook):
        return []
    if notebook != "04":
        return [{}]
    variants = [{"alpha": 0.0}, {}] + ([{"supcon": True}] if P.ssod.supcon_weight else [])
    variants += [{"alpha": a} for a in P.ssod.alphas] + [{"balance": b} for b in P.ssod.balances]
    return variants + [v for b in P.ssod.backbones for v in ({"backbone": b}, {"backbone": b, "alpha": 0.0})]
