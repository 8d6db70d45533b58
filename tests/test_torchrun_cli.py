"""``torchrun --nproc_per_node 2`` on CPU (gloo): ``ssdlib train``, ``ssdlib ssod`` and ``ssdlib model`` run as
one job of two processes (one lock holder, rank 0 writes), and the notebooks' loaders then find the SSOD run
and CSI's network."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch
import yaml

from ssdlib import data, experiment, profiles
from ssdlib.data import checksums, tiny
from ssdlib.ssod import runs


def torchrun(*args: str, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run([*command, "-m", "ssdlib.cli", *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_torchrun_trains_an_encoder_an_ssod_run_and_csi_on_two_processes(tmp_path, monkeypatch, caplog):
    root, out = tmp_path / "datasets", tmp_path / "out"
    tiny.write_sets([], root, id_dataset="cifar10", per_class=4)
    profile = {
        "profile": "tiny",
        "device": "cpu",
        "data": {"id_dataset": "cifar10", "ood_datasets": [], "root": str(root), "num_workers": 0},
        "encoder": {"arch": "resnet18", "width": 4, "epochs": 1, "warmup_epochs": 0, "batch_size": 8},
        "csi": {"epochs": 1, "warmup_epochs": 0, "batch_size": 8, "monitor_every": 0},
        "ssod": {
            **{"backbone": "resnet18", "width": 4, "stem": "cifar", "input_size": 32, "gamma": 0.6},
            **{"warmup_epochs": 1, "epochs": 2, "batch_size": 8, "select": "last", "val_fraction": 0.0},
        },
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(profile))
    env = {**os.environ, checksums.SMOKE_DATA_ENV: str(root.resolve()), "OMP_NUM_THREADS": "1"}

    torchrun("train", "--params", str(tmp_path / "tiny.yaml"), "--results-dir", str(out), "--exp-name", "enc", env=env)
    assert torch.load(out / "enc" / "checkpoint.pt", weights_only=False)["finished"]
    assert len((out / "enc" / "setup.log").read_text().splitlines()) >= 2  # rank 0's log only

    torchrun("ssod", "--params", str(tmp_path / "tiny.yaml"), "--output-dir", str(out), env=env)
    (saved,) = (out / "checkpoints").glob("ssod_resnet18_*.pt")
    state = torch.load(saved, weights_only=False)
    assert state["finished"] and state["epoch"] == 2 and len(state["rng"]) == 2  # one random state per process

    monkeypatch.setenv(checksums.SMOKE_DATA_ENV, str(root.resolve()))
    P = profiles.validate(profile)
    said = []
    run = runs.trained(P, data.get_datasets(P.data), out, log=said.append, progress=False)
    assert run.path == saved and said[0].startswith("loaded the SSOD run"), said

    torchrun("model", "--params", str(tmp_path / "tiny.yaml"), "--method", "CSI", "--output-dir", str(out), env=env)
    assert torch.load(out / "checkpoints" / "CSI_resnet18_w4.pt", weights_only=False)["finished"]
    with caplog.at_level(logging.INFO, logger="ssdlib"):
        experiment.model_for(P, data.get_datasets(P.data), out, "CSI")  # notebook 05's loader
    assert "loaded the trained CSI model" in caplog.text
