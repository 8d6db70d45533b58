"""Helpers shared by the test modules: a tiny BN-free network, the identity augmentation, one thread;
and the early start of the paper profiles' smoke runs (tests/test_smoke_profiles.py), with one torch
thread in this process while they run."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn


@pytest.fixture(autouse=True)
def messages_on_console():
    """ssdlib's messages on the (captured) console, as the CLI and notebooks set them up (ssdlib.log)."""
    from ssdlib.log import to_console

    to_console()


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, and the machine is shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class UnitLinear(nn.Module):
    """A BN-free 'encoder + head' returning unit vectors (forward) and features: with no per-replica
    statistics, a DDP step must equal one process's step on the whole batch."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 8))

    def features(self, x):
        return self.encoder(x)

    def forward(self, x):
        return F.normalize(self.features(x), dim=-1)


def identity_augment(x, generator=None):
    return x


def free_port() -> int:
    """A free local TCP port for a test's process group."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def on_every_process(t: torch.Tensor) -> list[torch.Tensor]:
    """``t`` of every process of the initialised group, in rank order (to check they hold the same)."""
    import torch.distributed as dist

    everyone = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, t)
    return everyone


def assert_refused(cases):
    """Each ``(call, message)`` raises a ValueError whose message says ``message`` (what to use instead)."""
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


THREADS = pytest.StashKey[int]()  # this process's torch threads before the smoke runs started


@pytest.hookimpl(trylast=True)  # after -m / -k have deselected
def pytest_collection_modifyitems(session, config, items):
    """Start the smoke runs of the paper profiles as soon as their tests are selected, so that they run
    while the other tests do (they take minutes; their tests wait for them)."""
    selected = [item for item in items if item.nodeid.startswith("tests/test_smoke_profiles.py::test_profile_runs")]
    if selected:
        from test_smoke_profiles import SMOKE_RUNS, start, stop

        folder = Path(tempfile.mkdtemp(prefix="ssdlib-smoke-tests-"))
        config.stash[SMOKE_RUNS] = runs = start(folder)
        config.add_cleanup(lambda: stop(runs, folder))  # also when the session ends early
        config.stash[THREADS] = torch.get_num_threads()


def pytest_runtest_setup(item):
    """One torch thread here while the smoke runs go on. Beside their three one-thread processes, a
    second thread mostly waits for a core: on 2 cores beside three such processes, a pytest run of
    GODIN's training test took 55 s with two threads and 22 s with one (12 s on an idle machine)."""
    from test_smoke_profiles import SMOKE_RUNS

    runs = item.config.stash.get(SMOKE_RUNS, None)
    if runs is not None:
        running = any(process.poll() is None for process, _, _ in runs.values())
        torch.set_num_threads(1 if running else item.config.stash[THREADS])
