"""The ``charbench report`` subcommand: its arguments (:func:`add_parser`) and :func:`run`."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from charbench._table import table


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Register ``report`` on the ``charbench`` subparsers; returns its parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="pool charbench logs into tables and figures",
        description="Read every Inspect log under LOG_DIR (symbolic links followed), pool "
        "them by (base, condition, task), recompute every statistic from the per-sample "
        "predictions with the in-log metrics' own functions, print a table and write "
        "summary.md, summary.csv, per_persona.csv, gaps.csv, confusion.csv and PNG figures. "
        "A retry (same Inspect task_id) replaces errored or missing samples of its run; "
        "independent runs of a cell are pooled as replicates.",
    )
    p.add_argument(
        "log_dir", metavar="LOG_DIR", help="directory of Inspect logs (searched recursively)"
    )
    p.add_argument(
        "--out", default=None, help="output directory (default LOG_DIR/report; not a file)"
    )
    p.add_argument(
        "--compare",
        choices=["published"],
        default=None,
        help="add the published reference numbers (REFERENCE section 7) for the cells built "
        "like the published ones; the others get a note saying why",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail on an unreadable log file instead of skipping it with a warning",
    )
    p.add_argument(
        "--pool-replicates",
        action="store_true",
        help="pool replicate runs of a cell even when their model, serving route, model args, "
        "generation config or task args differ (default: refuse, naming both logs)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``charbench report``; returns the exit status (2 with a one-line reason)."""
    from charbench.report import build_report, summary_rows

    console = Console()
    try:
        report = build_report(
            args.log_dir,
            out=args.out,
            compare=args.compare,
            seed=args.seed,
            n_boot=args.n_boot,
            strict=args.strict,
            pool_replicates=args.pool_replicates,
        )
    except (FileNotFoundError, ValueError) as ex:
        console.print(f"[red]charbench report: {ex}[/red]", highlight=False, soft_wrap=True)
        return 2
    for name in report.skipped:
        console.print(f"[yellow]warning: skipped {name}[/yellow]", highlight=False, soft_wrap=True)
    header, rows = summary_rows(report.summary)
    console.print(table("charbench report (macro-F1, 95% bootstrap CI)", header, rows))
    if not report.gaps.empty:
        gap_rows = [
            [
                str(g["base"]),
                str(g["condition"]),
                str(g["ood_task"]),
                f"{g['gap']:.3f}",
                f"[{g['gap_ci_low']:.3f}, {g['gap_ci_high']:.3f}]",
            ]
            for _, g in report.gaps.iterrows()
        ]
        console.print(
            table("ID minus OOD gap", ["base", "condition", "OOD task", "gap", "95% CI"], gap_rows)
        )
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    console.print(
        f"wrote {len(report.files)} tables and {len(report.figures)} figures to {report.out}"
    )
    return 0
