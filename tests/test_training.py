"""Training: schedule vs torch's schedulers, kNN vs scikit-learn, atomic checkpoints, exact resume,
divergence handling, the loss-scale switch, SupCE on any logits module."""

from __future__ import annotations

import math
import os
from dataclasses import asdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import UnitLinear, identity_augment
from torch import nn

from ssdlib.models.heads import SSLNet, SupNet
from ssdlib.models.resnet import resnet
from ssdlib.params import ClassifierParams, EncoderParams
from ssdlib.training import (
    CheckpointError,
    NonFiniteLossError,
    Recipe,
    Trainer,
    TrainingInterrupted,
    load_checkpoint,
    train,
)
from ssdlib.training import checkpoint as ckpt
from ssdlib.training.distributed import shard_batches
from ssdlib.training.losses import contrastive_loss
from ssdlib.training.methods import get as training_method
from ssdlib.training.monitor import knn_per_class, knn_predict
from ssdlib.training.schedule import ETA_MIN, WarmupCosine

pytestmark = pytest.mark.usefixtures("one_thread")


def sgd():
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5, momentum=0.9)


# -- schedule -----------------------------------------------------------------------------------


def ssd_schedule(lr, warmup_steps, cosine_steps):
    """(lr, momentum) used at every step by SSD's train.py: CyclicLR warm-up, then CosineAnnealingLR."""
    opt = sgd()
    used = []
    warm = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.01, max_lr=lr, step_size_up=warmup_steps)
    for _ in range(warmup_steps):
        used.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        opt.step()
        warm.step()
    for g in opt.param_groups:  # SSD resets the lr for the main phase, not the momentum
        g["lr"] = g["initial_lr"] = lr
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cosine_steps, eta_min=1e-4)
    for _ in range(cosine_steps):
        used.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        opt.step()
        cos.step()
    return used


def ours(lr, warmup_steps, cosine_steps, original):
    opt = sgd()
    sched = WarmupCosine(
        opt,
        lr=lr,
        momentum=0.9,
        warmup_steps=warmup_steps,
        cosine_steps=cosine_steps,
        original_warmup_momentum=original,
    )
    used = []
    for _ in range(warmup_steps + cosine_steps):
        used.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        sched.step()
    return used


def test_schedule_matches_ssd_cyclic_then_cosine_including_its_momentum_bug():
    expected = ssd_schedule(0.5, 30, 70)
    got = ours(0.5, 30, 70, original=True)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert expected[30][1] == pytest.approx(0.8) and expected[-1][1] == pytest.approx(0.8)


def test_schedule_default_keeps_momentum_and_has_the_same_lr():
    expected = ssd_schedule(0.5, 30, 70)
    got = ours(0.5, 30, 70, original=False)
    np.testing.assert_allclose([lr for lr, _ in got], [lr for lr, _ in expected], rtol=1e-9)
    assert {m for _, m in got} == {0.9}


def test_schedule_closed_form_points():
    s = WarmupCosine(sgd(), lr=0.5, momentum=0.9, warmup_steps=10, cosine_steps=100)
    assert s.lr(0) == pytest.approx(0.01) and s.lr(5) == pytest.approx(0.255) and s.lr(10) == pytest.approx(0.5)
    assert s.lr(60) == pytest.approx(ETA_MIN + (0.5 - ETA_MIN) / 2)
    assert s.lr(110) == pytest.approx(ETA_MIN)


# -- batches, kNN, objectives ---------------------------------------------------------------------


def test_shard_batches_hand_computed():
    order = torch.arange(10)
    assert [b.tolist() for b in shard_batches(order, 4, 2, 0)] == [[0, 1], [4, 5]]  # last batch: 1 per rank, dropped
    assert [b.tolist() for b in shard_batches(order, 4, 2, 1)] == [[2, 3], [6, 7]]
    assert [b.tolist() for b in shard_batches(order, 4, 1, 0)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError, match="multiple of 2"):
        shard_batches(order, 5, 2, 0)


def test_knn_predict_agrees_with_sklearn_cosine_knn():
    from sklearn.neighbors import KNeighborsClassifier

    g = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(300, 16, generator=g), torch.randn(120, 16, generator=g)
    labels = torch.randint(0, 5, (300,), generator=g)
    expected = KNeighborsClassifier(20, metric="cosine").fit(bank.numpy(), labels.numpy()).predict(queries.numpy())
    np.testing.assert_array_equal(knn_predict(bank, labels, queries, k=20).numpy(), expected)


def test_knn_per_class_hand_case():
    """Bank: class a at +x, b at +y, c at -x. Queries: two a near +x, one a and both c near +y (taken for b)."""
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    queries = torch.tensor([[1.0, 0.1], [1.0, -0.1], [0.1, 1.0], [0.0, 1.0], [-0.1, 1.0], [-1.0, 0.1]])
    table = knn_per_class(
        bank, torch.tensor([0, 1, 2]), queries, torch.tensor([0, 0, 0, 2, 2, 1]), ["a", "b", "c"], k=1
    )
    np.testing.assert_allclose(table["accuracy"], [2 / 3, 0.0, 0.0])
    assert table["most often taken for"].tolist() == ["b", "c", "b"]
    np.testing.assert_allclose(table["share"], [1 / 3, 1.0, 1.0])


def test_knn_predict_hand_case_and_tie_goes_to_smallest_label():
    bank = torch.tensor([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]])
    labels = torch.tensor([3, 3, 1, 1])
    assert knn_predict(bank, labels, torch.tensor([[1.0, 0.05], [0.0, 2.0]]), k=2).tolist() == [3, 1]
    assert knn_predict(bank, labels, torch.tensor([[1.0, 1.0]]), k=4).tolist() == [1]  # 2 votes each


def test_original_loss_scale_multiplies_the_loss_by_T_over_0_07():
    torch.manual_seed(0)
    model, x, y = UnitLinear(), torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 0, 1, 2, 2])
    supcon = training_method("SupCon").objective
    plain = supcon(Recipe(mode="SupCon", temperature=0.5), identity_augment)(model, x, y, None, torch.no_grad)
    scaled = supcon(Recipe(mode="SupCon", temperature=0.5, original_loss_scale=True), identity_augment)(
        model, x, y, None, torch.no_grad
    )
    z = model(x)
    assert plain.item() == pytest.approx(contrastive_loss(torch.stack([z, z], 1), y, 0.5).item(), rel=1e-6)
    assert scaled.item() == pytest.approx(plain.item() * 0.5 / 0.07, rel=1e-6)


def test_recipe_from_params_sections():
    e = EncoderParams(epochs=7, lr=0.3, training_mode="SupCon")
    r = Recipe.from_section(e, seed=3)
    assert (r.mode, r.epochs, r.lr, r.seed, r.total_epochs) == ("SupCon", 7, 0.3, 3, 17)
    assert r.original_loss_scale and r.original_warmup_momentum  # recipe "original" (SSD's) by default
    fixed = Recipe.from_section(EncoderParams(recipe="corrected"), seed=0)
    assert not (fixed.original_loss_scale or fixed.original_warmup_momentum)
    supcontrast = Recipe.from_section(EncoderParams(recipe="supcontrast"), seed=0)  # SupContrast: the scale only
    assert supcontrast.original_loss_scale and not supcontrast.original_warmup_momentum
    c = Recipe.from_section(ClassifierParams(epochs=4, lr=0.1, weight_decay=5e-4), seed=0, mode="SupCE")
    assert (c.mode, c.epochs, c.lr, c.weight_decay, c.warmup_epochs) == ("SupCE", 4, 0.1, 5e-4, 0)
    assert Recipe().differences(asdict(Recipe(save_every=3, knn_k=5))) == []
    assert Recipe().differences(asdict(Recipe(lr=0.1))) == ["lr: 0.1 in the checkpoint, 0.5 now"]


# -- checkpoints ----------------------------------------------------------------------------------


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("killed while saving")


def test_save_atomic_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "c.pt"
    ckpt.save_atomic({"format": ckpt.FORMAT, "x": torch.arange(3)}, path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="killed while saving"):
        ckpt.save_atomic({"format": ckpt.FORMAT, "x": Unpicklable()}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind
    assert torch.equal(ckpt.load(path)["x"], torch.arange(3))


def test_load_rejects_foreign_and_truncated_files(tmp_path):
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an ssdlib training checkpoint"):
        ckpt.load(tmp_path / "foreign.pt")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="Delete it"):
        ckpt.load(tmp_path / "cut.pt")


def test_rng_state_round_trip():
    gens = {"a": torch.Generator().manual_seed(1)}
    state = ckpt.rng_state(gens)
    first = (torch.rand(3), np.random.rand(3), torch.rand(3, generator=gens["a"]))
    ckpt.set_rng_state(state, gens)
    again = (torch.rand(3), np.random.rand(3), torch.rand(3, generator=gens["a"]))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and torch.equal(first[2], again[2])


# -- training runs (tiny) -------------------------------------------------------------------------


def tiny_data(n=48, classes=4, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.randint(0, classes, (n,), generator=g)


def tiny_net(mode, seed=0):
    torch.manual_seed(seed)
    encoder = resnet("resnet18", width=4)
    return SupNet(encoder, 4) if mode == "SupCE" else SSLNet(encoder, proj_dim=16)


def tiny_recipe(mode, **kw):
    return Recipe(
        **{
            "mode": mode,
            "epochs": 3,
            "warmup_epochs": 1,
            "batch_size": 16,
            "lr": 0.1,
            "knn_k": 5,
            "save_every": 1,
            **kw,
        }
    )


class KilledAt:
    """Wraps an augmentation and raises KeyboardInterrupt at call number ``at`` (a simulated kill)."""

    def __init__(self, augment, at):
        self.augment, self.calls, self.at = augment, 0, at

    def __call__(self, x, generator=None):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.augment(x, generator=generator)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["SimCLR", "SupCE"])
def test_killed_run_resumes_to_the_same_weights(tmp_path, mode):
    from ssdlib.training.augment import simclr_augment, supce_augment

    aug = supce_augment if mode == "SupCE" else simclr_augment
    data, test = tiny_data(), tiny_data(16, seed=1)
    recipe = tiny_recipe(mode, save_every=2)
    straight = tiny_net(mode)
    h_straight = train(straight, data, recipe, test=test, augment=aug, progress=False, log=lambda _m: None)

    path = tmp_path / "run.pt"
    views = 1 if mode == "SupCE" else 2
    killed = KilledAt(aug, at=3 * 3 * views + 2)  # 3 steps per epoch: mid epoch 4, after the epoch-2 save
    with pytest.raises(KeyboardInterrupt):
        train(
            tiny_net(mode),
            data,
            recipe,
            test=test,
            augment=killed,
            checkpoint=path,
            progress=False,
            log=lambda _m: None,
        )
    assert load_checkpoint(path)["epoch"] == 2
    resumed = tiny_net(mode, seed=99)  # other initial weights: everything must come from the checkpoint
    h_resumed = train(
        resumed, data, recipe, test=test, augment=aug, checkpoint=path, resume=True, progress=False, log=lambda _m: None
    )

    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert h_resumed.loss == h_straight.loss and h_resumed.step_lr == h_straight.step_lr
    np.testing.assert_array_equal(h_resumed.knn_accuracy, h_straight.knn_accuracy)
    state = load_checkpoint(path)
    assert state["finished"] and state["epoch"] == recipe.total_epochs == 4
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "params", "recipe", "history"} <= set(state)
    assert {"torch", "numpy", "generators"} <= set(state["rng"][0])


@pytest.mark.slow
def test_resume_with_other_settings_is_refused(tmp_path):
    data = tiny_data()
    path = tmp_path / "run.pt"
    train(
        tiny_net("SimCLR"), data, tiny_recipe("SimCLR", epochs=1), checkpoint=path, progress=False, log=lambda _m: None
    )
    with pytest.raises(CheckpointError, match=r"lr: 0.1 in the checkpoint, 0.2 now"):
        train(
            tiny_net("SimCLR"),
            data,
            tiny_recipe("SimCLR", epochs=1, lr=0.2),
            checkpoint=path,
            resume=True,
            progress=False,
        )


class NaNAfter:
    """An augmentation whose output turns NaN from call ``at`` on (an injected divergence)."""

    def __init__(self, at):
        self.calls, self.at = 0, at

    def __call__(self, x, generator=None):
        self.calls += 1
        return x * math.nan if self.calls >= self.at else x


@pytest.mark.slow
def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    with pytest.raises(NonFiniteLossError) as err:
        train(
            tiny_net("SimCLR"),
            tiny_data(),
            tiny_recipe("SimCLR"),
            augment=NaNAfter(at=2 * 3 * 2 + 3),
            checkpoint=path,
            progress=False,
            log=lambda _m: None,
        )
    msg = str(err.value)
    assert "epoch 3/4, step 2/3" in msg and str(path) in msg and "not overwritten" in msg
    state = load_checkpoint(path)
    assert state["epoch"] == 2 and all(
        torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point()
    )


class InterruptAt:
    """An augmentation that raises KeyboardInterrupt on call ``at`` (Ctrl-C, or Kernel > Interrupt)."""

    def __init__(self, at):
        self.calls, self.at = 0, at

    def __call__(self, x, generator=None):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return x


@pytest.mark.parametrize("at, said", [(2 * 3 * 2 + 3, "holds epoch 2: run the same cell"), (2, "before its first")])
def test_ctrl_c_in_training_ends_in_one_line_saying_where_and_how_to_resume(tmp_path, at, said):
    """Two views per step, 3 steps per epoch: call 15 is in epoch 3, after the checkpoint of epoch 2."""
    path = tmp_path / "run.pt"
    with pytest.raises(TrainingInterrupted) as err:
        train(tiny_net("SimCLR"), tiny_data(), tiny_recipe("SimCLR"), augment=InterruptAt(at), checkpoint=path)
    message = str(err.value)
    assert said in message and "SimCLR" in message
    assert isinstance(err.value, KeyboardInterrupt) and err.value.__suppress_context__
    assert err.value._render_traceback_() == [f"KeyboardInterrupt: {message}"]  # what IPython shows: one line
    if "holds" in said:
        assert str(path) in message and "epoch 3/4" in message and load_checkpoint(path)["epoch"] == 2


@pytest.mark.slow
def test_absurd_lr_diverges_before_any_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    with pytest.raises(NonFiniteLossError, match="No checkpoint was written yet"):
        train(
            tiny_net("SupCE"),
            tiny_data(),
            tiny_recipe("SupCE", lr=1e12, warmup_epochs=0, save_every=5),
            augment=identity_augment,
            checkpoint=path,
            progress=False,
            log=lambda _m: None,
        )
    assert not path.exists()


@pytest.mark.slow
def test_supce_trains_any_module_returning_logits():
    """GODIN-style reuse: a plain logits module (no .features) learns separable classes."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (96,), generator=g)
    x = (torch.rand(96, 3, 8, 8, generator=g) * 0.3 + 0.35 * F.one_hot(y, 3).float()[:, :, None, None]).clamp(0, 1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 3))
    history = train(
        model,
        (x[:64], y[:64]),
        Recipe(mode="SupCE", epochs=15, warmup_epochs=0, batch_size=16, lr=0.5),
        test=(x[64:], y[64:]),
        augment=identity_augment,
        progress=False,
        log=lambda _m: None,
    )
    assert history.test_accuracy[-1] >= 0.9
    assert all(math.isnan(v) for v in history.knn_accuracy)  # no features, no kNN monitor
    assert history.loss[-1] < history.loss[0] / 2


def test_one_step_is_sgd_on_the_contrastive_loss():
    """Trainer.step on CPU (fp32) = a hand-written SGD step (momentum buffer = grad + wd * w at step 1)."""
    torch.manual_seed(0)
    model, reference = UnitLinear(), UnitLinear()
    reference.load_state_dict(model.state_dict())
    x, y = tiny_data(8, size=8)
    trainer = Trainer(model, Recipe(mode="SimCLR", lr=0.5, weight_decay=1e-4), augment=identity_augment, progress=False)
    loss = trainer.step(x, y)

    z = reference(x)
    expected = contrastive_loss(torch.stack([z, z], 1), None, 0.5)
    expected.backward()
    assert not trainer.scaler.is_enabled() and loss == pytest.approx(expected.item(), rel=1e-6)
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p.detach(), q.detach() - 0.5 * (q.grad + 1e-4 * q.detach()))


def test_figures_of_a_history_and_a_2d_projection():
    from ssdlib import plots

    g = np.random.default_rng(0)
    plane = g.normal(size=(40, 2)) @ g.normal(size=(2, 6))  # points on a 2-D plane through the origin
    xy = plots.project_2d(plane, "pca")
    unit = plane / np.linalg.norm(plane, axis=1, keepdims=True)
    np.testing.assert_allclose(
        np.linalg.norm(xy[:, None] - xy[None], axis=-1), np.linalg.norm(unit[:, None] - unit[None], axis=-1), atol=1e-6
    )
    with pytest.raises(ValueError, match="tsne"):
        plots.project_2d(plane, "umap")
    history = train(
        UnitLinear(),
        tiny_data(16, size=8),
        Recipe(mode="SimCLR", epochs=2, warmup_epochs=1, batch_size=8),
        test=tiny_data(8, size=8, seed=1),
        augment=identity_augment,
        progress=True,
        log=lambda _m: None,
    )
    fig = plots.training_curves(history)
    assert len(fig.axes) == 4 and len(history.step_lr) == 6  # loss, lr (+ momentum twin), monitor; 3 epochs x 2 steps
    assert len(plots.embedding_2d(xy, np.arange(40) % 3, ["a", "b", "c"]).axes[0].collections) == 3


def _trace(read_every, augment=None):
    trainer = Trainer(tiny_net("SimCLR"), tiny_recipe("SimCLR"), augment=augment, progress=False, log=lambda _m: None)
    trainer.read_every = read_every  # what a GPU uses, run on the CPU
    trainer.fit(tiny_data())
    return trainer


@pytest.mark.slow
def test_reading_losses_in_batches_changes_no_result():
    """The GPU's deferred loss reads give the same loss trace and weights as reading every step."""
    every_step, deferred = _trace(1), _trace(50)
    assert deferred.history.step_loss == every_step.history.step_loss
    assert deferred.history.loss == every_step.history.loss
    for p, q in zip(every_step.model.parameters(), deferred.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.slow
def test_deferred_reads_still_name_the_step_where_the_loss_became_nan():
    with pytest.raises(NonFiniteLossError, match=r"at epoch 2/4, step 1/3\."):
        _trace(50, augment=NaNAfter(at=2 * 3 + 1))


@pytest.mark.slow
def test_a_failed_compilation_falls_back_to_the_eager_run(monkeypatch):
    """When torch.compile fails at the first step, the run says so and continues uncompiled from the
    same random state: the loss trace equals that of a run that never compiled."""

    def broken_compile(fn, **_kwargs):
        def fail(*_args, **_kw):
            raise RuntimeError("inductor: no C compiler\nmore detail")

        return fail

    messages = []
    eager = _trace(1)
    trainer = Trainer(tiny_net("SimCLR"), tiny_recipe("SimCLR"), progress=False, log=messages.append)
    monkeypatch.setattr(torch, "compile", broken_compile)
    trainer._compile_pending = True  # what a CUDA device with compile on does
    trainer.objective, trainer.step_net = trainer._compiled(None)
    trainer.fit(tiny_data())
    assert any("torch.compile failed (RuntimeError: inductor: no C compiler)" in m for m in messages)
    assert trainer.history.step_loss == eager.history.step_loss


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_training_compiles_and_logs_every_step():
    messages = []
    trainer = Trainer(
        tiny_net("SimCLR"), tiny_recipe("SimCLR", epochs=1), device="cuda", progress=False, log=messages.append
    )
    history = trainer.fit(tiny_data())
    assert not any("torch.compile failed" in m for m in messages)
    assert len(history.step_loss) == 2 * 3 and all(math.isfinite(v) for v in history.step_loss)


def test_deterministic_switch_sets_torchs_flags_both_ways(monkeypatch):
    """deterministic=True asks torch for deterministic kernels (and the cuBLAS workspace); a later
    trainer without it turns them off again (the flags are process-wide)."""
    from ssdlib.training.skeleton import set_determinism

    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "unset by the test")  # so that monkeypatch restores it
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    try:
        Trainer(tiny_net("SimCLR"), tiny_recipe("SimCLR", deterministic=True), progress=False)
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        Trainer(tiny_net("SimCLR"), tiny_recipe("SimCLR"), progress=False)
        assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    finally:
        set_determinism(False, cuda=False)


def test_deterministic_run_equals_the_default_run_on_the_cpu():
    """On the CPU the switch changes no number: the same loss trace and weights."""
    data = tiny_data()
    runs = []
    try:
        for deterministic in (False, True):
            net = tiny_net("SimCLR")
            history = train(
                net, data, tiny_recipe("SimCLR", deterministic=deterministic), progress=False, log=lambda _m: None
            )
            runs.append((history.step_loss, net.state_dict()))
    finally:
        from ssdlib.training.skeleton import set_determinism

        set_determinism(False, cuda=False)
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1].values(), runs[1][1].values()):
        assert torch.equal(a, b)


def test_a_streamed_training_set_trains_as_the_same_set_held_in_memory():
    """A Dataset read through a DataLoader gives the same batches, loss trace, weights, monitors and data
    fingerprint as its tensors; held_or_streamed picks the Dataset above its size limit."""
    from ssdlib.data.memory import ImageTensorDataset, float_bytes, held_or_streamed

    x, y = tiny_data()
    streamed = ImageTensorDataset((x * 255).round().to(torch.uint8), y)  # stored as uint8, as real images
    held = held_or_streamed(streamed)
    assert isinstance(held, tuple) and torch.equal(held[0], streamed.images.float() / 255)
    assert held_or_streamed(streamed, limit=float_bytes(streamed) - 1) is streamed
    assert float_bytes(streamed) == 48 * 3 * 16 * 16 * 4

    runs = []
    for data in (held, streamed):
        net = tiny_net("SimCLR")
        trainer = Trainer(net, tiny_recipe("SimCLR", epochs=2), progress=False, log=lambda _m: None)
        history = trainer.fit(data, test=data)
        runs.append((history, net.state_dict(), trainer.data))
    (h_held, w_held, d_held), (h_streamed, w_streamed, d_streamed) = runs
    assert h_held.step_loss == h_streamed.step_loss and h_held.knn_accuracy == h_streamed.knn_accuracy
    assert d_held == d_streamed
    for a, b in zip(w_held.values(), w_streamed.values()):
        assert torch.equal(a, b)
