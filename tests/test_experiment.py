"""experiment: devices, output folders, and "load the profile's model or train a quick one"."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ssdlib import experiment, params, profiles
from ssdlib.data.memory import ImageTensorDataset
from ssdlib.data.normalize import Normalize
from ssdlib.training import load_checkpoint
from ssdlib.training.loop import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_params(**encoder):
    return profiles.validate(
        {
            "profile": "tiny",
            "device": "cpu",
            "seed": 3,
            "data": {"image_size": 16},
            "encoder": {
                "arch": "resnet18",
                "width": 4,
                "epochs": 1,
                "warmup_epochs": 1,
                "batch_size": 16,
                "lr": 0.1,
                "save_every": 1,
                "knn_k": 5,
                **encoder,
            },
            "classifier": {"epochs": 2, "batch_size": 16, "lr": 0.1},
        }
    )


def tiny_bundle(seed=0):
    g = torch.Generator().manual_seed(seed)

    def images(n):
        return ImageTensorDataset(torch.rand(n, 3, 16, 16, generator=g), torch.randint(0, 4, (n,), generator=g))

    return SimpleNamespace(
        train=images(48), test=images(16), ood={}, num_classes=4, normalize=lambda: Normalize([0.5] * 3, [0.25] * 3)
    )


def test_resolve_device(monkeypatch):
    assert experiment.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert experiment.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(params.ParamsError, match="no CUDA GPU.*device: auto"):
        experiment.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert experiment.resolve_device("auto") == torch.device("cuda")


def test_notebook_output_creates_the_figure_folder(tmp_path):
    folder = experiment.notebook_output(tmp_path / "out", "01_simclr_pretraining")
    assert folder == tmp_path / "out" / "figures" / "01_simclr_pretraining" and folder.is_dir()


def equal_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.slow
def test_encoder_is_trained_once_then_loaded_and_retrained_when_params_change(tmp_path, capsys, monkeypatch):
    P, bundle = tiny_params(), tiny_bundle()
    model = experiment.encoder_for(P, bundle, tmp_path)
    said = capsys.readouterr().out
    path = tmp_path / "checkpoints" / "SimCLR_resnet18_w4.pt"
    assert f"training a quick SimCLR resnet18 (width 4) for 2 epochs on cpu; checkpoints go to {path}" in said
    assert path.is_file() and not model.training
    history = experiment.training_history(P, tmp_path)
    assert history.epoch == [1, 2] and history.checkpoint == str(path)

    with monkeypatch.context() as m:
        m.setattr(experiment, "train", lambda *a, **k: pytest.fail("a finished model must not be retrained"))
        again = experiment.encoder_for(
            P.model_copy(update={"encoder": P.encoder.model_copy(update={"save_every": 2})}), bundle, tmp_path
        )  # monitoring params do not matter
    assert "loaded the trained SimCLR model" in capsys.readouterr().out and equal_weights(model, again)

    changed = experiment.encoder_for(tiny_params(lr=0.05), bundle, tmp_path)
    assert "trained with other params" in capsys.readouterr().out and not equal_weights(model, changed)
    [kept] = (tmp_path / "checkpoints").glob("SimCLR_resnet18_w4.other-params-*.pt")  # the old model is kept
    saved = load_checkpoint(kept)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_a_killed_encoder_run_is_resumed_to_the_same_weights(tmp_path, capsys, monkeypatch):
    P, bundle = tiny_params(), tiny_bundle()
    straight = experiment.encoder_for(P, bundle, tmp_path / "straight")

    original = Trainer._train_epoch

    def killed_in_epoch_2(self, train, epoch, *rest):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, train, epoch, *rest)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "_train_epoch", killed_in_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            experiment.encoder_for(P, bundle, tmp_path / "killed")
    capsys.readouterr()
    resumed = experiment.encoder_for(P, bundle, tmp_path / "killed")
    assert "stopped after epoch 1/2; resuming it" in capsys.readouterr().out
    assert equal_weights(straight, resumed)


@pytest.mark.slow
def test_classifier_is_the_supce_model_of_the_same_size(tmp_path, capsys):
    P, bundle = tiny_params(), tiny_bundle()
    clf = experiment.classifier_for(P, bundle, tmp_path)
    assert (tmp_path / "checkpoints" / "SupCE_resnet18_w4.pt").is_file()
    assert clf(torch.rand(2, 3, 16, 16)).shape == (2, 4)
    history = experiment.training_history(P, tmp_path, mode="SupCE")
    assert len(history.epoch) == 2 and 0 <= history.test_accuracy[-1] <= 1
    capsys.readouterr()
    assert equal_weights(experiment.encoder_for(P, bundle, tmp_path, mode="SupCE"), clf)
    assert "loaded the trained SupCE model" in capsys.readouterr().out


@pytest.mark.slow
def test_load_or_train_keys_on_name_and_extra_identity(tmp_path, capsys):
    """What other model families (GODIN) reuse: their own file name, their own identity fields."""
    P, bundle = tiny_params(), tiny_bundle()
    recipe = experiment.Recipe.from_section(P.classifier, seed=P.seed, mode="SupCE")
    experiment.load_or_train(
        P, bundle, tmp_path, experiment.build_model(P, bundle, "SupCE"), recipe, name="Custom", identity={"variant": 1}
    )
    assert (tmp_path / "checkpoints" / "Custom_resnet18_w4.pt").is_file()
    capsys.readouterr()
    experiment.load_or_train(
        P, bundle, tmp_path, experiment.build_model(P, bundle, "SupCE"), recipe, name="Custom", identity={"variant": 2}
    )
    assert "trained with other params" in capsys.readouterr().out


def test_supcon_epochs_apply_to_supcon_only():
    P = tiny_params(epochs=7, supcon_epochs=3)
    assert experiment.encoder_recipe(P, "SupCon").epochs == 3
    assert experiment.encoder_recipe(P, "SimCLR").epochs == 7
    assert experiment.encoder_recipe(P).mode == "SimCLR" and experiment.encoder_recipe(P).epochs == 7
    assert experiment.encoder_recipe(tiny_params(epochs=7), "SupCon").epochs == 7  # null: the same epochs


def test_the_run_s_seed_and_determinism_reach_every_recipe():
    P = tiny_params(epochs=7).model_copy(update={"seed": 5, "deterministic": True})
    for recipe in (experiment.encoder_recipe(P), experiment.recipe_for(P, "SupCE")):
        assert recipe.seed == 5 and recipe.deterministic
    assert not experiment.encoder_recipe(tiny_params(epochs=7)).deterministic


@pytest.mark.slow
def test_a_model_trained_on_other_data_is_not_reused(tmp_path, capsys):
    """Same params, other images (the data files changed): retrained, and the old model kept."""
    P = tiny_params()
    first = experiment.encoder_for(P, tiny_bundle(seed=0), tmp_path)
    capsys.readouterr()
    experiment.encoder_for(P, tiny_bundle(seed=1), tmp_path)
    said = capsys.readouterr().out
    assert "trained with other data (sample_sha256:" in said and "training a new one" in said
    [kept] = (tmp_path / "checkpoints").glob("SimCLR_resnet18_w4.other-params-*.pt")
    saved = load_checkpoint(kept)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in first.state_dict().items())


def test_a_released_classifier_stands_in_for_supce(tmp_path):
    """classifier.pretrained (the ImageNet tables' setting): notebook 05's CE classifier is the released
    network as it is, its fc the head; nothing trained, nothing planned; a class count that is not the ID
    set's is an error naming the key."""
    from torchvision.models import resnet18

    from ssdlib import needs, plan

    torch.manual_seed(0)
    released = resnet18(num_classes=4).state_dict()
    torch.save(released, tmp_path / "resnet18.pth")
    raw = tiny_params(width=64).model_dump(mode="json")
    raw["classifier"]["pretrained"] = str(tmp_path / "resnet18.pth")
    P = profiles.validate(raw)
    model = experiment.classifier_for(P, tiny_bundle(), tmp_path / "out")
    assert torch.equal(model.head.weight, released["fc.weight"]) and not model.training
    assert not (tmp_path / "out" / "checkpoints").exists()
    assert "SupCE" in needs.of(P, "05") and not any(m.name.startswith("SupCE") for m in plan.models(P, ["05"], 48))
    with pytest.raises(params.ParamsError, match="classifies 4 classes.*has 10"):
        experiment.classifier_for(P, SimpleNamespace(**{**vars(tiny_bundle()), "num_classes": 10}), tmp_path / "o")
    with pytest.raises(params.ParamsError, match="encoder.width is 4"):
        profiles.validate({**tiny_params().model_dump(mode="json"), "classifier": raw["classifier"]})


def test_a_retrain_forced_by_changed_params_says_which_on_the_runners_terminal(tmp_path, monkeypatch):
    """The notebook's kernel logs to its cell; `ssdlib reproduce` shows the lines of progress.log."""
    from ssdlib import progress, train_once
    from ssdlib.training import checkpoint as ckpt

    path, lines = tmp_path / "SimCLR_resnet18_w4.pt", tmp_path / "progress.log"
    data = {"images": {"size": 20}}
    saved = {"arch": "resnet18", "recipe": {"lr": 0.1, "epochs": 2, "mode": "SimCLR"}, "data": data}
    ckpt.save_atomic({"format": ckpt.FORMAT, "params": {"identity": saved}}, path)
    monkeypatch.setenv(progress.ENV_VAR, str(lines))
    said = []
    now = {**saved, "recipe": {**saved["recipe"], "lr": 0.05, "epochs": 3}}
    with train_once.slot(path, now, "training", said.append) as state:
        assert state is None
    expected = "was trained with other params (recipe.lr: 0.1 -> 0.05; recipe.epochs: 2 -> 3); kept it as"
    assert expected in said[0] and expected in lines.read_text()
