"""The params schema: every profile validates; bad files fail fast, naming the key."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ssdlib import params

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
    p = params.load(path)
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

    assert missing(params.load(ROOT / "params" / "offline.yaml"), offline()) == []


def test_misspelt_key_names_the_key_file_and_allowed(tmp_path):
    raw = offline()
    raw["ssd"]["clustres"] = raw["ssd"].pop("clusters")
    path = write(tmp_path, raw)
    with pytest.raises(params.ParamsError) as err:
        params.load(path)
    msg = str(err.value)
    assert str(path) in msg and "ssd.clustres" in msg and "unknown key" in msg and "clusters" in msg


def test_wrong_type_names_the_key(tmp_path):
    raw = offline()
    raw["encoder"]["epochs"] = "ten"
    with pytest.raises(params.ParamsError, match=r"encoder\.epochs"):
        params.load(write(tmp_path, raw))


def test_out_of_range_value_names_the_key(tmp_path):
    raw = offline()
    raw["ssod"]["gamma"] = 1.5
    with pytest.raises(params.ParamsError, match=r"ssod\.gamma.*less than 1"):
        params.load(write(tmp_path, raw))


def test_bad_literal_lists_choices(tmp_path):
    raw = offline()
    raw["encoder"]["training_mode"] = "simclr"
    with pytest.raises(params.ParamsError, match="SimCLR"):
        params.load(write(tmp_path, raw))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(params.ParamsError, match="no such params file"):
        params.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: [unclosed\n")
    with pytest.raises(params.ParamsError, match="not valid YAML"):
        params.load(bad)


def test_from_notebook_validates_sections():
    p = params.from_notebook(profile="offline", ssd={"clusters": [1, 2]}, output_dir="x")
    assert p.ssd.clusters == [1, 2]
    with pytest.raises(params.ParamsError, match=r"ssd\.kk"):
        params.from_notebook(profile="offline", ssd={"kk": 1})


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
        return params.load(path)

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
            params.validate({"profile": "t", "encoder": section})
    with pytest.raises(params.ParamsError, match="profile: String should match"):
        params.validate({"profile": ".."})  # would write into the project's root
