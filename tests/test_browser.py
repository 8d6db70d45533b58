"""The reader's run in a real browser: the report and a notebook's page, and ``./run lab`` at the project's root.

The report of real runs is opened the same way by the smoke-run tests (``test_smoke_profiles.py``).
"""

import os
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port
from pages import browser, page_problems
from test_report import run_folder

from ssdlib import report

ROOT = Path(__file__).resolve().parent.parent


def test_report_and_notebook_pages_show_every_image_and_fit_the_page(tmp_path):
    folder = run_folder(tmp_path / "offline")
    report.write(folder)
    moved = folder.rename(tmp_path / "mailed")  # the pages stand alone: moved, they still show everything
    with browser() as b:
        for page in ("report.html", "00_data.html"):
            assert page_problems(b, (moved / page).as_uri()) == [], page


NOTEBOOK = ROOT / "notebooks" / "00_data.ipynb"


@pytest.fixture
def lab(tmp_path):
    """``./run lab`` on a free loopback port, as a user starts it (as root here, like CI); its URL and token.
    The lab's autosave is off and the notebook is put back as it was: the test must not store outputs in it."""
    port, token = free_port(), secrets.token_hex(16)
    log = (tmp_path / "lab.log").open("w")
    options = ["--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}"]
    settings = tmp_path / "settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text('{"autosave": false}')
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    stored = NOTEBOOK.read_bytes()
    process = subprocess.Popen([str(ROOT / "run"), "lab", *options], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "lab.log").read_text()
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within 60 s:\n" + (tmp_path / "lab.log").read_text())
        yield url, token, tmp_path / "lab.log"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        changed = NOTEBOOK.read_bytes() != stored
        NOTEBOOK.write_bytes(stored)
        assert not changed, "the lab saved notebooks/00_data.ipynb (autosave should be off)"


@pytest.mark.slow
def test_lab_opens_at_the_root_and_runs_notebook_00_in_the_browser(lab):
    url, token, log = lab
    assert "--allow-root" not in log.read_text() or os.geteuid() == 0
    with browser() as b:
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/lab/tree?token={token}")
        page.locator(".jp-DirListing-itemText", has_text="README.md").wait_for(timeout=30_000)
        names = set(page.locator(".jp-DirListing-itemText").all_inner_texts())
        assert {"README.md", "notebooks", "params", "docs"} <= names, names

        page.goto(f"{url}/lab/tree/notebooks/{NOTEBOOK.name}?token={token}")
        name = page.locator(".jp-NotebookPanel-toolbar .jp-KernelName")
        deadline = time.time() + 90
        while name.inner_text(timeout=30_000) in ("", "No Kernel", "Kernel") and time.time() < deadline:
            time.sleep(0.5)  # the kernel is starting
        assert name.inner_text() == "Python 3 (ssdlib)", name.inner_text()
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=90_000)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        prompts = page.locator(".jp-CodeCell .jp-InputPrompt")
        deadline = time.time() + 240
        while time.time() < deadline:  # every code cell has run when no prompt is empty or busy
            shown = prompts.evaluate_all("ps => ps.map(p => p.textContent.trim())")  # also cells scrolled away
            if shown and all(t.startswith("[") and t[1:-2].strip().isdigit() for t in shown):
                break
            time.sleep(1)
        else:
            pytest.fail(f"the cells did not all run within 240 s: prompts {shown}")
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        assert errors.count() == 0, errors.evaluate_all("es => es.map(e => e.textContent)")
        images = page.locator(".jp-OutputArea-output img")
        assert images.count() >= 1
        assert page.evaluate(
            "Array.from(document.querySelectorAll('.jp-OutputArea-output img')).every(i => i.naturalWidth > 0)"
        )
        page.close()
