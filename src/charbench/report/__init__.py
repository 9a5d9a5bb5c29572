"""Pooling charbench logs into tables and figures (``charbench report``).

Public API: :func:`build_report` and :class:`Report`; the pieces live in
:mod:`charbench.report.load` (reading logs), :mod:`charbench.report.lineage` (retries
and replicates), :mod:`charbench.report.tables` (statistics), :mod:`charbench.report.figures`
(PNGs), :mod:`charbench.report.published` (REFERENCE section 7 as data) and
:mod:`charbench.report.command` (the subcommand's arguments). Names are imported on first
use, so registering the subcommand does not import pandas or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from charbench.report.build import Report, build_report, render_markdown, summary_rows
    from charbench.report.load import (
        LoadedLogs,
        LogReadError,
        PoolingError,
        load_log_dir,
        load_logs,
    )
    from charbench.report.published import PUBLISHED, PublishedCell, published_match

_WHERE = {
    "Report": "build",
    "build_report": "build",
    "render_markdown": "build",
    "summary_rows": "build",
    "LoadedLogs": "load",
    "LogReadError": "load",
    "PoolingError": "load",
    "load_log_dir": "load",
    "load_logs": "load",
    "PUBLISHED": "published",
    "PublishedCell": "published",
    "published_match": "published",
}

__all__ = [
    "PUBLISHED",
    "LoadedLogs",
    "LogReadError",
    "PoolingError",
    "PublishedCell",
    "Report",
    "build_report",
    "load_log_dir",
    "load_logs",
    "published_match",
    "render_markdown",
    "summary_rows",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'charbench.report' has no attribute {name!r}")
    return getattr(importlib.import_module(f"charbench.report.{_WHERE[name]}"), name)
