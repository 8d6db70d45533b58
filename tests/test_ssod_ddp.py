"""SSOD under torchrun, on CPU (gloo, two processes): a 2-process run equals a 1-process run on the
whole batches (gathered loss and sampler, averaged gradients, the global batch's crops), and the
processes stay identical with batch norm too."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import free_port, on_every_process
from torch import nn

from ssdlib.ssod.model import SSODNet
from ssdlib.ssod.train import SSODRecipe, SSODTrainer

WORLD = 2
RECIPES = {
    "LWB": dict(balance="LWB"),
    "DR": dict(balance="DR"),
    "LW + SupCon": dict(balance="LW", supcon_weight=0.5),
}


class ConvEncoder(nn.Module):
    """Two convolutions, no batch norm: the 2-process step must equal the 1-process one exactly."""

    out_dim = 8

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1))

    def feature_map(self, x):
        return self.layers(x)


def recipe(**kw) -> SSODRecipe:
    values = dict(
        alpha=1.5, gamma=0.51, balance="LWB", lw_factor=0.25, warmup_epochs=1, epochs=3, batch_size=8, lr=3e-3,
        lr_step=30, lr_decay=0.5, weight_decay=0.01, crop_scale=(0.5, 1.0), amp=False, select="last",
    )  # fmt: skip
    return SSODRecipe(**{**values, **kw})


def data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(24, 3, 12, 12, generator=g), torch.arange(24) % 2


def net(seed: int, encoder=None, supcon: bool = False) -> SSODNet:
    torch.manual_seed(seed)
    return SSODNet(encoder or ConvEncoder(), 2, projection_dim=4 if supcon else None)


def fit(model, r):
    trainer = SSODTrainer(model, r, seed=0, log=lambda _m: None, progress=False)
    history = trainer.fit(data())
    return [p.detach().clone() for p in model.parameters()], history.step_ce, history.step_n_ood


def flat(tensors):
    return torch.cat([t.detach().float().flatten() for t in tensors])


def worker(rank, port, expected):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        for name, kw in RECIPES.items():
            r = recipe(**kw)
            weights, ce, n_ood = fit(net(seed=rank, supcon=bool(r.supcon_weight)), r)  # rank 1 starts elsewhere
            want_weights, want_ce, want_n_ood = expected[name]
            assert n_ood == want_n_ood, f"{name}: the sampler's global counts differ"
            torch.testing.assert_close(torch.tensor(ce), torch.tensor(want_ce), rtol=1e-5, atol=1e-6, msg=name)
            torch.testing.assert_close(flat(weights), flat(want_weights), rtol=1e-4, atol=1e-5, msg=name)

        # batch norm (per process): the processes still hold the same weights and statistics
        from ssdlib.models.backbones import backbone

        model = net(seed=rank, encoder=backbone("resnet18", width=4, stem="cifar"))
        fit(model, recipe())
        everyone = on_every_process(flat(model.state_dict().values()))
        assert torch.equal(everyone[0], everyone[1]), "the processes' models differ after fit"
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_gloo_processes_train_ssod_as_one_process():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        expected = {name: fit(net(seed=0, supcon="supcon_weight" in kw), recipe(**kw)) for name, kw in RECIPES.items()}
        assert all(sum(n_ood) > 0 for _, _, n_ood in expected.values()), "the sampler picked no OOD location"
        mp.start_processes(worker, args=(free_port(), expected), nprocs=WORLD, join=True, start_method="fork")
    finally:
        torch.set_num_threads(threads)
