"""What a reader sees, checked as a reader would: executed notebooks and pages in a real browser.

The browser is Debian's ``chromium`` driven by Playwright (Playwright's own browser download is not
reachable here). Where chromium is missing the browser tests skip, except in CI (``CI`` set), whose
``.ci/run`` installs it: there a missing browser fails them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# as root in a closed network: no sandbox, and no background connections that the network refuses
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MAX_STREAMS = 20  # stream outputs an executed notebook may hold: a few log lines per cell, no bar frames
RAW_REPRS = ("PosixPath(", "<IPython.core", "Check(notebook=", "<Figure size", "<matplotlib")


@contextlib.contextmanager
def browser() -> Iterator:
    """A headless chromium (Playwright's sync API); skips where there is none, fails in CI."""
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"no chromium at {CHROMIUM}: .ci/run installs Debian's chromium for the browser tests")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def page_problems(browser, url: str, width: int = 1280) -> list[str]:
    """What is wrong with the page at ``url`` for a reader: images that did not load, console errors,
    tables wider than the page. Empty when nothing is."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    try:
        page.goto(url, wait_until="load")
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
            ".map(i => i.alt || i.src.slice(0, 60))"
        )
        wide = page.evaluate(
            "Array.from(document.querySelectorAll('table'))"
            ".filter(t => t.getBoundingClientRect().right > document.documentElement.clientWidth + 1)"
            ".map(t => t.innerText.slice(0, 60))"
        )
        images = page.evaluate("document.images.length")
    finally:
        page.close()
    problems = [f"image not loaded: {b}" for b in broken] + [f"console: {e}" for e in errors]
    problems += [f"table wider than the page: {w!r}" for w in wide]
    return problems if images or not url.endswith("report.html") else [*problems, "the report shows no image"]


def executed_notebook_problems(path: Path) -> list[str]:
    """What a reader should not find in an executed notebook: a figure cell without its figure, more than
    :data:`MAX_STREAMS` stream outputs, progress-bar frames, raw Python reprs."""
    nb = nbformat.read(path, as_version=4)
    problems, streams = [], 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        if "plots.show(" in cell.source and not images:
            problems.append(f"cell {i}: draws a figure but holds none")
        for output in cell.outputs:
            if output.output_type == "stream":
                streams += 1
                if "\r" in output.text or "it/s]" in output.text or "%|" in output.text:
                    problems.append(f"cell {i}: progress-bar frames in {output.name}")
            data = output.get("data", {})
            plain = data.get("text/plain", "")
            if set(data) == {"text/plain"} and any(r in plain for r in RAW_REPRS):  # nothing richer to show
                problems.append(f"cell {i}: raw repr {plain[:60]!r}")
    if streams > MAX_STREAMS:
        problems.append(f"{streams} stream outputs (at most {MAX_STREAMS})")
    return problems
