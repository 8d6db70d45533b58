"""``ssdlib eval`` end to end on a tiny random checkpoint and a small offline benchmark."""

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ssdlib.cli import evaluate as cli_eval
from ssdlib.cli import main
from ssdlib.detectors.ssd import SSD
from ssdlib.metrics import aupr_out, auroc, fpr_at_95_id_tpr
from ssdlib.models.heads import SSLNet, SupNet
from ssdlib.models.resnet import resnet

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^In-data = (\S+), OOD = (\S+), Clusters = (\d+), FPR95 = (\S+), AUROC = (\S+), AUPR = (\S+)$")
OOD_SETS = ["near", "blobs", "textures"]


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    """offline.yaml with a small benchmark at 16 px and three OOD sets."""
    folder = tmp_path_factory.mktemp("profile")
    raw = yaml.safe_load((ROOT / "params" / "offline.yaml").read_text())
    raw["data"].update(image_size=16, ood_datasets=OOD_SETS, batch_size=64, synthetic_per_set=30)
    raw["data"]["offline"].update(train_per_class=6, test_per_class=4, ood_per_set=30)
    for notebooks_only in ("checks", "ssod"):  # they name sets this profile no longer loads
        raw.pop(notebooks_only)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def save_checkpoint(path, supce=False):
    torch.manual_seed(0)
    encoder = resnet("resnet18", width=4)
    model = SupNet(encoder, 10) if supce else SSLNet(encoder)
    torch.save({"epoch": 1, "state_dict": model.state_dict()}, path)  # SSD train.py's layout
    return path


def eval_args(tmp_path, ckpt, profile, *extra):
    return [
        "eval",
        "--arch",
        "resnet18",
        "--width",
        "4",
        "--training-mode",
        "SimCLR",
        "--ckpt",
        str(ckpt),
        "--params",
        str(profile),
        "--results-dir",
        str(tmp_path / "res"),
        "--exp-name",
        "tiny",
        "--seed",
        "3",
        "--device",
        "cpu",
        *extra,
    ]


def cli_eval_namespace(argv):
    parser = argparse.ArgumentParser()
    cli_eval.configure(parser)
    return parser.parse_args(argv[1:])


def test_results_line_is_ssds():
    r = {"fpr95": 0.0206, "auroc": 0.9962, "aupr_out": 0.9985, "aupr_in": 0.1}
    assert cli_eval.results_line("cifar10", "svhn", 1, r) == (
        "In-data = cifar10, OOD = svhn, Clusters = 1, FPR95 = 0.0206, AUROC = 0.9962, AUPR = 0.9985"
    )


def test_flags_override_the_profile_and_ssd_defaults_apply_without_one(profile):
    parser = argparse.ArgumentParser()
    cli_eval.configure(parser)
    base = ["--training-mode", "SupCon", "--ckpt", "x.pt"]
    P = cli_eval.eval_params(parser.parse_args(base + ["--params", str(profile), "--size", "24", "--no-normalize"]))
    assert (P.data.id_dataset, P.data.image_size, P.data.normalize, P.data.ood_datasets) == (
        "offline",
        24,
        False,
        OOD_SETS,
    )
    assert (P.encoder.arch, P.encoder.width, P.encoder.training_mode) == ("resnet50", 64, "SupCon")
    P = cli_eval.eval_params(parser.parse_args(base + ["--dataset", "cifar100"]))
    assert (P.data.id_dataset, P.data.image_size, P.data.batch_size, P.data.normalize) == ("cifar100", 32, 256, False)
    assert P.data.ood_datasets == ["cifar10", "svhn", "textures", "blobs"]  # eval_ssd.py's list, less the ID set
    assert cli_eval.eval_params(parser.parse_args(base)).data.ood_datasets == ["cifar100", "svhn", "textures", "blobs"]


def test_ssd_lines_match_an_independent_evaluation(tmp_path, profile):
    ckpt = save_checkpoint(tmp_path / "simclr.pth")
    argv = eval_args(tmp_path, ckpt, profile, "--clusters", "2")
    assert main(argv) == 0
    assert main(argv) == 0  # appends
    lines = (tmp_path / "res" / "tiny_ssd.txt").read_text().splitlines()
    assert len(lines) == 2 * (1 + len(OOD_SETS))
    assert lines[0].startswith("Namespace(") and "clusters=2" in lines[0]
    parsed = [LINE.match(line).groups() for line in lines[1 : 1 + len(OOD_SETS)]]
    assert [(p[0], p[1], p[2]) for p in parsed] == [("offline", name, "2") for name in OOD_SETS]
    assert lines[1:4] == lines[5:8]  # seeded: the same numbers again

    # the same evaluation written out with the library's pieces
    from ssdlib.data import get_datasets
    from ssdlib.experiment import build_model
    from ssdlib.features import extract_splits

    P = cli_eval.eval_params(cli_eval_namespace(argv))
    bundle = get_datasets(P.data)
    model = build_model(P, bundle, "SimCLR")
    model.load_state_dict(torch.load(ckpt)["state_dict"])
    f = extract_splits(model, bundle)
    detector = SSD(clusters=2, seed=3, kmeans="faiss").fit(f.train)  # eval_ssd.py's k-means, the default
    for _, name, _, fpr, auc, aupr in parsed:
        id_s, ood_s = detector.score(f.test), detector.score(f.ood[name])
        assert float(fpr) == pytest.approx(fpr_at_95_id_tpr(id_s, ood_s))
        assert float(auc) == pytest.approx(auroc(id_s, ood_s))
        assert float(aupr) == pytest.approx(aupr_out(id_s, ood_s))

    rows = [json.loads(line) for line in (tmp_path / "res" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * len(OOD_SETS)
    assert {(r["method"], r["setting"], r["training_mode"], r["arch"]) for r in rows} == {
        ("SSD", "clusters=2", "SimCLR", "resnet18")
    }
    assert rows[0]["auroc"] == pytest.approx(float(parsed[0][4]))


def test_ssdk_writes_its_own_file(tmp_path, profile, capsys):
    ckpt = save_checkpoint(tmp_path / "simclr.pth")
    assert main(eval_args(tmp_path, ckpt, profile, "--k", "2", "--copies", "3")) == 0
    lines = (tmp_path / "res" / "tiny_ssdk.txt").read_text().splitlines()
    assert "k=2" in lines[0] and "copies=3" in lines[0]
    values = [LINE.match(line).groups() for line in lines[1:]]
    assert [v[1] for v in values] == OOD_SETS
    assert all(0 <= float(v[4]) <= 1 for v in values)
    out = capsys.readouterr().out
    assert (
        "blobs: number of selected OOD images (k * num_classes_ood_dataset) = 2, after augmentation = 6, "
        "remaining in the OOD test set = 28" in out
    )


def test_supce_with_clusters_uses_class_labels(tmp_path, profile, capsys):
    ckpt = save_checkpoint(tmp_path / "supce.pth", supce=True)
    argv = eval_args(tmp_path, ckpt, profile, "--clusters", "10")
    argv[argv.index("SimCLR")] = "SupCE"
    assert main(argv) == 0
    assert "Using data labels as clusters" in capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "res" / "results.jsonl").read_text().splitlines()]
    assert {(r["method"], r["setting"]) for r in rows} == {("SSD (SupCE)", "class clusters")}
    assert all(np.isfinite(r["auroc"]) for r in rows)


def test_bad_runs_fail_before_work_with_a_reason(tmp_path, profile, capsys):
    assert main(eval_args(tmp_path, tmp_path / "missing.pth", profile)) == 1
    assert "no such checkpoint" in capsys.readouterr().err
    ckpt = save_checkpoint(tmp_path / "simclr.pth")
    assert main(eval_args(tmp_path, ckpt, profile, "--k", "1", "--clusters", "2")) == 1
    assert "one cluster only" in capsys.readouterr().err
    wrong_width = eval_args(tmp_path, ckpt, profile)
    wrong_width[wrong_width.index("--width") + 1] = "8"
    assert main(wrong_width) == 1
    assert "wrong arch or width" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


def test_a_checkpoint_is_not_scored_as_another_training_mode_than_it_records(tmp_path, profile, capsys):
    ckpt = tmp_path / "simclr.pt"
    torch.save(
        {
            "format": "ssdlib-train-1",
            "model": SSLNet(resnet("resnet18", width=4)).state_dict(),
            "recipe": {"mode": "SimCLR"},
        },
        ckpt,
    )
    args = eval_args(tmp_path, ckpt, profile)
    args[args.index("--training-mode") + 1] = "SupCon"
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"ssdlib eval: {ckpt}: trained as SimCLR (the checkpoint records it), evaluated with --training-mode SupCon: "
        "pass --training-mode SimCLR"
    ]
    assert not (tmp_path / "res").exists()
