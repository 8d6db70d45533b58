"""Where the project's folders are, so that notebooks, the runner and plain papermill calls agree.

ssdlib is installed in development mode (``pip install -e .``, which ``./run`` does): the package
sits in the project, next to ``params/``, ``notebooks/`` and ``outputs/``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PARAMS_DIR = PROJECT_ROOT / "params"
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
OUTPUTS_DIR = PROJECT_ROOT / "outputs"
FIGURES_DIR = "figures"  # a run's figures: <output_dir>/figures/ (each notebook's in a folder of its own)


def project_path(path: str | Path, root: Path = PROJECT_ROOT) -> str:
    """``path`` relative to the project root when it lies inside it (so that recorded tables do not
    depend on where the project is checked out), else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def git_commit(root: Path = PROJECT_ROOT) -> str | None:
    """The checked-out commit, with '+dirty' when the tree has uncommitted changes; None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
