"""Notebook hygiene: stored without outputs, one `parameters` cell, values equal to offline.yaml.

The notebooks themselves are executed by nbval (``pytest notebooks --nbval-lax``) and papermill.
"""

import ast
from pathlib import Path

import nbformat
import pytest
import yaml

from ssdlib import params
from ssdlib.params import Params

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
OFFLINE = yaml.safe_load((ROOT / "params" / "offline.yaml").read_text())
RUNNER_INJECTED = {"output_dir", "params_file"}


def parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell must be tagged 'parameters' (papermill injects after it)"
    return cells[0]


def assignments(source: str) -> dict:
    values = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, "the parameters cell holds plain assignments"
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no numbered notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} keep outputs; clear them (executed copies go to outputs/)"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_agree_with_offline_profile(path):
    values = assignments(parameters_cell(nbformat.read(path, as_version=4)).source)
    assert RUNNER_INJECTED <= set(values), f"{path.name}: the parameters cell must define {sorted(RUNNER_INJECTED)}"
    unknown = set(values) - RUNNER_INJECTED - set(Params.model_fields)
    assert not unknown, f"{path.name}: parameters {sorted(unknown)} are not params keys"
    for name in set(values) - RUNNER_INJECTED:
        assert values[name] == OFFLINE[name], f"{path.name}: parameter '{name}' differs from params/offline.yaml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_validate_as_the_notebook_reads_them(path):
    """What ``params.from_notebook`` gets from the parameters cell is valid (sections left out take defaults)."""
    values = assignments(parameters_cell(nbformat.read(path, as_version=4)).source)
    assert params.from_notebook(**{k: v for k, v in values.items() if k not in RUNNER_INJECTED}).profile == "offline"
