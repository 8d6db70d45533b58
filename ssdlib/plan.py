"""What a run of a profile will train, said before it starts: each model, its epochs and images.

A paper profile means days of GPU time, so ``ssdlib reproduce`` (and ``--dry-run``) prints this
first. It reads what each notebook trains from ``ssdlib.needs``; each
model is trained once per output folder, whichever notebook asks first, so a model several
notebooks use is listed once. The smoke test of every profile checks this list against the
checkpoints the run leaves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ssdlib import mos, needs
from ssdlib.experiment import recipe_for
from ssdlib.params import Params
from ssdlib.ssod.build import released, settings
from ssdlib.training import methods as training_methods


@dataclass(frozen=True)
class Model:
    """One model a run trains: ``epochs`` passes over ``images`` training images."""

    name: str
    epochs: int
    images: int
    notebooks: tuple[str, ...]

    @property
    def work(self) -> int:
        """Images processed in training (epochs x images), the size of the job."""
        return self.epochs * self.images


def _loop_model(P: Params, mode: str) -> tuple[str, int, str]:
    """(name, epochs, kind) of a model the shared loop trains, from its recipe (``experiment.recipe_for``)."""
    return f"{mode} {P.encoder.arch} w{P.encoder.width}", recipe_for(P, mode).total_epochs, "encoder"


def _ssod(P: Params, notebook: str) -> list[tuple[str, int, str]]:
    """The SSOD models a notebook trains; the vanilla classifier scored as released trains none."""
    out = []
    for overrides in needs.ssod_variants(P, notebook):
        cfg = settings(P, **overrides)
        if released(cfg):
            continue
        label = "vanilla (alpha 0)" if cfg.alpha == 0 else f"alpha {cfg.alpha:g}, {cfg.balance}"
        label += f" + SupCon x{cfg.supcon_weight:g}" if cfg.supcon_weight else ""
        out.append((f"SSOD {cfg.backbone} w{cfg.width} {label}", cfg.epochs, "ssod"))
    return out


def _mos(P: Params, train_images: int) -> tuple[str, int, str]:
    """MOS's group head: one pass of the frozen CE classifier over the images, then its steps on the
    features (``ssdlib.mos``), which cost little beside that pass."""
    steps = mos.schedule(train_images, P.mos.steps)[-1]
    return f"MOS head on SupCE {P.encoder.arch} w{P.encoder.width} ({steps} steps on frozen features)", 1, "encoder"


def _per_notebook(P: Params, notebook: str, train_images: int) -> list[tuple[str, int, str]]:
    """What ``ssdlib.needs`` declares for the notebook, as (name, epochs, kind): the shared loop's
    methods from their recipes (a released network trains nothing), SSOD's and MOS's from their own trainers."""
    modes = needs.of(P, notebook)
    loop = [_loop_model(P, m) for m in modes if training_methods.get(m).trains_in_loop(P)]
    return loop + _ssod(P, notebook) + ([_mos(P, train_images)] if "MOS" in modes else [])


def models(P: Params, notebooks: list[str], train_images: int) -> list[Model]:
    """The models a run of ``notebooks`` (numbers, e.g. ["02", "04"]) trains on ``train_images`` ID
    training images (SSOD holds out ``ssod.val_fraction`` of them for selection)."""
    ssod_images = train_images - round(train_images * P.ssod.val_fraction)
    found: dict[str, tuple[int, int, list[str]]] = {}
    for notebook in notebooks:
        for name, epochs, kind in _per_notebook(P, notebook, train_images):
            images = ssod_images if kind == "ssod" else train_images
            users = found.setdefault(name, (epochs, images, []))[2]
            if notebook not in users:
                users.append(notebook)
    return [Model(name, epochs, images, tuple(nbs)) for name, (epochs, images, nbs) in found.items()]


def table(planned: list[Model]) -> pd.DataFrame:
    """The plan as a table, with a total row."""
    rows = [
        {"model": m.name, "notebooks": ", ".join(m.notebooks), "epochs": m.epochs, "images": m.images, "work": m.work}
        for m in planned
    ]
    total = {"model": "total", "notebooks": "", "epochs": pd.NA, "images": pd.NA, "work": sum(m.work for m in planned)}
    return pd.DataFrame([*rows, total]).astype({"epochs": "Int64", "images": "Int64", "work": "Int64"})


def backbones(P: Params) -> list[str]:
    """The SSOD backbones a run of ``P`` builds: its own and Table 6's."""
    return list(dict.fromkeys([P.ssod.backbone, *P.ssod.backbones]))


def weights_status(P: Params) -> list[str]:
    """For each SSOD backbone that starts from pretrained weights: where they come from and whether
    they are here (a GPU job without network must not find out after its data loading)."""
    from torchvision.models import get_model_weights  # local: importing torchvision takes seconds

    pretrained = P.ssod.pretrained
    if pretrained == "none":
        return []
    lines = []
    for arch in backbones(P):
        local = Path(pretrained).expanduser()
        if local.is_dir() or local.suffix:
            path = local / f"{arch}.pth" if local.is_dir() else local
            state = "present" if path.is_file() else "MISSING"
            lines.append(f"{arch}: {path} ({state})")
            continue
        enum = get_model_weights(arch)
        name = "DEFAULT" if pretrained == "torchvision" else pretrained.split(".")[-1]
        if name not in enum.__members__:
            lines.append(f"{arch}: no torchvision weights named {name} (it has {', '.join(enum.__members__)})")
            continue
        url = enum[name].url
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        state = "in torchvision's cache" if cached.is_file() else "not cached: fetched on first use (needs network)"
        lines.append(f"{arch}: {enum[name]} from {url} ({state}, {cached})")
    return lines
