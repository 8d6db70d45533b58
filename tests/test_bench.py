"""``ssdlib bench``: the quick run writes both reports; FLOP counts and the table check out by hand."""

import json

import torch
from torch import nn

from ssdlib.bench.device import PEAK_BF16, table_peak
from ssdlib.bench.simclr import flops_per_image
from ssdlib.bench.sizes import BenchSizes
from ssdlib.cli import main


def test_quick_run_writes_json_and_markdown(tmp_path, capsys):
    assert main(["bench", "--quick", "--device", "cpu", "--output-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["quick"] and report["device_type"] == "cpu" and report["peak_source"] == "measured matmul"
    ssd_style, ssdlib = report["simclr"]
    assert ssd_style["pipeline"].startswith("SSD-style") and ssd_style["speedup"] == 1.0
    assert ssdlib["speedup"] == ssdlib["images_per_s"] / ssd_style["images_per_s"]
    assert all(r["images_per_s"] > 0 and 0 < r["mfu"] for r in report["simclr"] + report["ssod"])
    numpy_row, torch_row = report["ssd"]
    assert numpy_row["max_rel_diff"] == 0 and torch_row["max_rel_diff"] < 1e-9  # same scores, other backend
    table = (tmp_path / "bench.md").read_text()
    assert "| resnet18 | ssdlib |" in table and "quick run" in table
    assert "bench.md" in capsys.readouterr().out


def test_flops_per_image_of_a_linear_model_by_hand():
    """A linear map of a 3 x 4 x 4 image to 5 outputs: per view 2*48*5 forward, the same again for the
    weight's gradient (the input needs none); two views per training image."""
    sizes = BenchSizes(batch_size=3, image_size=4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 5, bias=False))
    assert flops_per_image(model, sizes, torch.device("cpu")) == 2 * (2 * 48 * 5 + 2 * 48 * 5)


def test_known_gpus_take_their_datasheet_peak():
    assert table_peak(torch.device("cpu")) is None
    assert PEAK_BF16["H200"] == PEAK_BF16["H100"]  # same chip, same tensor cores


def test_an_unknown_section_is_refused_before_any_work(tmp_path, capsys):
    assert main(["bench", "--quick", "--sections", "simclr,warp", "--output-dir", str(tmp_path)]) == 2
    assert "unknown section(s) warp" in capsys.readouterr().err and not any(tmp_path.iterdir())
