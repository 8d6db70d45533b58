"""The ssdlib command's last line of defence: one line naming the problem and the fix, not a traceback."""

import errno
import time
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


def _folder_with_bad_images(tmp_path):
    """A folder set of one good image, a zero-byte .jpg, a text file named .jpg and a truncated JPEG."""
    from PIL import Image

    folder = tmp_path / "scenes" / "any"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "good.png")
    (folder / "broken.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image")
    Image.new("RGB", (64, 64), (200, 10, 10)).save(folder / "cut.jpg", quality=95)
    whole = (folder / "cut.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    return tmp_path / "scenes"


@pytest.mark.parametrize("name, reason", [("broken.jpg", "not an image file"), ("cut.jpg", "truncated")])
def test_an_unreadable_image_in_a_folder_is_named_with_the_fix(tmp_path, name, reason):
    """The loader names the file PIL does not ("Truncated File Read"), and the CLI says it in one line, also
    when the error comes from a DataLoader worker (which re-raises it with the worker's traceback)."""
    from ssdlib.cli import explain
    from ssdlib.data import BadImageError, real

    path = _folder_with_bad_images(tmp_path) / "any" / name
    with pytest.raises(BadImageError) as err:
        real.read_image(str(path))
    line = explain(err.value)
    assert line.startswith(f"{path}: not a readable image (") and reason in line.lower()
    assert line.endswith("; remove or replace that file") and "\n" not in line
    from_worker = BadImageError(
        f"Caught BadImageError in DataLoader worker process 0.\nOriginal Traceback ...\n"
        f"ssdlib.data.real.BadImageError: {err.value}"
    )
    assert explain(from_worker) == line


def test_eval_names_a_truncated_image_of_an_ood_folder(tmp_path):
    from ssdlib.data import BadImageError, get_datasets, tensors
    from ssdlib.params import DataParams, OfflineBenchmark

    folder = _folder_with_bad_images(tmp_path)
    for name in ("broken.jpg", "notes.jpg"):
        (folder / "any" / name).unlink()
    data = DataParams(
        ood_datasets=[f"imagefolder:{folder}"],
        image_size=8,
        offline=OfflineBenchmark(train_per_class=2, test_per_class=2, ood_per_set=2),
    )
    with pytest.raises(BadImageError, match=f"{folder / 'any' / 'cut.jpg'}: not a readable image"):
        tensors(next(iter(get_datasets(data).ood.values())))


def test_a_dry_run_opens_the_images_of_folder_sets_and_names_the_bad_ones(tmp_path, capsys):
    import yaml

    from ssdlib.cli import main

    folder = _folder_with_bad_images(tmp_path)
    profile = tmp_path / "p.yaml"
    profile.write_text(
        yaml.safe_dump({"profile": "p", "notebooks": ["00"], "data": {"ood_datasets": [f"imagefolder:{folder}"]}})
    )
    assert main(["reproduce", "--params", str(profile), "--dry-run"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"3 of 4 images opened cannot be read: {folder / 'any' / 'broken.jpg'}" in err[0]
    assert str(folder / "any" / "cut.jpg") in err[0] and str(folder / "any" / "notes.jpg") in err[0]
    for name in ("broken.jpg", "cut.jpg", "notes.jpg"):
        (folder / "any" / name).unlink()
    assert main(["reproduce", "--params", str(profile), "--dry-run"]) == 0
    assert "decoded every one; all readable" in capsys.readouterr().out


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


def test_a_stop_ends_the_command_even_where_a_library_swallows_the_ctrl_c(monkeypatch):
    """A signal's exception lands wherever the main thread is; where a library swallows it, the stop hook
    (reproduce kills its kernels) ends the wait, and the error that follows ends as the stop."""
    import os
    import signal

    from ssdlib import cli

    monkeypatch.setattr(cli, "STOPPED_BY", [])
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    hooked = []
    try:
        with pytest.raises(Terminated), cli.stopping_on_signals(), cli.when_stopped(lambda: hooked.append(1)):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            except Terminated:
                pass  # swallowed, as a library might
            raise RuntimeError("the kernel died")  # what the hook's kill makes the library raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert hooked == [1] and cli.STOPPED_BY == [signal.SIGTERM] and not cli.STOP_HOOKS
