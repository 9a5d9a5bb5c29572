"""``charbench report LOG_DIR``: pool the logs under LOG_DIR into tables and figures."""

from __future__ import annotations

import argparse

from charbench.cli._table import table


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report`` and its arguments."""
    p = sub.add_parser(
        "report",
        help="pool charbench logs into tables and figures",
        description="Read every Inspect log under LOG_DIR, pool them by (base, condition, "
        "task), recompute every statistic from the per-sample predictions, print a table and "
        "write summary.md, summary.csv, per_persona.csv, gaps.csv, confusion.csv and PNG "
        "figures.",
    )
    p.add_argument(
        "log_dir", metavar="LOG_DIR", help="directory of Inspect logs (searched recursively)"
    )
    p.add_argument("--out", default=None, help="output directory (default LOG_DIR/report)")
    p.add_argument(
        "--compare",
        choices=["published"],
        default=None,
        help="add the published reference numbers (REFERENCE section 7) side by side",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")


def run(args: argparse.Namespace) -> int:
    """Build the report; 2 on an input error (printed), else 0."""
    from rich.console import Console

    from charbench.report import PoolingError, build_report, summary_rows

    console = Console()
    try:
        report = build_report(
            args.log_dir, out=args.out, compare=args.compare, seed=args.seed, n_boot=args.n_boot
        )
    except (FileNotFoundError, PoolingError, ValueError) as ex:
        console.print(f"[red]charbench report: {ex}[/red]", highlight=False)
        return 2
    header, rows = summary_rows(report.summary)
    console.print(table("charbench report (macro-F1, 95% cluster-bootstrap CI)", header, rows))
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
        console.print(f"note: {note}", highlight=False)
    console.print(
        f"wrote {len(report.files)} tables and {len(report.figures)} figures to {report.out}"
    )
    return 0
