"""The report: the sections measured into one dict (what ``bench.json`` holds, saved after each
section so that a run stopped half-way keeps what it measured) and the same as Markdown tables
(``bench.md``), so that the figures and their provenance (device, torch, commit) travel together."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ssdlib.bench.breakdown import breakdown_rows
from ssdlib.bench.device import device_name, matmul_peak, table_peak
from ssdlib.bench.extraction import extraction_row
from ssdlib.bench.simclr import simclr_rows
from ssdlib.bench.sizes import BenchSizes
from ssdlib.bench.ssd import ssd_rows
from ssdlib.bench.ssod import ssod_rows
from ssdlib.log import get as get_logger
from ssdlib.project import git_commit

LOG = get_logger(__name__)
SECTIONS = ("simclr", "ssd", "ssod", "extraction", "breakdown")


def measure(
    device: torch.device,
    sizes: BenchSizes,
    *,
    quick: bool = False,
    sections=SECTIONS,
    log: Callable[[str], None] = LOG.info,
    save: Callable[[dict[str, Any]], Any] = lambda _report: None,
) -> dict[str, Any]:
    """The ``sections`` measured on ``device``: the dict that ``bench.json`` holds, passed to
    ``save`` after each section."""
    measured = matmul_peak(device, quick)
    table = table_peak(device)
    peak = table or measured
    report = {
        "device": device_name(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "commit": git_commit() or "unknown",
        "quick": quick,
        "sizes": asdict(sizes),
        "peak_flops": peak,
        "peak_source": "datasheet (dense bf16)" if table else "measured matmul",
        "measured_matmul_flops": measured,
        "simclr": [],
        "ssd": [],
        "ssod": [],
        "extraction": {},
        "breakdown": [],
    }
    steps = {
        "simclr": lambda: simclr_rows(sizes, device, peak, log),
        "ssd": lambda: ssd_rows(sizes, device, log),
        "ssod": lambda: ssod_rows(sizes, device, peak, log),
        "extraction": lambda: extraction_row(sizes, device, log),
        "breakdown": lambda: breakdown_rows(sizes, device, peak, log),
    }
    for section in sections:
        if section in steps:
            report[section] = steps[section]()
            save(report)
    return report


def _flops(rate: float) -> str:
    return f"{rate / 1e12:.1f} TFLOP/s" if rate >= 1e12 else f"{rate / 1e9:.0f} GFLOP/s"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables, figures rounded for reading."""
    peak = f"{_flops(report['peak_flops'])} ({report['peak_source']})"
    lines = [
        f"# Benchmark: {report['device']}",
        "",
        f"{report['date']}, commit {report['commit']}, torch {report['torch']}"
        + (" — quick run: sizes too small to say anything about speed" if report["quick"] else ""),
        "",
        f"Peak used for FLOP utilisation: {peak}; measured matmul: {_flops(report['measured_matmul_flops'])}.",
        "",
        f"## SimCLR training ({report['sizes']['image_size']} px, batch {report['sizes']['batch_size']})",
        "",
        "| model | pipeline | images/s | x SSD-style | GFLOP/image | FLOP utilisation |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["simclr"]:
        lines.append(
            f"| {r['arch']} | {r['pipeline']} | {r['images_per_s']:,.0f} | {r['speedup']:.1f} | "
            f"{r['gflops_per_image']:.2f} | {100 * r['mfu']:.1f}% |"
        )
    if report.get("breakdown"):
        lines += [
            "",
            "## Where a SimCLR step of ssdlib goes",
            "",
            "| part | model | batch | ms per step | FLOP utilisation |",
            "|---|---|---|---|---|",
        ]
        for r in report["breakdown"]:
            figures = f"{r['ms']:.1f} | " + (f"{100 * r['mfu']:.1f}%" if "mfu" in r else "")
            lines.append(f"| {r['part']} | {r['arch']} | {r['batch_size']} | {figures} |")
    lines += [
        "",
        "## SSD fit + score (one cluster)",
        "",
        "| backend | train x dim | test | seconds | max relative score difference |",
        "|---|---|---|---|---|",
    ]
    for r in report["ssd"]:
        lines.append(
            f"| {r['backend']} | {r['train']:,} x {r['dim']} | {r['test']:,} | {r['seconds']:.2f} | "
            f"{r['max_rel_diff']:.1e} |"
        )
    lines += [
        "",
        "## SSOD training and feature extraction",
        "",
        "| what | images/s | FLOP utilisation |",
        "|---|---|---|",
    ]
    lines += [
        f"| SSOD {s['arch']} at {s['input_size']} px, batch {s['batch_size']} | {s['images_per_s']:,.0f} | "
        f"{100 * s['mfu']:.1f}% |"
        for s in report["ssod"]
    ]
    if e := report["extraction"]:
        lines.append(
            f"| feature extraction, {e['arch']} at {report['sizes']['image_size']} px | {e['images_per_s']:,.0f} | |"
        )
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], output_dir: str | Path) -> tuple[Path, Path]:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "bench.json", out / "bench.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path
