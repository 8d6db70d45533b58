"""What a run says it will train (ssdlib.plan), the cuts of a smoke run (ssdlib.smoke), and the dry run
on a data root missing a set."""

from pathlib import Path

import pytest
import torch
import yaml

from ssdlib import plan, profiles, smoke
from ssdlib.cli import main
from ssdlib.data import checksums, tiny

ROOT = Path(__file__).resolve().parent.parent


def test_the_plan_lists_each_model_once_with_epochs_times_images():
    P = profiles.load(ROOT / "params" / "cifar10_ssod.yaml")
    planned = {m.name: m for m in plan.models(P, ["00", "04"], 50_000)}
    # vanilla, SSOD at alpha 1.5 (also the alphas' and balances' 1.5 / LWB run), 4 more alphas, 2 more balances
    assert len(planned) == 1 + 1 + 4 + 2
    ssod = planned["SSOD resnet18 w64 alpha 1.5, LWB"]
    assert (ssod.epochs, ssod.images, ssod.work) == (300, 50_000, 300 * 50_000)  # selects on test: no hold-out
    assert plan.table(list(planned.values()))["work"].iloc[-1] == 8 * 300 * 50_000
    held_out = profiles.validate({"profile": "t", "ssod": {"select": "val_accuracy", "val_fraction": 0.1}})
    assert {m.images for m in plan.models(held_out, ["04"], 50_000)} == {45_000}


def test_models_shared_by_notebooks_are_counted_once():
    P = profiles.load(ROOT / "params" / "cifar10.yaml")
    planned = {m.name: m for m in plan.models(P, P.notebooks, 50_000)}
    assert planned["SimCLR resnet50 w64"].notebooks == ("01", "02", "03", "05")
    assert planned["SimCLR resnet50 w64"].epochs == 10 + 500  # warm-up + cosine epochs
    assert planned["SupCE resnet50 w64"].epochs == 100
    assert plan.models(P, ["00"], 50_000) == []


def test_smoke_cuts_sizes_and_keeps_the_rest_of_the_profile():
    P = profiles.load(ROOT / "params" / "imagenet_ssod.yaml")
    cut = profiles.validate(profiles.merged(P.model_dump(mode="json"), smoke.overrides(P, Path("/d"), Path("/w"))))
    assert (cut.ssod.epochs, cut.ssod.warmup_epochs, cut.ssod.batch_size) == (smoke.EPOCHS, 0, smoke.BATCH)
    assert cut.ssod.pretrained == "/w" and cut.data.root == "/d" and cut.device == "cpu"
    assert cut.checks.enforce is False and cut.baselines.knn.k == smoke.NEIGHBOURS
    kept = ("backbone", "width", "stem", "input_size", "alpha", "gamma", "balance", "backbones", "select", "score")
    assert {k: getattr(cut.ssod, k) for k in kept} == {k: getattr(P.ssod, k) for k in kept}
    assert cut.data.ood_datasets == P.data.ood_datasets and cut.data.image_size == P.data.image_size


def test_smoke_weights_load_through_the_profiles_loading_code(tmp_path):
    from ssdlib.models.backbones import backbone, load_pretrained

    P = profiles.validate(
        {"profile": "t", "ssod": {"backbone": "mobilenet_v3_small", "backbones": [], "pretrained": "x"}}
    )
    folder = smoke.write_weights(P, tmp_path)
    model = backbone("mobilenet_v3_small")
    load_pretrained(model, "mobilenet_v3_small", str(folder))  # the folder form of ssod.pretrained
    written = torch.load(folder / "mobilenet_v3_small.pth", weights_only=True)
    assert torch.equal(model.state_dict()["features.0.0.weight"], written["features.0.0.weight"])
    with pytest.raises(ValueError, match=r"holds no resnet18.pth"):
        load_pretrained(backbone("resnet18"), "resnet18", str(folder))
    four = smoke.write_weights(P, tmp_path / "four", num_classes=4)  # the tiny ID set's classes, as prepare writes
    assert torch.load(four / "mobilenet_v3_small.pth", weights_only=True)["classifier.3.weight"].shape[0] == 4


@pytest.fixture
def profile_missing_textures(tmp_path, monkeypatch):
    root = tmp_path / "data"
    tiny.write_sets(["cifar10", "svhn"], root, id_dataset="cifar10")
    monkeypatch.setenv(checksums.SMOKE_DATA_ENV, str(root.resolve()))
    path = tmp_path / "p.yaml"
    data = {"id_dataset": "cifar10", "ood_datasets": ["svhn", "textures"], "root": str(root)}
    path.write_text(yaml.safe_dump({"profile": "p", "notebooks": ["02"], "data": data}))
    return path, root


def test_dry_run_names_the_missing_set_and_the_folder_it_looked_in(profile_missing_textures, caplog):
    path, root = profile_missing_textures
    assert main(["reproduce", "--params", str(path), "--dry-run"]) == 1
    assert "textures: not found in " + str(root / "dtd") in caplog.text
    assert not (ROOT / "outputs" / "p").exists()


def test_dry_run_prints_the_sets_and_the_plan(profile_missing_textures, caplog):
    path, root = profile_missing_textures
    raw = yaml.safe_load(path.read_text())
    raw["data"]["ood_datasets"] = ["svhn"]
    path.write_text(yaml.safe_dump(raw))
    assert main(["reproduce", "--params", str(path), "--dry-run"]) == 0
    assert "cifar10 train 6 (the published set has 50,000)" in caplog.text
    assert "SupCon resnet50 w64" in caplog.text and "nothing was trained or written" in caplog.text


def test_the_imagenet_plan_has_ssod_with_and_without_supcon_and_table_6():
    P = profiles.load(ROOT / "params" / "imagenet_ssod.yaml")
    names = [m.name for m in plan.models(P, P.notebooks, 1_281_167)]
    assert "SSOD resnet50 w64 alpha 1.5, LWB" in names and "SSOD resnet50 w64 alpha 1.5, LWB + SupCon x1" in names
    # SSOD w/o and w/, SSOD of three more backbones (the vanilla ones are scored as released), and notebook
    # 05's MOS head on the released ResNet-50 (the CE classifier itself is released: nothing to train)
    assert len(names) == 2 + 3 + 1 and "MOS head on SupCE resnet50 w64 (20000 steps on frozen features)" in names
    assert not any("vanilla" in name or name.startswith("SupCE") for name in names)
    fine_tuned = profiles.merged(P.model_dump(mode="json"), {"ssod": {"vanilla": "fine_tuned"}})
    planned = plan.models(profiles.validate(fine_tuned), P.notebooks, 1_281_167)
    assert len(planned) == 3 + 2 * 3 + 1  # each with its vanilla


def test_the_cifar10_ssod_plan_trains_table_2s_baseline_models_and_no_simclr():
    """Notebook 05 on the SSOD profile: the CE classifier, GODIN's network and KNN+'s SupCon encoder, all
    ResNet-18; SSOD is notebook 04's model; SSD's SimCLR encoder is left out (ssd.in_comparison)."""
    P = profiles.load(ROOT / "params" / "cifar10_ssod.yaml")
    planned = {m.name: m for m in plan.models(P, P.notebooks, 50_000)}
    assert {n: (m.epochs, m.notebooks) for n, m in planned.items() if not n.startswith("SSOD")} == {
        "SupCE resnet18 w64": (100, ("05",)),
        "GODIN resnet18 w64": (100, ("05",)),
        "SupCon resnet18 w64": (10 + 490, ("05",)),
        "CSI resnet18 w64": (10 + 990, ("05",)),  # Table 2's CSI: the repository's 1000 epochs
    }
    assert planned["SSOD resnet18 w64 alpha 1.5, LWB"].notebooks == ("04", "05")
    with_ssd = profiles.validate(profiles.merged(P.model_dump(mode="json"), {"ssd": {"in_comparison": True}}))
    assert "SimCLR resnet18 w64" in {m.name for m in plan.models(with_ssd, ["05"], 50_000)}


def test_csi_and_mos_are_planned_where_the_profile_runs_them():
    """Notebook 05 trains CSI with ``csi.in_comparison`` and MOS's head when ``mos.groups`` is set; MOS is
    one pass of the frozen CE classifier plus its head's steps (the repository's rule below 20 000 images)."""
    P = profiles.load(ROOT / "params" / "offline.yaml", {"csi": {"in_comparison": True}})
    planned = {m.name: m for m in plan.models(P, ["05"], 3000)}
    assert planned["CSI resnet18 w8"].epochs == P.csi.warmup_epochs + P.csi.epochs
    assert planned["MOS head on SupCE resnet18 w8 (500 steps on frozen features)"].work == 3000
    off = profiles.validate(
        profiles.merged(P.model_dump(mode="json"), {"csi": {"in_comparison": False}, "mos": {"groups": None}})
    )
    assert not any(n.startswith(("CSI", "MOS")) for n in (m.name for m in plan.models(off, ["05"], 3000)))


def test_smoke_cuts_notebook_05s_models_as_the_others():
    P = profiles.load(ROOT / "params" / "cifar10_ssod.yaml")
    cut = profiles.validate(profiles.merged(P.model_dump(mode="json"), smoke.overrides(P, Path("/d"), None)))
    planned = {m.name: m.epochs for m in plan.models(cut, ["05"], 40)}
    assert planned["SupCon resnet18 w64"] == 1 + smoke.EPOCHS  # one warm-up epoch kept
    assert planned["SupCE resnet18 w64"] == planned["GODIN resnet18 w64"] == smoke.EPOCHS
    assert cut.encoder.batch_size == cut.classifier.batch_size == smoke.BATCH
    assert cut.baselines.knn.k == smoke.NEIGHBOURS and cut.encoder.arch == "resnet18"
    assert planned["CSI resnet18 w64"] == 1 + smoke.EPOCHS and cut.csi.batch_size == smoke.BATCH
    assert cut.csi.ood_samples == smoke.SCORE_VIEWS and cut.csi.score_crop == P.csi.score_crop
