"""``charbench demo``: delegates to :mod:`charbench.demo` (its arguments and its run)."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``demo`` with the options of :func:`charbench.demo.add_arguments`."""
    p = sub.add_parser(
        "demo", help="offline demonstration on a small real model (CPU, a few minutes)"
    )
    demo = _demo()
    if demo is not None:
        demo.add_arguments(p)


def _demo() -> Any:
    try:
        return importlib.import_module("charbench.demo")
    except ImportError:
        return None


def run(args: argparse.Namespace) -> int:
    """Run the demo; 2 when :mod:`charbench.demo` is not installed."""
    demo = _demo()
    if demo is None:
        print(
            "charbench demo is not available in this installation (charbench.demo is missing)",
            file=sys.stderr,
        )
        return 2
    return int(demo.run(args))
