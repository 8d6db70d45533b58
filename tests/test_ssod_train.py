"""SSOD training on a tiny synthetic task: logs, lr schedule, exact resume, shared warm-up, selection."""

import math

import numpy as np
import pytest
import torch

from ssdlib import params, profiles
from ssdlib.data.memory import ImageTensorDataset, tensors
from ssdlib.data.registry import DatasetBundle
from ssdlib.ssod import ablations, build, runs, scoring
from ssdlib.ssod.train import SSODTrainer, lr_at, split_validation
from ssdlib.training.skeleton import NonFiniteLossError

pytestmark = pytest.mark.slow


def shapes_on_noise(n: int, seed: int) -> ImageTensorDataset:
    """16 px images: a bright square (class 0) or a bright bar (class 1) at a random place on dark noise."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 16, 16, generator=g) * 0.3
    labels = torch.arange(n) % 2
    for i in range(n):
        r, c = torch.randint(0, 10, (2,), generator=g).tolist()
        if labels[i] == 0:
            images[i, :, r : r + 6, c : c + 6] = 1.0
        else:
            images[i, :, r : r + 6, c + 2 : c + 4] = 1.0
    return ImageTensorDataset((images * 255).round().to(torch.uint8), labels)


def tiny_params(**ssod) -> params.Params:
    cfg = dict(
        backbone="resnet18",
        width=4,
        stem="cifar",
        input_size=32,
        warmup_epochs=1,
        epochs=3,
        batch_size=16,
        lr=3e-3,
        crop_scale=[0.6, 1.0],
        val_fraction=0.25,
        gamma=0.8,
    )
    return profiles.validate({"profile": "tiny", "device": "cpu", "ssod": {**cfg, **ssod}})


def bundle():
    noise = ImageTensorDataset(torch.randint(0, 80, (32, 3, 16, 16), dtype=torch.uint8), torch.full((32,), -1))
    return DatasetBundle(
        "shapes",
        shapes_on_noise(64, 0),
        shapes_on_noise(32, 1),
        {"noise": noise},
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
        class_names=["a", "b"],
        normalized=False,
    )


def trainer_for(P, seed=0):
    model = build.new_ssod_net(P.ssod, 2, None, seed)
    return SSODTrainer(model, P.ssod, seed=seed, log=lambda _m: None, progress=False)


def data_of(P):
    return split_validation(tensors(bundle().train), P.ssod.val_fraction, 0)


def test_step_log_schedule_and_warmup():
    P = tiny_params(lr_step=1, lr_decay=0.5)
    trainer = trainer_for(P)
    train, val = data_of(P)
    h = trainer.fit(train, val=val)
    steps = len(train[0]) // P.ssod.batch_size
    assert len(h.step_ce) == len(h.step_n_id) == len(h.step_lr) == 3 * steps
    assert h.step_lr == [lr_at(e - 1, 3e-3, 1, 0.5) for e in h.step_epoch] and h.step_lr[-1] == 3e-3 / 4
    assert all(math.isnan(v) for v, e in zip(h.step_ce_ood, h.step_epoch) if e == 1)  # warm-up: CE only
    assert all(math.isfinite(v) for v, e in zip(h.step_ce_ood, h.step_epoch) if e > 1)
    assert h.locations == 16 and all(0 <= n <= 16 * 16 for n in h.step_n_id + h.step_n_ood)
    assert len(h.val_accuracy) == 3 and h.best_epoch in (2, 3)


def test_resume_reaches_the_same_weights():
    P = tiny_params()
    train, val = data_of(P)
    straight = trainer_for(P)
    straight.fit(train, val=val)

    first = trainer_for(P)
    first.fit(train, val=val, epochs=2)
    state = first.state_dict()
    resumed = trainer_for(P, seed=5)  # wrong seed on purpose: the saved random state must win
    resumed.load_state_dict(state)
    resumed.fit(train, val=val)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert straight.history.step_ce == resumed.history.step_ce


def test_reading_the_step_log_in_batches_changes_no_result():
    """The GPU's deferred reads of the step log give the same log and weights as reading every step."""
    P = tiny_params()
    train, val = data_of(P)
    every_step, deferred = trainer_for(P), trainer_for(P)
    deferred.read_every = 50
    every_step.fit(train, val=val)
    deferred.fit(train, val=val)
    logs = [{k: v for k, v in t.history.to_dict().items() if k != "seconds"} for t in (every_step, deferred)]
    np.testing.assert_equal(logs[1], logs[0])  # NaN (warm-up CE_ood) equals NaN here
    for a, b in zip(every_step.model.state_dict().values(), deferred.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_nan_loss_names_epoch_and_step():
    P = tiny_params(lr=1e30, warmup_epochs=0)
    trainer = trainer_for(P)
    trainer.read_every = 50
    with pytest.raises(NonFiniteLossError, match=r"at epoch 1/3, step [12]\. SSOD diverged"):
        trainer.fit(*data_of(P)[:1], val=data_of(P)[1])


def test_selection_keeps_the_best_validation_epoch_after_warmup():
    P = tiny_params(epochs=4)
    train, val = data_of(P)
    trainer = trainer_for(P)
    h = trainer.fit(train, val=val)
    after_warmup = h.val_accuracy[1:]
    assert h.best_epoch == 2 + after_warmup.index(max(after_warmup))
    last = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.use_selected()
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, trainer.best_state[k])
    assert h.best_epoch == 4 or any(not torch.equal(last[k], v) for k, v in trainer.best_state.items())


def test_runs_share_the_warmup_without_changing_weights(tmp_path):
    P, data = tiny_params(), bundle()
    logs = []
    runs.trained(P, data, tmp_path / "shared", log=logs.append, progress=False)  # writes the warm-up state
    shared = runs.trained(P, data, tmp_path / "shared", log=logs.append, progress=False, alpha=0.0, balance="DR")
    alone = runs.trained(P, data, tmp_path / "alone", log=lambda _m: None, progress=False, alpha=0.0, balance="DR")
    assert any("shared 1-epoch CE warm-up" in m for m in logs)
    for a, b in zip(shared.model.state_dict().values(), alone.model.state_dict().values()):
        assert torch.equal(a, b)

    again = runs.trained(P, data, tmp_path / "shared", log=logs.append, progress=False, alpha=0.0, balance="DR")
    assert "loaded the SSOD run" in logs[-1]
    for a, b in zip(shared.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)


def test_evaluate_rows_name_method_and_setting(tmp_path):
    P, data = tiny_params(), bundle()
    ssod = runs.trained(P, data, tmp_path, log=lambda _m: None, progress=False)
    vanilla = runs.trained(P, data, tmp_path, log=lambda _m: None, progress=False, alpha=0.0)
    (row,) = scoring.evaluate(ssod, P, data, setting="alpha=1.5")
    assert (row["method"], row["training_mode"], row["ood_dataset"], row["setting"]) == (
        "SSOD",
        "SSOD",
        "noise",
        "alpha=1.5",
    )
    assert 0 <= row["fpr95"] <= 1 and 0 <= row["id_accuracy"] <= 1
    (row,) = scoring.evaluate(vanilla, P, data)
    assert (row["method"], row["training_mode"], row["setting"]) == ("MSP", "CE", "vanilla")


def test_backbone_ablation_pairs_ssod_with_its_vanilla_classifier(tmp_path):
    P, data = tiny_params(backbones=["resnet18"], ablation_ood="noise"), bundle()
    rows = ablations.ablation(P, data, tmp_path, "backbone", log=lambda _m: None, progress=False)
    table = ablations.ablation_table(rows, "backbone")
    assert table[["backbone", "method"]].values.tolist() == [["resnet18", "SSOD"], ["resnet18", "MSP"]]
    with pytest.raises(ValueError, match="data.ood_datasets"):
        ablations.ablation(tiny_params(ablation_ood="places365"), data, tmp_path, "alpha")


def test_ssod_with_supcon_trains_beside_ssod_without_it(tmp_path):
    """SSOD (w/): its own run (projection head, SupCon logged), while SSOD (w/o) keeps its run and weights."""
    plain, data = tiny_params(), bundle()
    with_ = tiny_params(supcon_weight=0.5, supcon_temperature=0.2)
    without = runs.trained(plain, data, tmp_path, log=lambda _m: None, progress=False)
    same = runs.trained(with_, data, tmp_path, log=lambda _m: None, progress=False)  # the profile's w/o run
    assert same.path == without.path  # the SupCon settings are not part of SSOD (w/o)'s identity
    supcon = runs.trained(with_, data, tmp_path, log=lambda _m: None, progress=False, supcon=True)
    assert supcon.path != without.path and hasattr(supcon.model, "projection")
    assert all(math.isfinite(v) for v in supcon.history.step_supcon)
    assert all(math.isnan(v) for v in without.history.step_supcon)
    (row,) = scoring.evaluate(supcon, with_, data)
    assert (row["method"], row["training_mode"], row["setting"]) == (
        "SSOD+",
        "SSOD+SupCon",
        "alpha=1.5,balance=LWB,supcon=0.5",
    )
    with pytest.raises(ValueError, match="supcon_weight > 0"):
        build.settings(plain, supcon=True)


def test_ssod_with_supcon_starts_from_a_supcon_checkpoint(tmp_path):
    """A SupContrast-format file (DataParallel's ``module.``, a projection head of its own) fills the backbone."""
    from ssdlib.models.heads import SSLNet
    from ssdlib.models.resnet import resnet

    torch.manual_seed(3)
    pretrained = SSLNet(resnet("resnet18", width=4, stem="cifar"))
    state = {k.replace("encoder.", "encoder.module.", 1): v for k, v in pretrained.state_dict().items()}
    torch.save({"model": state, "epoch": 100}, tmp_path / "supcon.pth")
    P = tiny_params(supcon_weight=1.0, supcon_checkpoint=str(tmp_path / "supcon.pth"))
    model = build.new_ssod_net(build.settings(P, supcon=True), 2, None, seed=0)
    for k, v in pretrained.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[k], v), k
    with pytest.raises(Exception, match="does not fit"):
        build.new_ssod_net(
            build.settings(
                tiny_params(supcon_weight=1.0, supcon_checkpoint=str(tmp_path / "supcon.pth"), width=8), supcon=True
            ),
            2,
            None,
        )


def test_crops_drawn_by_the_loader_pass_through_the_trainer():
    """At ImageNet scale the loader yields [views, 3, H, W] crops of every image; the trainer takes view 0
    (view 1 for SSOD (w/)'s second crop) and draws no crop of its own."""
    from torch.utils.data import TensorDataset

    P = tiny_params(select="last")
    images = bundle().train
    crops = TensorDataset(torch.stack([images[i][0] for i in range(len(images))])[:, None], images.labels)
    trainer = trainer_for(P)
    before = trainer.generators["augment"].get_state()
    h = trainer.fit(crops)
    assert torch.equal(trainer.generators["augment"].get_state(), before)
    assert len(h.step_ce) == 3 * (len(images) // P.ssod.batch_size) and h.locations == 16
    trainer.fit(tensors(images), epochs=4)  # images held in memory: the trainer crops them itself
    assert not torch.equal(trainer.generators["augment"].get_state(), before)


def released_params(folder, **ssod):
    return tiny_params(width=64, stem="imagenet", pretrained=str(folder), vanilla="released", **ssod)


def test_released_vanilla_is_the_pretrained_network_scored_as_it_is(tmp_path):
    """SSOD's Table 6 vanilla rows: torchvision's network with its own classifier, scored by MSP, nothing trained."""
    import torchvision

    torch.manual_seed(4)
    tv = torchvision.models.resnet18(num_classes=2).eval()
    torch.save(tv.state_dict(), tmp_path / "resnet18.pth")
    P, data, logs = released_params(tmp_path), bundle(), []
    run = runs.trained(P, data, tmp_path / "out", log=logs.append, progress=False, alpha=0.0)
    assert run.path is None and run.history.step_ce == [] and not (tmp_path / "out").exists()
    assert "not trained" in logs[-1]
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(run.model(x), tv(x))
    (row,) = scoring.evaluate(run, P, data)
    assert (row["method"], row["training_mode"], row["setting"]) == ("MSP", "CE", "vanilla")

    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(ValueError, match="does not fit the ID set's 2 classes: use vanilla: fine_tuned"):
        runs.trained(P, data, tmp_path / "out", log=logs.append, progress=False, alpha=0.0)
    with pytest.raises(params.ParamsError, match="set pretrained, or vanilla: fine_tuned"):
        tiny_params(vanilla="released")
