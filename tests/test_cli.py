"""The ssdlib command's last line of defence: one line naming the problem and the fix, not a traceback."""

import errno
from urllib.error import URLError

import pytest
from PIL import UnidentifiedImageError

import ssdlib.bench
from ssdlib.cli import INTERRUPTED, TERMINATED, Terminated, main


@pytest.mark.parametrize(
    "error, code, said",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/out/x.pt"), 1, "the disk is full (/out/x.pt): free some"),
        (URLError("[Errno -3] Temporary failure in name resolution"), 1, "no network ("),
        (UnidentifiedImageError("cannot identify image file 'dtd/images/a/b.jpg'"), 1, "remove or replace that file"),
        (ValueError("something odd\nsecond line"), 1, "ValueError: something odd (the traceback: ssdlib --debug"),
        (KeyboardInterrupt(), INTERRUPTED, "interrupted (Ctrl-C)"),
        (Terminated(), TERMINATED, "terminated (SIGTERM); what was written is kept"),
    ],
)
def test_failures_end_in_one_line_and_an_exit_code(monkeypatch, capsys, error, code, said):
    def fail(_args):
        raise error

    monkeypatch.setattr(ssdlib.bench, "run", fail)
    assert main(["bench", "--quick"]) == code
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback(monkeypatch):
    def fail(_args):
        raise ValueError("boom")

    monkeypatch.setattr(ssdlib.bench, "run", fail)
    with pytest.raises(ValueError, match="boom"):
        main(["--debug", "bench", "--quick"])
    monkeypatch.setenv("SSDLIB_DEBUG", "1")
    with pytest.raises(ValueError, match="boom"):
        main(["bench", "--quick"])


def test_relative_paths_resolve_where_the_user_typed_them():
    """./run changes into the project first; the paths a user typed stay relative to where they were."""
    from argparse import Namespace
    from pathlib import Path

    from ssdlib.cli import from_caller

    args = from_caller(Namespace(params=Path("mine.yaml"), output_dir=Path("/abs/out"), ckpt="c.pt", lr=0.1), "/home/u")
    assert args.params == Path("/home/u/mine.yaml") and args.output_dir == Path("/abs/out")
    assert args.ckpt == "/home/u/c.pt" and args.lr == 0.1
    untouched = from_caller(Namespace(params=Path("p.yaml")), "")
    assert untouched.params == Path("p.yaml")


def test_an_unreadable_image_in_a_folder_is_named_with_the_fix(tmp_path):
    """A zero-byte .jpg among the images of an OOD folder: the real loader's error, explained in one line."""
    from PIL import Image

    from ssdlib.cli import explain
    from ssdlib.data import get_datasets, tensors
    from ssdlib.params import DataParams, OfflineBenchmark

    folder = tmp_path / "scenes" / "any"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "good.png")
    (folder / "broken.jpg").write_bytes(b"")
    data = DataParams(
        ood_datasets=[f"imagefolder:{tmp_path / 'scenes'}"],
        image_size=8,
        offline=OfflineBenchmark(train_per_class=2, test_per_class=2, ood_per_set=2),
    )
    bundle = get_datasets(data)
    with pytest.raises(UnidentifiedImageError) as err:
        tensors(next(iter(bundle.ood.values())))
    line = explain(err.value)
    assert "broken.jpg" in line and "remove or replace that file" in line and "\n" not in line


def test_flag_choices_are_read_from_the_params_schema():
    import argparse
    from typing import Literal

    from ssdlib import params
    from ssdlib.cli import choices, evaluate, ssod, train

    assert choices(Literal["a", "b"]) == ["a", "b"]
    assert choices(params.SSDParams, "kmeans") == ["sklearn", "faiss"]
    with pytest.raises(TypeError, match="not a Literal"):
        choices(params.Params, "seed")
    flags = {}
    for command in (train, evaluate, ssod):
        parser = argparse.ArgumentParser()
        command.configure(parser)
        flags[command.__name__] = {a.dest: a.choices for a in parser._actions if a.choices}
    assert flags["ssdlib.cli.train"]["arch"] == ["resnet18", "resnet34", "resnet50", "resnet101"]
    assert flags["ssdlib.cli.train"]["training_mode"] == flags["ssdlib.cli.evaluate"]["training_mode"]
    assert flags["ssdlib.cli.train"]["training_mode"] == ["SimCLR", "SupCon", "SupCE"]
    assert flags["ssdlib.cli.train"]["device"] == flags["ssdlib.cli.evaluate"]["device"] == ["auto", "cpu", "cuda"]
    assert flags["ssdlib.cli.evaluate"]["kmeans"] == ["sklearn", "faiss"]
    assert flags["ssdlib.cli.ssod"]["balance"] == ["LW", "DR", "LWB"]
