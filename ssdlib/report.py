"""The page a reader opens first: ``<output_dir>/report.html``, built from the files a run left.

A run's findings are spread over ``run.json``, ``checks.json``, ``results.md``, the figures and the
executed notebooks; this module gathers them into one page: what ran (profile, commit, seeds, device,
time per notebook), the papers' claims with their verdicts (``claims.md``, where the run wrote one),
the sanity checks with value and threshold, the results in the papers' table shape, the comparison
with the papers' numbers, and every figure with its caption. Each executed notebook is rendered
beside it as ``NN_name.html`` with nbconvert, code folded. A multi-seed run's page shows the tables
over the seeds and links each seed's own page.

The pages load nothing from the network and embed their images, so the folder can be moved, copied
or mailed. Everything here reads files only: ``ssdlib report DIR`` rebuilds the page of any run.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import ssdlib
from ssdlib import atomic, checks, plots
from ssdlib.evaluation import claims as claims_ledger
from ssdlib.evaluation import spread
from ssdlib.log import get as get_logger

LOG = get_logger(__name__)

REPORT_FILE = "report.html"
TEMPLATES = Path(__file__).parent / "templates"
NOTEBOOK_TEMPLATE = "ssdlib_notebook"  # nbconvert's lab template, offline, code folded (templates/)
FIGURES_DIR = "figures"
EXECUTED = re.compile(r"^\d\d_.+\.ipynb$")


def write(output_dir: str | Path) -> Path:
    """Render the executed notebooks of ``output_dir`` and write its ``report.html``; return its path."""
    folder = Path(output_dir)
    run = _read_json(folder / "run.json") or {}
    if not run:
        raise FileNotFoundError(f"{folder} holds no run.json: it is not the folder of an ssdlib run")
    multi = isinstance(run.get("seeds"), list) and "runs" in run
    pages = render_notebooks(folder)
    page = _template("report.html.j2").render(
        run={"profile": "?", "status": "?", **run},
        kind=_kind(run, multi),
        facts=_facts(run, multi),
        notebooks=_notebook_rows(run, _seed_pages(folder, run) if multi else pages, multi),
        claims=_claims(folder, run),
        checks_summary=_checks_summary(folder, multi),
        checks=_checks_table(folder, multi),
        results=_results(folder, multi),
        paper_comparison=_markdown_file(folder / "paper_comparison.md"),
        figures=_figures(folder),
        seeds=_seed_rows(folder, run) if multi else [],
        version=ssdlib.__version__,
        files=", ".join(sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != REPORT_FILE)),
        folder=folder,
    )
    path = atomic.write(folder / REPORT_FILE, page)
    LOG.info(f"[ssdlib] report: {path}")
    return path


def render_notebooks(folder: Path) -> dict[str, Path]:
    """Each executed ``NN_name.ipynb`` of ``folder`` as ``NN_name.html`` beside it (nbconvert, images
    embedded); {notebook file name: page}."""
    from nbconvert import HTMLExporter  # local: nbconvert is heavy and only the report needs it

    exporter = HTMLExporter(template_name=NOTEBOOK_TEMPLATE, extra_template_basedirs=[str(TEMPLATES)])
    pages = {}
    for notebook in sorted(p for p in folder.glob("*.ipynb") if EXECUTED.match(p.name)):
        body, _ = exporter.from_filename(str(notebook))
        pages[notebook.name] = atomic.write(notebook.with_suffix(".html"), body)
    return pages


def _template(name: str):
    import jinja2  # local: only the report renders templates

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    return env.get_template(name)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _kind(run: dict, multi: bool) -> str:
    what = "smoke run (tiny generated files, cut epochs: a test of the pipeline, not of the methods)"
    what = what if run.get("smoke") else "run"
    if multi:
        return f"{len(run['seeds'])} seeds ({', '.join(map(str, run['seeds']))}): a {what} per seed, mean ± std here"
    return f"a {what}" + (f" with seed {run['seed']}" if "seed" in run else "")


def _facts(run: dict, multi: bool) -> list[tuple[str, str]]:
    rows = [
        ("profile", run.get("profile")),
        ("params file", run.get("params_file")),
        ("status", run.get("status")),
        ("started", run.get("started")),
        ("finished", run.get("finished") or run.get("ended")),
        ("git commit", run.get("git_commit")),
        ("seeds", ", ".join(map(str, run["seeds"]))) if multi else ("seed", run.get("seed")),
        ("device", run.get("device")),
        ("ssdlib", run.get("ssdlib_version")),
        ("python", run.get("python")),
    ]
    return [(key, str(value)) for key, value in rows if value not in (None, "")]


def _seed_pages(folder: Path, run: dict) -> dict[str, list[tuple[str, str]]]:
    """{notebook: [(seed label, its page relative to ``folder``)]} over the seeds of a multi-seed run."""
    pages: dict[str, list[tuple[str, str]]] = {}
    for seed in run["seeds"]:
        for page in sorted(spread.seed_folder(folder, seed).glob("[0-9][0-9]_*.html")):
            pages.setdefault(page.with_suffix(".ipynb").name, []).append(
                (f"seed {seed}", page.relative_to(folder).as_posix())
            )
    return pages


def _notebook_rows(run: dict, pages: dict, multi: bool) -> list[dict]:
    """Each notebook with its seconds (a multi-seed run: the mean over the seeds) and its page(s): a list of
    (label, link)."""
    if multi:
        per_seed = [times for times in run.get("runs", {}).values() if times]
        names = list(dict.fromkeys(name for times in per_seed for name in times))
        seconds = {n: sum(t[n] for t in per_seed if n in t) / sum(n in t for t in per_seed) for n in names}
        label = " (mean over seeds)"
    else:
        seconds, label = run.get("notebooks", {}), ""
    names = list(dict.fromkeys([*seconds, *pages]))
    return [
        {
            "name": name + label,
            "seconds": f"{seconds[name]:.0f}" if name in seconds else "–",
            "html": (pages[name] if multi else [(pages[name].name, pages[name].name)]) if name in pages else [],
        }
        for name in names
    ]


VERDICT_CLASS = {"reproduced": "ok", "contradicted": "bad"}  # the others are neither: grey


def _claims(folder: Path, run: dict) -> dict | None:
    """The ledger (``claims.csv``) as the page shows it: a line of counts, the legend, and a row per claim
    coloured by its verdict; None where the run wrote no ledger."""
    import pandas as pd  # local: pandas is only needed for the tables

    try:
        table = pd.read_csv(folder / claims_ledger.CSV_FILE)
    except (OSError, ValueError):
        return None
    shown = claims_ledger.shown(table).reset_index()
    shown["verdict"] = shown["verdict"].str.strip("*")
    return {
        "summary": claims_ledger.summary(table),
        "smoke": bool(run.get("smoke")),
        "legend": _markdown(claims_ledger.LEGEND),
        "columns": list(shown.columns),
        "rows": [
            {"css": VERDICT_CLASS.get(verdict, "neutral"), "cells": [("–" if pd.isna(v) else v) for v in row]}
            for verdict, row in zip(table["verdict"], shown.itertuples(index=False))
        ],
    }


def _checks_summary(folder: Path, multi: bool) -> str:
    if multi:
        over = _read_json(folder / checks.SEEDS_FILE) or []
        failed = [c["name"] for c in over if not c["passed"]]
        if not over:
            return "No checks were recorded."
        return f"{len(over) - len(failed)} of {len(over)} checks hold on the mean and on every seed" + (
            f"; failed: {', '.join(failed)}." if failed else "."
        )
    line = checks.summary(folder)
    return line[:1].upper() + line[1:] + "."


def _checks_table(folder: Path, multi: bool) -> str:
    import pandas as pd  # local: pandas is only needed for the tables

    if multi:
        records = _read_json(folder / checks.SEEDS_FILE) or []
        frame = pd.DataFrame(
            [
                {
                    "notebook": c["notebook"],
                    "check": c["name"],
                    "mean": c["mean"],
                    "std": c["std"],
                    "relation": c["relation"],
                    "threshold": c["threshold_mean"],
                    "failed on seeds": ", ".join(map(str, c["failed_seeds"] + c["missing_seeds"])) or "none",
                    "passed": c["passed"],
                }
                for c in records
            ]
        )
    else:
        frame = pd.DataFrame(
            [
                {
                    "notebook": c.notebook,
                    "check": c.name,
                    "value": c.value,
                    "relation": c.relation,
                    "threshold": c.threshold,
                    "passed": c.passed,
                    "what": c.detail,
                }
                for c in checks.read(folder)
            ]
        )
    if frame.empty:
        return ""
    passed = frame.pop("passed")
    frame["passed"] = passed.map({True: "yes", False: "NO"})
    html = frame.to_html(index=False, na_rep="–", float_format=lambda v: f"{v:.4g}", border=0)
    return _mark_failed_rows(html)


def _mark_failed_rows(html: str) -> str:
    """Give the rows whose last cell says NO the class ``failed`` (highlighted)."""
    return re.sub(r"<tr>(?=((?!</tr>).)*<td>NO</td>\s*</tr>)", '<tr class="failed">', html, flags=re.S)


def _results(folder: Path, multi: bool) -> str:
    """``results.md`` as HTML; over seeds without its checks section, which the page shows already."""
    text = _read_text(folder / "results.md")
    if text is None:
        return "<p>No results table was written (the run stopped before its end).</p>"
    if multi:
        text = re.sub(r"## Checks over seeds\n.*?(?=\n## |\Z)", "", text, flags=re.S)
    return _markdown(text)


def _markdown_file(path: Path) -> str | None:
    text = _read_text(path)
    return None if text is None else _markdown(text)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _markdown(text: str) -> str:
    """Markdown as HTML, nested under the page's own section: a leading title goes (the section heads it)
    and every heading moves one level down."""
    import mistune  # local: only the report renders Markdown (nbconvert's own renderer)

    text = re.sub(r"\A\s*# [^\n]*\n", "", text)
    text = re.sub(r"^(#{1,5}) ", r"#\1 ", text, flags=re.M)
    return mistune.create_markdown(escape=True, plugins=["table"])(text)


def _figures(folder: Path) -> list[tuple[str, list[dict]]]:
    """The PNGs under ``figures/``, grouped by notebook (the folder they lie in), each embedded."""
    root = folder / FIGURES_DIR
    groups: dict[str, list[dict]] = {}
    for path in sorted(root.rglob("*.png")) if root.is_dir() else []:
        group = path.parent.name if path.parent != root else "over the seeds"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        groups.setdefault(group, []).append(
            {"name": path.stem, "caption": plots.caption_of(path), "src": f"data:image/png;base64,{data}"}
        )
    return list(groups.items())


def _seed_rows(folder: Path, run: dict) -> list[dict]:
    rows = []
    for seed in run["seeds"]:
        seed_dir = spread.seed_folder(folder, seed)
        report = seed_dir / REPORT_FILE
        rows.append(
            {
                "seed": seed,
                "status": (_read_json(seed_dir / "run.json") or {}).get("status", "not run"),
                "report": report.relative_to(folder).as_posix() if report.is_file() else None,
            }
        )
    return rows
