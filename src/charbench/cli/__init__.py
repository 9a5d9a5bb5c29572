"""The ``charbench`` command: one subcommand per module.

Each subcommand module exposes ``add_parser(subparsers)`` (adds its parser and its own
arguments) and ``run(args) -> int`` (the exit status) and keeps its top-level imports light:
heavy imports happen inside ``run``. :data:`COMMANDS` lists them; ``main`` imports only the
module of the command being run (all of them for ``charbench --help``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

COMMANDS: dict[str, str] = {
    "report": "charbench.report.command",
    "sweep": "charbench.cli.sweep",
    "demo": "charbench.cli.demo",
    "train-classifier": "charbench.training.classifier_command",
    "lab": "charbench.lab.command",
}
"""Subcommand name -> module with ``add_parser(subparsers)`` and ``run(args) -> int``."""


def _module(command: str) -> ModuleType:
    return importlib.import_module(COMMANDS[command])


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``charbench`` argument parser.

    Args:
        commands: the subcommands to register (default all of :data:`COMMANDS`); ``main``
            registers only the one being run, so only its module is imported.

    Raises:
        KeyError: an unknown command name.
    """
    parser = argparse.ArgumentParser(
        prog="charbench",
        description="Does a persona trained in chat survive when the model works as an agent?",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}"
    )
    for name in commands if commands is not None else COMMANDS:
        _module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``charbench`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    only = [argv[0]] if argv and argv[0] in COMMANDS else None
    args = build_parser(only).parse_args(argv)
    return int(_module(args.command).run(args))
