"""The params schema: every profile validates; bad files fail fast, naming the key."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ssdlib import params, profiles

ROOT = Path(__file__).resolve().parent.parent
PROFILES = sorted((ROOT / "params").glob("*.yaml"))


def write(tmp_path, data, name="p.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def offline():
    return yaml.safe_load((ROOT / "params" / "offline.yaml").read_text())


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_every_profile_validates(path):
    p = profiles.load(path)
    assert p.profile


def test_offline_profile_lists_every_key_explicitly():
    """offline.yaml is the reference a reader copies from: no key left to a schema default."""

    def missing(model, raw, prefix=""):
        out = []
        names = [*type(model).model_fields, *(model.__pydantic_extra__ or {})]  # extras: detector sections
        for name in names:
            if name not in raw:
                out.append(prefix + name)
            elif isinstance(getattr(model, name), params.BaseModel):
                out += missing(getattr(model, name), raw[name], f"{prefix}{name}.")
        return out

    assert missing(profiles.load(ROOT / "params" / "offline.yaml"), offline()) == []


def test_misspelt_key_names_the_key_file_and_allowed(tmp_path):
    raw = offline()
    raw["ssd"]["clustres"] = raw["ssd"].pop("clusters")
    path = write(tmp_path, raw)
    with pytest.raises(params.ParamsError) as err:
        profiles.load(path)
    msg = str(err.value)
    assert str(path) in msg and "ssd.clustres" in msg and "unknown key" in msg and "clusters" in msg


def test_wrong_type_names_the_key(tmp_path):
    raw = offline()
    raw["encoder"]["epochs"] = "ten"
    with pytest.raises(params.ParamsError, match=r"encoder\.epochs"):
        profiles.load(write(tmp_path, raw))


def test_out_of_range_value_names_the_key(tmp_path):
    raw = offline()
    raw["ssod"]["gamma"] = 1.5
    with pytest.raises(params.ParamsError, match=r"ssod\.gamma.*less than 1"):
        profiles.load(write(tmp_path, raw))


def test_bad_literal_lists_choices(tmp_path):
    raw = offline()
    raw["encoder"]["training_mode"] = "simclr"
    with pytest.raises(params.ParamsError, match="SimCLR"):
        profiles.load(write(tmp_path, raw))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(params.ParamsError, match="no such params file"):
        profiles.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: [unclosed\n")
    with pytest.raises(params.ParamsError, match="not valid YAML"):
        profiles.load(bad)


def test_a_notebook_reads_the_file_with_its_overrides_merged_per_key(tmp_path, monkeypatch):
    p = profiles.for_notebook(ROOT / "params" / "offline.yaml", {"encoder": {"epochs": 3}, "ssd": {"clusters": [1, 2]}})
    assert p.encoder.epochs == 3 and p.ssd.clusters == [1, 2]
    assert p.encoder.width == offline()["encoder"]["width"]  # the section's other keys stay the file's
    with pytest.raises(params.ParamsError, match=r"ssd\.kk: unknown key"):
        profiles.for_notebook(ROOT / "params" / "offline.yaml", {"ssd": {"kk": 1}})
    with pytest.raises(params.ParamsError, match="overrides must be a mapping"):
        profiles.for_notebook(ROOT / "params" / "offline.yaml", [("ssd", 1)])


def test_a_relative_params_file_is_found_from_the_project_or_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT / "notebooks")  # where JupyterLab runs a notebook
    assert profiles.find_file("params/offline.yaml") == ROOT / "params" / "offline.yaml"
    (tmp_path / "mine.yaml").write_text("profile: mine\n")
    monkeypatch.chdir(tmp_path)  # papermill run from the user's folder
    assert profiles.for_notebook("mine.yaml").profile == "mine"
    with pytest.raises(params.ParamsError, match=r"nope.yaml: no such params file \(looked in .* and "):
        profiles.find_file("nope.yaml")


def test_merged_replaces_lists_and_values_and_merges_sections():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2}
    assert profiles.merged(base, {"a": {"y": [3]}, "c": {"z": 1}}) == {"a": {"x": 1, "y": [3]}, "b": 2, "c": {"z": 1}}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 2}  # not changed in place


def test_notebooks_are_two_digit_numbers():
    assert profiles.validate({"profile": "t", "notebooks": ["00", "04"]}).notebooks == ["00", "04"]
    assert profiles.validate({"profile": "t"}).notebooks is None  # every notebook
    for bad in (["4"], ["04_ssod"], []):
        with pytest.raises(params.ParamsError, match="notebooks"):
            profiles.validate({"profile": "t", "notebooks": bad})


def test_cli_rejects_bad_params_before_any_work_and_writes_nothing(tmp_path):
    raw = offline()
    raw["data"]["batchsize"] = raw["data"].pop("batch_size")
    path = write(tmp_path, raw)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "ssdlib.cli", "reproduce", "--params", str(path), "--output-dir", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 1
    assert "data.batchsize" in proc.stderr and str(path) in proc.stderr
    assert not out.exists()


def test_sets_named_by_checks_and_ablations_must_be_loaded(tmp_path):
    """A check-set name that no OOD set answers is refused on reading, not after a model has trained."""
    raw = {"profile": "t", "data": {"ood_datasets": ["textures"]}, "ssod": {"ablation_ood": "textures"}}

    def load(extra):
        path = tmp_path / "p.yaml"
        path.write_text(yaml.safe_dump({**raw, **extra}))
        return profiles.load(path)

    with pytest.raises(params.ParamsError, match=r"checks\.ssod_ood_set: 'places365' not among data\.ood_datasets"):
        load({"checks": {"ssod_ood_set": "places365"}})
    with pytest.raises(params.ParamsError, match=r"checks\.near_ood_set: 'nope' not among"):
        load({"checks": {"ssod_ood_set": "textures", "near_ood_set": "nope"}})
    assert load({}).checks.ssod_ood_set == "places365"  # a default, not written in the file: not checked
    assert load({"checks": {"ssod_ood_set": "textures"}}).checks.ssod_ood_set == "textures"


def test_values_are_not_coerced_and_must_be_finite():
    for section, message in [
        ({"amp": "no"}, "valid boolean"),
        ({"lr": float("inf")}, "finite number"),
        ({"lr": "0.1"}, "valid number"),
    ]:
        with pytest.raises(params.ParamsError, match=rf"encoder\.{next(iter(section))}: Input should be a {message}"):
            profiles.validate({"profile": "t", "encoder": section})
    with pytest.raises(params.ParamsError, match="profile: String should match"):
        profiles.validate({"profile": ".."})  # would write into the project's root


def test_the_set_of_ssods_failure_case_is_optional_and_must_be_loaded(tmp_path):
    """checks.ssod_failure_set (notebook 05's SSOD-trails-KNN check): none by default, refused on reading
    when the profile does not load it; ssd.in_comparison is a plain switch."""
    raw = {"profile": "t", "data": {"ood_datasets": ["svhn"]}}
    assert profiles.validate(raw).checks.ssod_failure_set is None
    assert profiles.validate(raw).ssd.in_comparison is True
    path = write(tmp_path, {**raw, "checks": {"ssod_failure_set": "textures"}})
    with pytest.raises(params.ParamsError, match=r"checks\.ssod_failure_set: 'textures' not among data\.ood_datasets"):
        profiles.load(path)
    raw["data"]["ood_datasets"] = ["svhn", "textures"]
    loaded = profiles.load(
        write(tmp_path, {**raw, "checks": {"ssod_failure_set": "textures"}, "ssd": {"in_comparison": False}})
    )
    assert (loaded.checks.ssod_failure_set, loaded.ssd.in_comparison) == ("textures", False)
    with pytest.raises(params.ParamsError, match=r"ssd\.in_comparison: Input should be a valid boolean"):
        profiles.validate({"profile": "t", "ssd": {"in_comparison": "no"}})


# (profile, detector, hyper-parameter) -> the value of the detector's paper for that profile's data,
# as the profile's comment cites it
PAPER_SETTINGS = {
    **{
        (profile, key, name): value
        for profile in ("cifar10", "cifar10_ssod")
        for (key, name), value in {
            ("knn", "k"): 50,  # Sun et al. 2022, Sec. 4.1
            ("odin", "temperature"): 1000.0,
            ("odin", "epsilon"): 0.0014,
            ("mahalanobis", "epsilon"): 0.0,
            ("energy", "temperature"): 1.0,
            ("react", "percentile"): 90.0,
        }.items()
    },
    ("cifar10", "vim", "dim"): 1000,  # ViM's rule for 2048-d (ResNet-50) features
    ("cifar10_ssod", "godin", "similarity"): "cosine",
    ("cifar10_ssod", "godin", "epsilon"): None,
    ("imagenet_ssod", "knn", "k"): 1000,  # Sun et al. 2022, Sec. 4.2
    ("imagenet_ssod", "odin", "temperature"): 1000.0,
    ("imagenet_ssod", "react", "percentile"): 90.0,
    ("imagenet_ssod", "vim", "dim"): 1000,
    ("imagenet_ssod", "godin", "epsilon"): None,
}


@pytest.mark.parametrize("profile", ["cifar10", "cifar10_ssod", "imagenet_ssod"])
def test_each_paper_profile_writes_its_baselines_paper_settings(profile):
    """Written in the file (not left to a schema default, which may be another data set's value), and read
    as written; the methods a profile runs each have their section."""
    path = ROOT / "params" / f"{profile}.yaml"
    written, P = yaml.safe_load(path.read_text())["baselines"], profiles.load(path)
    for (name, key, field), value in PAPER_SETTINGS.items():
        if name == profile:
            assert written[key][field] == value, (key, field)
            assert getattr(P.baselines.section(key), field) == value, (key, field)
    assert P.baselines.tune is False  # the papers' fixed values, not a grid's pick
    assert set(P.baselines.methods) - {"msp", "maxlogit"} <= set(written)


def test_a_folder_a_non_utf8_file_and_a_key_given_twice_are_named(tmp_path):
    with pytest.raises(params.ParamsError, match=rf"^{tmp_path}: a folder, not a params file; name a YAML file"):
        profiles.load(tmp_path)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("profile: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(
        params.ParamsError, match=r"latin.yaml: not UTF-8 text \(byte 12 is b'\\xe9'\); save it as UTF-8"
    ):
        profiles.load(latin)
    twice = tmp_path / "twice.yaml"
    twice.write_text("profile: p\nencoder:\n  epochs: 2\n  lr: 0.1\n  epochs: 20\n")
    with pytest.raises(params.ParamsError) as err:
        profiles.load(twice)
    assert str(err.value) == f"{twice}: key 'epochs' given twice in one section (lines 3 and 5); keep one"
    twice.write_text("profile: p\nencoder: {epochs: 2}\ndata: {epochs: 3}\n")  # one key per section is fine
    with pytest.raises(params.ParamsError, match="data.epochs"):  # (refused by the schema, not as a duplicate)
        profiles.load(twice)
