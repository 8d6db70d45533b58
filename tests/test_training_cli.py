"""``ssdlib train``: SSD's flags over a params profile, the run folder, refusal to clobber, --resume."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
import yaml

import ssdlib.data
from ssdlib.cli import train as cli_train
from ssdlib.training import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def parse(*argv):
    parser = argparse.ArgumentParser()
    cli_train.configure(parser)
    return parser.parse_args(list(argv))


def tiny_run(mode: str, lr: str, results_dir, exp_name: str, *more: str) -> list[str]:
    """Flags of a two-epoch run of a width-4 ResNet-18 on 16 px images, on the CPU."""
    return ["--arch", "resnet18", "--width", "4", "--training-mode", mode, "--size", "16", "--epochs", "2",
            "--warmup", "0", "--batch-size", "16", "--lr", lr, *more, "--device", "cpu",
            "--results-dir", str(results_dir), "--exp-name", exp_name]  # fmt: skip


def test_flags_override_the_profile():
    P = cli_train.effective_params(
        parse(
            "--params",
            str(ROOT / "params" / "offline.yaml"),
            "--lr",
            "0.2",
            "--warmup",
            "--arch",
            "resnet34",
            "--no-normalize",
            "--seed",
            "7",
        )
    )
    offline = yaml.safe_load((ROOT / "params" / "offline.yaml").read_text())
    assert (P.encoder.lr, P.encoder.warmup_epochs, P.encoder.arch, P.data.normalize, P.seed) == (
        0.2,
        10,
        "resnet34",
        False,
        7,
    )
    assert P.encoder.epochs == offline["encoder"]["epochs"] and P.data.ood_datasets == []
    assert cli_train.effective_params(parse("--warmup", "0")).encoder.warmup_epochs == 0
    defaults = cli_train.effective_params(parse())  # no profile: SSD's train.py defaults
    assert (defaults.encoder.arch, defaults.encoder.epochs, defaults.encoder.batch_size) == ("resnet50", 500, 512)
    assert (defaults.data.id_dataset, defaults.data.image_size, defaults.data.normalize) == ("cifar10", 32, False)
    e = defaults.encoder
    assert (e.warmup_epochs, e.amp, e.recipe, e.lr, e.temperature) == (0, False, "original", 0.5, 0.5)
    assert cli_train.effective_params(parse("--warmup")).encoder.warmup_epochs == 10


def test_bad_value_is_named_and_nothing_is_written(tmp_path, capsys):
    code = cli_train.run(parse("--width", "2", "--results-dir", str(tmp_path), "--exp-name", "x"))
    assert code == 1 and "encoder.width" in capsys.readouterr().err and not (tmp_path / "x").exists()


def tiny_bundle(train_images=32):
    from types import SimpleNamespace

    from ssdlib.data.memory import ImageTensorDataset
    from ssdlib.data.normalize import Normalize

    g = torch.Generator().manual_seed(0)

    def images(n):
        return ImageTensorDataset(torch.rand(n, 3, 16, 16, generator=g), torch.randint(0, 4, (n,), generator=g))

    return SimpleNamespace(
        train=images(train_images), test=images(16), ood={}, num_classes=4, normalize=lambda: Normalize.identity()
    )


@pytest.mark.slow
def test_run_folder_setup_log_refusal_and_resume(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ssdlib.data, "get_datasets", lambda data: tiny_bundle(), raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        argv = tiny_run("SupCon", "0.1", tmp_path, "simclr", "--save-freq", "1")
        assert cli_train.run(parse(*argv)) == 0
        run_dir = tmp_path / "simclr"
        log = (run_dir / "setup.log").read_text()
        assert log.startswith("params: {") and f"epoch 2: checkpoint written to {run_dir / 'checkpoint.pt'}" in log
        assert yaml.safe_load((run_dir / "params.yaml").read_text())["encoder"]["training_mode"] == "SupCon"
        state = load_checkpoint(run_dir / "checkpoint.pt")
        assert state["finished"] and state["params"]["params"]["encoder"]["width"] == 4

        capsys.readouterr()
        written = (run_dir / "checkpoint.pt").read_bytes()
        assert cli_train.run(parse(*argv)) == 1
        assert "already holds a run" in capsys.readouterr().err
        assert cli_train.run(parse(*argv, "--resume")) == 0  # finished: nothing left to train
        assert (run_dir / "checkpoint.pt").read_bytes() == written
        assert cli_train.run(parse(*argv[:-1], "other", "--resume")) == 1
        assert "there is no" in capsys.readouterr().err

        # a resume with other settings or other data is refused before anything is rewritten
        params_before = (run_dir / "params.yaml").read_text()
        assert cli_train.run(parse(*argv, "--lr", "0.2", "--resume")) == 1  # the last --lr wins
        assert "trained with other settings (lr: 0.1 in the checkpoint, 0.2 now)" in capsys.readouterr().err
        monkeypatch.setattr(ssdlib.data, "get_datasets", lambda data: tiny_bundle(train_images=24), raising=False)
        assert cli_train.run(parse(*argv, "--resume")) == 1
        assert "trained on other data (images: 32 in the checkpoint, 24 now" in capsys.readouterr().err
        assert (run_dir / "params.yaml").read_text() == params_before
        assert (run_dir / "checkpoint.pt").read_bytes() == written
    finally:
        torch.set_num_threads(threads)


def test_unknown_dataset_stops_before_anything_is_written(tmp_path, capsys):
    code = cli_train.run(parse("--dataset", "cifar11", "--results-dir", str(tmp_path), "--exp-name", "x"))
    assert code == 1 and "cifar11" in capsys.readouterr().err and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_diverged_run_names_the_command_that_starts_afresh(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ssdlib.data, "get_datasets", lambda data: tiny_bundle(), raising=False)
    argv = tiny_run("SupCE", "1e12", tmp_path, "wild")
    assert cli_train.run(parse(*argv)) == 1
    said = capsys.readouterr().err
    assert "the loss is nan" in said and "--lr 5e+11 --exp-name wild-lr5e+11" in said


@pytest.mark.slow
def test_ssds_command_lines_train_and_evaluate_on_cifar_files(tmp_path, monkeypatch, capsys):
    """SSD's train.py and eval_ssd.py flags, nothing else: CIFAR-10 from ./datasets where the command was
    typed, and eval_ssd.py's OOD sets (CIFAR-100, SVHN, Textures, blobs), on tiny files in their real formats."""
    from ssdlib.cli import CALLER_DIR, main, ssd_defaults
    from ssdlib.data import checksums, tiny

    root = tmp_path / "datasets"
    tiny.write_sets(["cifar100", "svhn", "textures"], root, id_dataset="cifar10", per_class=4)
    monkeypatch.setenv(checksums.SMOKE_DATA_ENV, str(root.resolve()))
    monkeypatch.setenv(CALLER_DIR, str(tmp_path))
    monkeypatch.delenv("SSDLIB_DATA", raising=False)
    monkeypatch.setitem(ssd_defaults.DATA, "synthetic_per_set", 20)  # SSD's blobs are 10 000 images
    runs = tmp_path / "trained_models"
    assert main(["train", "--arch", "resnet18", "--training-mode", "SimCLR", "--epochs", "1", "--batch-size", "8",
                 "--results-dir", str(runs), "--exp-name", "simclr", "--device", "cpu"]) == 0  # fmt: skip
    used = yaml.safe_load((runs / "simclr" / "params.yaml").read_text())
    assert used["data"]["id_dataset"] == "cifar10" and used["data"]["root"] == str(tmp_path / "datasets")
    ckpt = str(runs / "simclr" / "checkpoint.pt")
    assert main(["eval", "--arch", "resnet18", "--training-mode", "SimCLR", "--ckpt", ckpt,
                 "--results-dir", str(tmp_path / "eval"), "--exp-name", "e", "--device", "cpu"]) == 0  # fmt: skip
    lines = [line for line in (tmp_path / "eval" / "e_ssd.txt").read_text().splitlines() if line.startswith("In-data")]
    assert [line.split(",")[1].strip() for line in lines] == [
        f"OOD = {d}" for d in ("cifar100", "svhn", "textures", "blobs")
    ]


def test_a_busy_run_folder_suggests_a_flag_that_train_has(tmp_path, capsys):
    from ssdlib import locks

    with locks.holding(locks.folder_lock(tmp_path / "x"), "the first run"):
        code = cli_train.run(parse(*tiny_run("SimCLR", "0.1", tmp_path, "x", "--dataset", "offline")))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].endswith("or write somewhere else (another --exp-name).")
