"""The md5 manifest of a tiny data root, and torchvision's integrity check pointed at it.

torchvision checks the CIFAR, SVHN and STL-10 files against the published archives' md5 sums, which
the tiny files of a smoke run (:mod:`ssdlib.data.tiny`) cannot match. The writer records the sums of
what it writes in ``root / CHECKSUMS_FILE`` (:func:`merge_manifest`); :func:`registered_checksums`
puts them in torchvision's lists while it is active, so that torchvision's own check runs on the tiny
files. :mod:`ssdlib.data.real` does so only when ``$SSDLIB_SMOKE_DATA`` names the root being read
(:func:`smoke_root_active`), so a real run keeps the published sums. Reader and writer both import
this module, neither the other.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHECKSUMS_FILE = "tiny-checksums.json"  # torchvision class name -> md5 list attribute -> value
SMOKE_DATA_ENV = "SSDLIB_SMOKE_DATA"  # the tiny root a smoke run reads (set by its runner)

Checksums = dict[str, dict]  # torchvision class name -> {md5 list attribute: value}


def torchvision_dataset(name: str):
    """A torchvision dataset class, imported on first use: importing torchvision takes seconds,
    and a run that reads no real set never needs it."""
    from torchvision import datasets  # local: importing torchvision takes seconds

    return getattr(datasets, name)


def read_manifest(root: Path) -> Checksums:
    path = root / CHECKSUMS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def merge_manifest(root: Path, checksums: Checksums) -> None:
    """Add ``checksums`` to the manifest of ``root`` (created if absent)."""
    if checksums:
        root.mkdir(parents=True, exist_ok=True)
        merged = {**read_manifest(root), **checksums}
        (root / CHECKSUMS_FILE).write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")


@contextmanager
def registered_checksums(root: str | Path) -> Iterator[None]:
    """While active, torchvision's md5 lists hold the sums of the tiny files under ``root`` (none if it
    has no manifest), so its integrity check accepts them; the published lists are restored after."""
    manifest = read_manifest(Path(root).expanduser())
    published = {
        (cls, attr): getattr(torchvision_dataset(cls), attr) for cls, lists in manifest.items() for attr in lists
    }
    try:
        for cls, attr in published:
            setattr(torchvision_dataset(cls), attr, manifest[cls][attr])
        yield
    finally:
        for (cls, attr), value in published.items():
            setattr(torchvision_dataset(cls), attr, value)


def smoke_root_active(root: str | Path) -> bool:
    """Whether ``root`` is the tiny data root that ``$SSDLIB_SMOKE_DATA`` declares for this run."""
    declared = os.environ.get(SMOKE_DATA_ENV)
    return bool(declared) and Path(declared).expanduser().resolve() == Path(root).expanduser().resolve()
