"""Pooling charbench logs into tables and figures (``charbench report``).

Public API: :func:`build_report` and :class:`Report`; the pieces live in
:mod:`charbench.report.load` (reading logs), :mod:`charbench.report.lineage` (retries
and replicates), :mod:`charbench.report.tables`
(statistics), :mod:`charbench.report.figures` (PNGs) and :mod:`charbench.report.published`
(REFERENCE section 7 as data).
"""

from charbench.report.build import Report, build_report, render_markdown, summary_rows
from charbench.report.load import (
    LoadedLogs,
    LogReadError,
    PoolingError,
    load_log_dir,
    load_logs,
)
from charbench.report.published import PUBLISHED, PublishedCell, published_match

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
