"""The ``ssdlib`` command: one dispatcher, one module per sub-command.

Each sub-command module exposes ``configure(parser)`` and ``run(args) -> int``; they are
imported only when used, so ``ssdlib --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ssdlib.log import to_console

COMMANDS = {
    "reproduce": ("ssdlib.cli.reproduce", "run the numbered notebooks headless with a params profile"),
    "train": ("ssdlib.cli.train", "train an encoder (SimCLR, SupCon, SupCE), SSD vocabulary"),
    "eval": ("ssdlib.cli.evaluate", "evaluate SSD / SSD+ / SSD_k on a checkpoint, SSD vocabulary"),
    "bench": ("ssdlib.bench", "time training and scoring on this device, beside SSD's own pipeline"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="ssdlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in COMMANDS:
        parser.print_help()
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    name = argv[0]
    to_console()
    module = importlib.import_module(COMMANDS[name][0])
    cmd_parser = argparse.ArgumentParser(prog=f"ssdlib {name}", description=COMMANDS[name][1])
    module.configure(cmd_parser)
    return int(module.run(cmd_parser.parse_args(argv[1:])) or 0)
