"""SSOD networks of a params section: built fresh or from pretrained weights, and the section's
variants (``settings``), with the check of what the released vanilla classifier must be."""

from __future__ import annotations

from typing import Any

import torch

from ssdlib.models.backbones import backbone, classifier, load_pretrained
from ssdlib.models.load import canonical_keys, load_state_dict_strict, read_checkpoint, state_dict_of
from ssdlib.params import Params, SSODParams
from ssdlib.ssod.model import SSODNet

PROJECTION_DIM = 128  # SSOD (w/)'s projection, as SupContrast's head


def new_ssod_net(cfg: SSODParams, num_classes: int, normalize: torch.nn.Module | None, seed: int = 0) -> SSODNet:
    """A freshly initialised (or ImageNet-pretrained) SSOD network of ``cfg``, seeded with ``seed``.

    The classifier has torchvision's shape for the backbone (one Linear, MobileNetV3's MLP). With
    ``pretrained`` the backbone gets torchvision's weights, and the classifier starts from
    torchvision's whole classifier when it has the same classes (ImageNet), as the paper
    fine-tunes the released ResNet-50; the released vanilla classifier (:func:`released`) must have it.
    SSOD (w/) (``supcon_weight`` > 0) has a projection head, and with ``supcon_checkpoint`` its
    backbone starts from that SupCon-pretrained encoder.
    """
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
