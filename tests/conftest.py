"""Helpers shared by the test modules: a tiny BN-free network, the identity augmentation, one thread."""

from __future__ import annotations

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


def assert_refused(cases):
    """Each ``(call, message)`` raises a ValueError whose message says ``message`` (what to use instead)."""
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
