"""A rich table of strings, shared by the commands that print one (a leaf module)."""

from __future__ import annotations

from rich.table import Table


def table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    """A table titled ``title`` with columns ``header`` (long cells fold) and ``rows``."""
    out = Table(title=title, show_lines=False)
    for h in header:
        out.add_column(h, overflow="fold")
    for row in rows:
        out.add_row(*row)
    return out
