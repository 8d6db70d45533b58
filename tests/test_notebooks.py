"""Notebook hygiene: stored without outputs, one `parameters` cell naming the profile file, not its values.

The notebooks themselves are executed by nbval (``pytest notebooks --nbval-lax``) and papermill.
"""

import ast
from pathlib import Path

import nbformat
import pytest

from ssdlib import profiles

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


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
def test_parameters_cell_names_the_profile_only(path):
    """The profile lives in its params file: the cell says which file, where to write, and what to change."""
    values = assignments(parameters_cell(nbformat.read(path, as_version=4)).source)
    assert values == {"params_file": "params/offline.yaml", "output_dir": None, "overrides": {}}, path.name


def test_every_profile_names_notebooks_that_exist():
    numbers = {p.name[:2] for p in NOTEBOOKS}
    for profile in sorted((ROOT / "params").glob("*.yaml")):
        listed = profiles.load(profile).notebooks
        assert listed and set(listed) <= numbers, f"{profile.name}: notebooks {listed} vs notebooks/ {sorted(numbers)}"
