"""DistributedDataParallel on CPU (gloo, two processes): ranks stay identical, and a 2-process step
equals a 1-process step on the whole batch (gathered contrastive negatives, averaged gradients)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from conftest import UnitLinear, free_port, identity_augment, on_every_process
from torch import nn

from ssdlib.training import Recipe, Trainer, load_checkpoint, train

WORLD = 2
STEPS = 3


def batches():
    g = torch.Generator().manual_seed(0)
    return [(torch.rand(8, 3, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(STEPS)]


def single_process_reference(mode):
    """Weights after each step and the losses of one process training on the whole batches."""
    torch.manual_seed(0)
    trainer = Trainer(UnitLinear(), Recipe(mode=mode, lr=0.5), augment=identity_augment, progress=False)
    weights, losses = [], []
    for x, y in batches():
        losses.append(trainer.step(x, y))
        weights.append([p.detach().clone() for p in trainer.model.parameters()])
    return weights, losses


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


class TinyBNNet(nn.Module):
    """Conv + batch norm: its statistics are per replica, as in SSD, but the weights must agree."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.head = nn.Linear(4, 4)

    def features(self, x):
        return self.encoder(x)

    def forward(self, x):
        return F.normalize(self.head(self.features(x)), dim=-1)


def worker(rank, port, expected, folder):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        for mode, (weights, losses) in expected.items():
            torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
            trainer = Trainer(UnitLinear(), Recipe(mode=mode, lr=0.5), augment=identity_augment, progress=False)
            half = 8 // WORLD
            for step, (x, y) in enumerate(batches()):
                loss = trainer.step(x[rank * half : (rank + 1) * half], y[rank * half : (rank + 1) * half])
                everyone = on_every_process(flat(trainer.model))
                assert torch.equal(everyone[0], everyone[1]), f"{mode}: ranks differ after step {step + 1}"
                torch.testing.assert_close(
                    everyone[rank],
                    torch.cat([w.flatten() for w in weights[step]]),
                    rtol=1e-5,
                    atol=1e-6,
                    msg=f"{mode}: not the 1-process step {step + 1}",
                )
                assert abs(loss - losses[step]) < 1e-5, (mode, step, loss, losses[step])

        # a whole SimCLR fit with batch norm and the real augmentation: only rank 0 writes and logs
        torch.manual_seed(rank)
        model = TinyBNNet()
        g = torch.Generator().manual_seed(1)
        data = (torch.rand(24, 3, 8, 8, generator=g), torch.randint(0, 3, (24,), generator=g))
        said = []
        train(
            model,
            data,
            Recipe(mode="SimCLR", epochs=1, warmup_epochs=1, batch_size=8, lr=0.1, knn_k=3),
            test=data,
            checkpoint=os.path.join(folder, "run.pt"),
            progress=False,
            log=said.append,
        )
        everyone = on_every_process(flat(model))
        assert torch.equal(everyone[0], everyone[1]), "ranks differ after fit"
        assert bool(said) == (rank == 0), said
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_gloo_processes_stay_identical_and_match_one_process(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        expected = {mode: single_process_reference(mode) for mode in ("SupCon", "SupCE")}
        # fork: the children inherit the imported modules and start at once
        mp.start_processes(
            worker, args=(free_port(), expected, str(tmp_path)), nprocs=WORLD, join=True, start_method="fork"
        )
    finally:
        torch.set_num_threads(threads)
    assert load_checkpoint(tmp_path / "run.pt")["epoch"] == 2
