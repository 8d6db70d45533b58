"""Load the model a profile asks for, or train a quick one: shared by the notebooks and the CLIs.

Trained models live in ``<output_dir>/checkpoints/``: ``<mode>_<arch>_w<width>.pt`` for SSD's
encoders (SimCLR, SupCon) and ``SupCE_<arch>_w<width>.pt`` for the supervised classifier of the
same size (which SSD's SupCE mode and the post-hoc baselines share). A checkpoint is reused when
it was trained with the same identity (:mod:`ssdlib.train_once`); a partial one (a killed run) is
resumed; otherwise the model is trained now. So each model is trained once per output folder,
whichever notebook asks first.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ssdlib import train_once
from ssdlib.data import held_or_streamed
from ssdlib.log import get as get_logger
from ssdlib.params import Params, ParamsError
from ssdlib.project import FIGURES_DIR, OUTPUTS_DIR
from ssdlib.training import History, Recipe, load_checkpoint, train
from ssdlib.training import methods as training_methods

if TYPE_CHECKING:
    from ssdlib.data.registry import DatasetBundle

LOG = get_logger(__name__)

CHECKPOINT_DIR = "checkpoints"


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is the GPU when one is visible, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParamsError(
            f"device {name!r} was asked for, but PyTorch sees no CUDA GPU here; "
            "set device: auto (or cpu) in the params file"
        )
    return torch.device(name)


def output_folder(output_dir: str | Path | None, P: Params) -> Path:
    """A notebook's output folder: ``output_dir`` as given (``ssdlib reproduce`` passes
    ``outputs/<profile>/``), or ``outputs/interactive/<profile>/`` in the project for a notebook run by
    hand, so that runs of different profiles never share checkpoints."""
    return Path(output_dir) if output_dir is not None else OUTPUTS_DIR / "interactive" / P.profile


def notebook_output(output_dir: str | Path, name: str) -> Path:
    """Create ``output_dir`` and return the folder for notebook ``name``'s figures,
    ``<output_dir>/figures/<name>/`` (created too)."""
    folder = Path(output_dir) / FIGURES_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def checkpoint_path(P: Params, output_dir: str | Path, mode: str | None = None) -> Path:
    """Where the model named ``mode`` (default: the profile's training mode) is kept."""
    mode = mode or P.encoder.training_mode
    return Path(output_dir) / CHECKPOINT_DIR / f"{mode}_{P.encoder.arch}_w{P.encoder.width}.pt"


def build_model(P: Params, bundle: DatasetBundle, mode: str) -> torch.nn.Module:
    """A freshly initialised network (seeded with ``P.seed``) of the training method ``mode``
    (:mod:`ssdlib.training.methods`): ``SSLNet`` for SimCLR / SupCon, ``SupNet`` for SupCE, ``GODINNet``
    for GODIN, of ``P.encoder``'s arch and width; normalisation from the ID set is its first layer."""
    torch.manual_seed(P.seed)
    return training_methods.get(mode).build(P, bundle.num_classes, bundle.normalize())


def model_for(P: Params, bundle: DatasetBundle, output_dir: str | Path, mode: str) -> torch.nn.Module:
    """The network of training method ``mode`` trained with its params section (:func:`recipe_for`), once
    per output folder (:func:`load_or_train`), or the released one the section names; in eval mode.
    SSOD's runs: ``ssdlib.ssod.runs.trained``."""
    method = training_methods.get(mode)
    if method.uses_released(P):
        LOG.info(f"{mode}: the released network of {method.section}.{method.release_key}, scored as it is")
        released = method.released(P, bundle.num_classes, bundle.normalize())
        return released.to(resolve_device(P.device)).eval()
    identity = method.identity(P) if method.identity else None
    return load_or_train(P, bundle, output_dir, build_model(P, bundle, mode), recipe_for(P, mode), identity=identity)


def encoder_for(P: Params, bundle: DatasetBundle, output_dir: str | Path, mode: str | None = None) -> torch.nn.Module:
    """The trained SSD network of ``mode`` (default ``P.encoder.training_mode``), in eval mode:
    ``model.features(x)`` gives the penultimate features SSD scores (SupCE: :func:`classifier_for`)."""
    return model_for(P, bundle, output_dir, mode or P.encoder.training_mode)


def recipe_for(P: Params, mode: str, section: Any = None) -> Recipe:
    """How training method ``mode`` trains on profile ``P``: with ``section`` (default: the method's own,
    ``encoder`` for SSD's encoders, ``classifier`` for SupCE and GODIN), the run's seed and determinism;
    the encoder section's epochs for ``mode`` (SupCon may train fewer)."""
    method = training_methods.get(mode)
    section = section if section is not None else getattr(P, method.section)
    epochs = section.epochs_for(mode) if hasattr(section, "epochs_for") else section.epochs
    released = [m.release_key for m in training_methods.methods().values() if m.section == method.section]
    not_identity = (*method.scoring_keys, *filter(None, released))  # a released network's name trains nothing
    return Recipe.from_section(
        section, seed=P.seed, deterministic=P.deterministic, mode=mode, epochs=epochs, scoring=not_identity
    )


def encoder_recipe(P: Params, mode: str | None = None) -> Recipe:
    """How ``P.encoder`` trains a network with ``mode`` (default ``P.encoder.training_mode``), as SSD's
    ``train.py`` trains every mode with one set of arguments (``ssdlib train``)."""
    return recipe_for(P, mode or P.encoder.training_mode, P.encoder)


def classifier_for(P: Params, bundle: DatasetBundle, output_dir: str | Path) -> torch.nn.Module:
    """The supervised CE classifier (``SupNet``) of ``P.encoder``'s arch and width, trained with
    ``P.classifier``; in eval mode. MSP and the post-hoc baselines score it."""
    return model_for(P, bundle, output_dir, "SupCE")


def godin_for(P: Params, bundle: DatasetBundle, output_dir: str | Path) -> torch.nn.Module:
    """The GODIN network of ``P.encoder``'s arch and width, trained by the CE loop with ``P.classifier``
    (kept as ``GODIN_<arch>_w<width>.pt``, reused while its similarity stays the same)."""
    return model_for(P, bundle, output_dir, "GODIN")


def training_history(P: Params, output_dir: str | Path, mode: str | None = None) -> History:
    """The loss / lr / monitor history stored with the model of ``mode`` (train it first)."""
    path = checkpoint_path(P, output_dir, mode)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model yet; call encoder_for (or classifier_for) first")
    return History.from_dict(load_checkpoint(path)["history"])


def load_or_train(
    P: Params,
    bundle: DatasetBundle,
    output_dir: str | Path,
    model: torch.nn.Module,
    recipe: Recipe,
    *,
    name: str | None = None,
    identity: dict[str, Any] | None = None,
) -> torch.nn.Module:
    """``model`` (freshly initialised with ``P.seed``) trained with ``recipe`` on ``bundle.train``, in eval mode.

    Kept as ``<output_dir>/checkpoints/<name>_<arch>_w<width>.pt`` (``name`` defaults to the recipe's
    mode) and reused, resumed or trained afresh by the identity rule of :mod:`ssdlib.train_once`: the
    arch, width, recipe (its whole params section, monitoring aside), ``identity`` (whatever else defines
    the model) and the ID data.
    """
    name = name or recipe.mode
    path = checkpoint_path(P, output_dir, name)
    kept = {k: v for k, v in asdict(recipe).items() if k not in Recipe.MONITORING}
    identity = {
        "arch": P.encoder.arch,
        "width": P.encoder.width,
        "recipe": kept,
        "data": train_once.data_identity(P, bundle.train),  # a sample's fingerprint: no copy of the set
        **(identity or {}),
    }
    device = resolve_device(P.device)
    with train_once.slot(path, identity, f"training {name} into {path}", LOG.info) as state:
        if state is not None and state["finished"]:
            model.load_state_dict(state["model"])
            LOG.info(f"loaded the trained {name} model from {path}")
            return model.to(device).eval()
        if state is not None:
            LOG.info(f"{path} holds a run stopped after epoch {state['epoch']}/{state['total_epochs']}; resuming it")
        else:
            LOG.info(
                f"training a quick {name} {P.encoder.arch} (width {P.encoder.width}) for "
                f"{recipe.total_epochs} epochs on {device}; checkpoints go to {path}"
            )
        train(
            model,
            held_or_streamed(bundle.train),
            recipe,
            test=held_or_streamed(bundle.test),
            device=device,
            checkpoint=path,
            resume=state is not None,
            params={"identity": identity, "params": P.model_dump(mode="json")},
            name=f"{name} {P.encoder.arch} w{P.encoder.width}",
            num_workers=P.data.num_workers,
        )
    return model.eval()
