"""What the commands that train a profile's models (``ssod``, ``model``) do first: read the profile, check
it, join torchrun's process group and open the data, each failure one line naming the problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ssdlib import data, profiles
from ssdlib import params as params_mod
from ssdlib.log import get as get_logger
from ssdlib.training import distributed as dist

LOG = get_logger(__name__)
BAD_INPUT = (params_mod.ParamsError, ValueError, data.DatasetNotFoundError, data.UnknownDatasetError)


def profile_and_data(
    params: Path, command: str, check: Callable[[params_mod.Params], object] = lambda P: None
) -> tuple[params_mod.Params, data.DatasetBundle] | None:
    """The profile and its datasets; None after logging why when the input is bad. ``check(P)`` raises on a
    bad value before any data is read."""
    try:
        P = profiles.load(params)
        check(P)
        dist.init_from_env()
        return P, data.get_datasets(P.data)
    except BAD_INPUT as err:
        LOG.error(f"ssdlib {command}: {err}")
        return None
