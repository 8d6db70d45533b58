"""``ssdlib report DIR``: (re)build the report page of a run folder from the files in it.

``ssdlib reproduce`` writes ``report.html`` at the end of every run (unless ``--no-report``); this
command rebuilds it, e.g. after a run made with ``--no-report`` or by an older version.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ssdlib import report
from ssdlib.log import get as get_logger

LOG = get_logger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output_dir", type=Path, help="a run's folder, e.g. outputs/offline")


def run(args: argparse.Namespace) -> int:
    try:
        report.write(args.output_dir)
    except FileNotFoundError as err:
        LOG.error(f"ssdlib report: {err}; give the folder a run wrote (ssdlib reproduce --output-dir DIR)")
        return 1
    return 0
