"""The training-method registry: the built-in methods, a made-up one added by this file alone, and the
recipe carrying a whole params section into a checkpoint's identity."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F
from conftest import identity_augment
from test_experiment import tiny_bundle, tiny_params
from torch import nn

from ssdlib import experiment, needs, params, plan
from ssdlib.training import Recipe, load_checkpoint
from ssdlib.training import methods as training_methods
from ssdlib.training.methods import TrainingMethod, register

pytestmark = pytest.mark.usefixtures("one_thread")


class MeanColour(nn.Module):
    """A made-up network: class logits from the mean colour of the image."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def squared_error(recipe, augment):
    """A made-up objective: squared error between softmax and one-hot targets, on the given views."""

    def loss(model, x, y, generator, autocast):
        with autocast():
            p = model(augment(x, generator=generator)).float().softmax(-1)
        return (p - F.one_hot(y, p.shape[1]).float()).pow(2).sum(-1).mean()

    return loss


TOY = register(
    TrainingMethod(
        key="MeanColour",
        section="classifier",
        build=lambda P, num_classes, normalize: MeanColour(num_classes),
        objective=squared_error,
        augment=lambda compiled: identity_augment,
        monitors=("top1",),
    )
)


def test_the_built_in_methods_and_their_sections():
    known = training_methods.methods()
    assert {k: known[k].section for k in ("SimCLR", "SupCon", "SupCE", "GODIN", "SSOD", "CSI")} == {
        "SimCLR": "encoder",
        "SupCon": "encoder",
        "SupCE": "classifier",
        "GODIN": "classifier",
        "SSOD": "ssod",
        "CSI": "csi",
    }
    assert training_methods.encoder_modes() == ["SimCLR", "SupCon", "SupCE"]  # what encoder.training_mode takes
    assert known["SSOD"].objective is None  # its own trainer
    with pytest.raises(ValueError, match="unknown training method 'NoSuch'; registered: .*SimCLR"):
        training_methods.get("NoSuch")


def test_a_key_is_registered_once_and_a_method_needs_objective_and_views_together():
    with pytest.raises(ValueError, match="already registered as 'SupCE'"):
        register(TrainingMethod(key="SupCE", section="encoder", build=lambda *a: None))
    with pytest.raises(ValueError, match="both objective and augment"):
        register(TrainingMethod(key="Half", section="encoder", build=lambda *a: None, objective=squared_error))
    assert "Half" not in training_methods.methods()


def test_a_made_up_method_trains_once_per_folder_through_the_shared_loop(tmp_path):
    P, bundle = tiny_params(), tiny_bundle()
    model = experiment.model_for(P, bundle, tmp_path, "MeanColour")
    path = tmp_path / "checkpoints" / "MeanColour_resnet18_w4.pt"
    state = load_checkpoint(path)
    assert isinstance(model, MeanColour) and not model.training and state["finished"]
    assert state["recipe"]["mode"] == "MeanColour" and state["total_epochs"] == P.classifier.epochs
    assert len(state["history"]["test_accuracy"]) == P.classifier.epochs  # its top-1 monitor ran
    assert all(v != v for v in state["history"]["knn_accuracy"])  # and no kNN monitor (NaN)
    again = experiment.model_for(P, bundle, tmp_path, "MeanColour")  # reused, not retrained
    torch.testing.assert_close(again.head.weight, model.head.weight)
    assert load_checkpoint(path)["history"]["seconds"] == state["history"]["seconds"]


def test_ssod_is_not_trained_by_the_shared_loop(tmp_path):
    with pytest.raises(ValueError, match="SSOD trains with a trainer of its own"):
        experiment.model_for(tiny_params(), tiny_bundle(), tmp_path, "SSOD")


class WithExtraKey(params.ClassifierParams):
    """A classifier section with a key no field of Recipe holds (a new method's hyper-parameter)."""

    label_smoothing: float = 0.0


def test_the_recipe_carries_the_whole_section_into_the_identity():
    released = (training_methods.get("SupCE").release_key,)  # recipe_for leaves it out, as it trains nothing
    plain = Recipe.from_section(WithExtraKey(), seed=0, mode="SupCE", scoring=released)
    smoothed = Recipe.from_section(WithExtraKey(label_smoothing=0.1), seed=0, mode="SupCE", scoring=released)
    assert plain.section == {"label_smoothing": 0.0} and smoothed.section == {"label_smoothing": 0.1}
    assert smoothed.differences(asdict(plain)) == [
        "section: {'label_smoothing': 0.0} in the checkpoint, {'label_smoothing': 0.1} now"
    ]
    e = Recipe.from_section(params.EncoderParams(arch="resnet18", width=8, training_mode="SupCon"), seed=0)
    assert e.section == {"arch": "resnet18", "width": 8}  # training_mode, recipe, supcon_epochs: read into fields
    assert e.mode == "SupCon"


def test_the_plan_lists_what_the_needs_declare():
    P = tiny_params()
    assert needs.of(P, "02") == ["SimCLR", "SupCon", "SupCE"] and needs.of(P, "00") == []
    assert needs.encoders(P, "02") == ["SimCLR", "SupCon"] and needs.encoders(P, "03") == ["SimCLR"]
    assert needs.of(P, "05") == ["SupCE", "SupCon", "SimCLR", "SSOD"]
    with_godin = P.model_copy(update={"baselines": P.baselines.model_copy(update={"methods": ["msp", "godin"]})})
    assert needs.of(with_godin, "05") == ["SupCE", "GODIN", "SupCon", "SimCLR", "SSOD"]
    names = [m.name for m in plan.models(P, ["02"], 100)]
    assert names == ["SimCLR resnet18 w4", "SupCon resnet18 w4", "SupCE resnet18 w4"]
    epochs = {m.name: m.epochs for m in plan.models(P, ["02"], 100)}
    assert epochs["SupCE resnet18 w4"] == P.classifier.warmup_epochs + P.classifier.epochs
    assert epochs["SimCLR resnet18 w4"] == P.encoder.warmup_epochs + P.encoder.epochs


def test_knn_plus_off_trains_no_supcon_encoder_unless_ssd_plus_needs_it():
    P = tiny_params()
    off = P.model_copy(update={"baselines": P.baselines.model_copy(update={"knn_plus": False})})
    assert "SupCon" in needs.of(off, "05")  # SSD+ (ssd.in_comparison) still scores it
    neither = off.model_copy(update={"ssd": off.ssd.model_copy(update={"in_comparison": False})})
    assert needs.of(neither, "05") == ["SupCE", "SSOD"]


def test_a_released_network_s_key_is_in_no_identity_of_its_section():
    """classifier.pretrained names SupCE's released network: neither SupCE's recipe nor GODIN's (same
    section) counts it, so setting it never retrains GODIN."""
    for mode in ("SupCE", "GODIN"):
        assert "pretrained" not in experiment.recipe_for(tiny_params(), mode).section
