"""MOS's fine-tuning, once per output folder: the profile's CE classifier (``experiment.classifier_for``)
with its last layer replaced by a zero-initialised group head (classes + groups outputs,
``ssdlib.detectors.mos``) that alone is trained, the encoder frozen.

The repository fine-tunes the head on augmented images through the frozen network (BiT at 480 px,
random crop and flip, mixup on sets of 20 000 images or more). Here the head trains on the frozen
features of the unaugmented training images, extracted once: the same model class and loss, at the
cost of a linear layer, which is what makes MOS cheap enough for the CPU profile. The schedule is the
repository's (``utils/hyperrule.py``): linear warm-up to ``lr`` over the first support's steps, lr / 10
after each middle support, the end at the last; batches are drawn without replacement, epoch after epoch.
"""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ssdlib import train_once
from ssdlib.detectors.mos import check_groups, group_loss, resolve, targets
from ssdlib.experiment import CHECKPOINT_DIR, classifier_for, recipe_for, resolve_device
from ssdlib.feature_set import FeatureSet
from ssdlib.features import extract
from ssdlib.log import get as get_logger
from ssdlib.params import Params, ParamsError
from ssdlib.training import Recipe
from ssdlib.training import checkpoint as ckpt

LOG = get_logger(__name__)


def schedule(train_images: int, steps: list[int] | None = None) -> list[int]:
    """The supports of the step schedule: ``steps`` as given, else the repository's rule by set size."""
    if steps is not None:
        return list(steps)
    if train_images < 20_000:
        return [100, 200, 300, 400, 500]
    if train_images < 500_000:
        return [500, 3000, 6000, 9000, 10_000]
    return [500, 6000, 12_000, 18_000, 20_000]


def lr_at(step: int, supports: list[int], lr: float) -> float:
    """The lr of ``step`` (0-based; ``step`` < the last support): warm-up, then a tenth after each middle support."""
    if step < supports[0]:
        return lr * step / supports[0]
    return lr * 0.1 ** sum(1 for s in supports[1:-1] if s < step)


def _identity(P: Params, train) -> dict:
    """The head's identity (``ssdlib.train_once``): the ``mos`` section and the classifier it is built on."""
    classifier = {k: v for k, v in asdict(recipe_for(P, "SupCE")).items() if k not in Recipe.MONITORING}
    return {
        "mos": P.mos.model_dump(mode="json"),
        "classifier": classifier,
        "arch": P.encoder.arch,
        "width": P.encoder.width,
        "data": train_once.data_identity(P, train),
    }


def trained(P: Params, bundle, output_dir: str | Path, *, log=None, frozen: FeatureSet | None = None) -> nn.Module:
    """The classifier with its fine-tuned group head, in eval mode (its ``classify`` gives the group logits).
    ``frozen``: the classifier's features of ``bundle.train`` with labels, where the caller has them
    (notebook 05 does; on ImageNet that spares a pass over 1.28 M images)."""
    log = log or LOG.info
    if P.mos.groups is None:
        raise ParamsError("mos.groups is not set: name the class indices of each group (e.g. params/offline.yaml)")
    groups = resolve(P.mos.groups)
    check_groups(groups, bundle.num_classes)
    classifier = classifier_for(P, bundle, output_dir)
    model = copy.deepcopy(classifier)
    model.head = nn.Linear(classifier.head.in_features, bundle.num_classes + len(groups))
    nn.init.zeros_(model.head.weight)
    nn.init.zeros_(model.head.bias)
    device = resolve_device(P.device)
    identity = _identity(P, bundle.train)
    path = Path(output_dir) / CHECKPOINT_DIR / f"MOS_{P.encoder.arch}_w{P.encoder.width}.pt"
    with train_once.slot(path, identity, f"training MOS into {path}", log) as state:
        if state is not None:  # a MOS head is saved once, finished
            model.head.load_state_dict(state["head"])
            log(f"loaded the MOS head from {path}")
            return model.to(device).eval()
        supports = schedule(len(bundle.train), P.mos.steps)
        log(f"training MOS's group head ({len(groups)} groups) for {supports[-1]} steps; it goes to {path}")
        if frozen is None:
            frozen = extract(classifier, bundle.train, device=device, batch_size=P.data.batch_size, desc="MOS features")
        losses = _fit_head(model.head, frozen, groups, P, supports, device)
        state = {"head": model.head.state_dict(), "finished": True, "loss": losses, "params": {"identity": identity}}
        ckpt.save_atomic({"format": ckpt.FORMAT, **state}, path)
    return model.to(device).eval()


def on_features(model: nn.Module, frozen: FeatureSet) -> FeatureSet:
    """``frozen`` (features of the CE classifier MOS was built on) with the group head's logits: the
    encoder is the classifier's, frozen, so its features need no second pass over the images."""
    head = model.head
    weight, bias = head.weight.detach().cpu().double(), head.bias.detach().cpu().double()
    logits = torch.from_numpy(np.asarray(frozen.features, dtype=np.float64)) @ weight.T + bias
    return FeatureSet(features=frozen.features, logits=logits.numpy(), labels=frozen.labels)


def _fit_head(head: nn.Linear, frozen, groups: list[list[int]], P: Params, supports: list[int], device) -> list[float]:
    """SGD on the group loss of the frozen features; the loss of every step."""
    x = torch.from_numpy(frozen.features).float().to(device)
    y = targets(torch.from_numpy(frozen.labels), groups).to(device)
    head.to(device).train()
    optimizer = torch.optim.SGD(head.parameters(), lr=P.mos.lr, momentum=P.mos.momentum)
    generator = torch.Generator().manual_seed(P.seed)
    order, losses = torch.empty(0, dtype=torch.long), []
    for step in range(supports[-1]):
        if len(order) < min(P.mos.batch_size, len(x)):
            order = torch.randperm(len(x), generator=generator)
        batch, order = order[: P.mos.batch_size], order[P.mos.batch_size :]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, supports, P.mos.lr)
        loss = group_loss(head(x[batch]), y[batch], groups)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"MOS's loss is {loss.item()} at step {step}: lower mos.lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    head.eval()
    return losses
