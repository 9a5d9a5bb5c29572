"""The ``charbench`` command: ``report``, ``sweep`` and ``demo``.

``charbench report LOG_DIR`` pools the logs under LOG_DIR into tables and figures;
``charbench sweep ...`` runs the bases x conditions x tasks grid through ``eval_set``;
``charbench demo`` runs the offline demonstration (see :mod:`charbench.demo`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table


def _table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, show_lines=False)
    for h in header:
        table.add_column(h, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


# --------------------------------------------------------------------------- report


def _add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
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
    console.print(_table("charbench report (macro-F1, 95% cluster-bootstrap CI)", header, rows))
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
            _table("ID minus OOD gap", ["base", "condition", "OOD task", "gap", "95% CI"], gap_rows)
        )
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(
        f"wrote {len(report.files)} tables and {len(report.figures)} figures to {report.out}"
    )
    return 0


# --------------------------------------------------------------------------- sweep


def _add_sweep(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sweep",
        help="run the bases x stages x tasks grid through inspect eval_set",
        description="Build the grid of (base, condition, task) evals and run it with Inspect's "
        "eval_set, one base at a time (each base loaded once for all its conditions and "
        "personas). Logs go to LOG_DIR/<base>; re-running the same command resumes an "
        "interrupted sweep and reuses finished logs. See docs/sweep.md.",
    )
    p.add_argument(
        "--bases",
        default="llama,qwen,gemma",
        help="comma-separated: llama, qwen, gemma, Hub ids or local paths "
        "(default llama,qwen,gemma)",
    )
    p.add_argument(
        "--stages",
        default="base,distillation,full",
        help="comma-separated released stages: base, distillation, full, "
        "introspection (default base,distillation,full; '' for none)",
    )
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="NAME=TEMPLATE",
        help="your own condition (repeatable): hf-lora adapter path/Hub id with "
        "{persona}, or with vllm the served adapter name with {persona}",
    )
    p.add_argument(
        "--tasks",
        default="chat,agentic,draft",
        help="comma-separated: chat, agentic, draft, chat-email (default chat,agentic,draft)",
    )
    p.add_argument(
        "--personas",
        default="default",
        help="comma-separated personas, 'default' (10) or 'all' (11); or a persona set file "
        "(YAML/JSON), alone or followed by personas of it (my_set.yaml,pirate,poet)",
    )
    p.add_argument("--n", type=int, default=300, help="chat prompts per persona (default 300)")
    p.add_argument(
        "--scenarios",
        default=None,
        help="agentic scenario ids or families, comma-separated (default all)",
    )
    p.add_argument(
        "--selection",
        default="heldout",
        choices=["heldout", "dct", "oct"],
        help="chat prompt selection (default heldout; dct reproduces the published one)",
    )
    p.add_argument("--prompts", default=None, help="chat prompts source (default Pure-Dove)")
    p.add_argument("--suffix", default="none", help="chat break-character suffix (default none)")
    p.add_argument(
        "--classifier",
        default=None,
        help="classifier Hub id/path or 'zeroshot' (default: each base's released one)",
    )
    p.add_argument(
        "--restrict-to-evaluated",
        action="store_true",
        help="argmax over the evaluated personas only",
    )
    p.add_argument("--log-dir", default="logs", help="root log directory (default logs/)")
    p.add_argument("--epochs", type=int, default=1, help="epochs per eval (default 1)")
    p.add_argument(
        "--model-provider",
        default="hf-lora",
        choices=["hf-lora", "vllm"],
        help="hf-lora (default; in-process) or vllm (a running vLLM server)",
    )
    p.add_argument(
        "--base-url",
        default=None,
        help="vLLM server URL, e.g. http://127.0.0.1:8000/v1 (or set VLLM_BASE_URL)",
    )
    p.add_argument(
        "--vllm-name-template",
        default="{stage}-{persona}",
        help="served adapter name of a released stage (default {stage}-{persona})",
    )
    p.add_argument(
        "-M",
        dest="model_arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra model arg for every model (repeatable), e.g. -M dtype=bfloat16",
    )
    p.add_argument(
        "--max-connections", type=int, default=None, help="concurrent generate calls per model"
    )
    p.add_argument("--temperature", type=float, default=None, help="override the tasks' 0.7")
    p.add_argument("--top-p", type=float, default=None, help="override the tasks' 0.95")
    p.add_argument("--max-tokens", type=int, default=None, help="override the tasks' 512")
    p.add_argument("--seed", type=int, default=None, help="generation seed")
    p.add_argument(
        "--retry-attempts",
        type=int,
        default=0,
        help="eval_set retries of failed evals within this run (default 0)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the evals and exit; loads nothing")
    p.set_defaults(func=_run_sweep)


def _model_args(items: Sequence[str]) -> dict[str, object]:
    import yaml

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"-M {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def sweep_config(args: argparse.Namespace) -> object:
    """The :class:`charbench.sweep.SweepConfig` of parsed ``sweep`` arguments."""
    from charbench import sweep
    from charbench.personas import builtin_set, resolve_personas

    generate = {
        k: v
        for k, v in {
            "max_connections": args.max_connections,
            "temperature": args.temperature,
            "top_p": args.top_p,
            "max_tokens": args.max_tokens,
            "seed": args.seed,
        }.items()
        if v is not None
    }
    persona_set, personas = resolve_personas(args.personas)
    return sweep.SweepConfig(
        bases=sweep.parse_bases(args.bases),
        stages=sweep.parse_stages(args.stages),
        adapters=sweep.parse_adapters(args.adapter),
        tasks=sweep.parse_tasks(args.tasks),
        personas=personas,
        persona_set=None if persona_set is builtin_set() else persona_set.source,
        n=args.n,
        scenarios=sweep._split(args.scenarios) if args.scenarios else None,
        provider=args.model_provider,
        base_url=args.base_url,
        vllm_name_template=args.vllm_name_template,
        classifier=args.classifier,
        restrict_to_evaluated=args.restrict_to_evaluated,
        selection=args.selection,
        prompts=args.prompts,
        suffix=args.suffix,
        log_dir=args.log_dir,
        epochs=args.epochs,
        model_args=_model_args(args.model_arg),
        generate=generate,
    )


def _argv_for_base(argv: Sequence[str], base: str) -> list[str]:
    """``argv`` with ``--bases`` replaced by one base (for the per-base child process)."""
    out: list[str] = []
    skip = False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == "--bases":
            skip = i + 1 < len(argv)
            continue
        if a.startswith("--bases="):
            continue
        out.append(a)
    return [*out, "--bases", base]


def _run_sweep(args: argparse.Namespace) -> int:
    from charbench import sweep

    console = Console()
    try:
        cfg = sweep_config(args)
        assert isinstance(cfg, sweep.SweepConfig)
        grid = sweep.build_grid(cfg)
    except ValueError as ex:
        console.print(f"[red]charbench sweep: {ex}[/red]", highlight=False)
        return 2
    header, rows = sweep.grid_rows(grid, cfg.epochs)
    console.print(_table(f"charbench sweep: {len(grid)} evals", header, rows))
    if args.dry_run:
        return 0
    groups = sweep.group_by_base(grid)
    if len(groups) > 1:
        # one process per base: its weights are freed before the next base loads
        failed = []
        for group in groups:
            base = group[0].base
            console.print(f"[bold]sweep: base {base} ({len(group)} evals)[/bold]")
            argv = _argv_for_base(args.argv, base)
            rc = subprocess.call(
                [sys.executable, "-m", "charbench.cli", "sweep", *argv], env=os.environ.copy()
            )
            if rc != 0:
                failed.append(base)
        if failed:
            console.print(
                f"[red]unfinished bases: {', '.join(failed)}; run the same command again to resume[/red]"
            )
            return 1
        return 0
    ok = sweep.run_base(groups[0], cfg, retry_attempts=args.retry_attempts)
    if not ok:
        console.print("[red]some evals did not finish; run the same command again to resume[/red]")
        return 1
    console.print(f"done; see the results with: charbench report {cfg.log_dir}")
    return 0


# --------------------------------------------------------------------------- demo


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="offline demonstration on a small real model (CPU, a few minutes)",
    )
    try:
        demo = importlib.import_module("charbench.demo")
    except ImportError:
        p.set_defaults(func=_demo_missing)
        return
    demo.add_arguments(p)
    p.set_defaults(func=demo.run)


def _demo_missing(args: argparse.Namespace) -> int:
    print(
        "charbench demo is not available in this installation (charbench.demo is missing)",
        file=sys.stderr,
    )
    return 2


# --------------------------------------------------------------------------- main


def build_parser(with_demo: bool = True) -> argparse.ArgumentParser:
    """The ``charbench`` argument parser.

    Args:
        with_demo: register the ``demo`` subcommand (imports :mod:`charbench.demo` for its
            flags; default True).
    """
    parser = argparse.ArgumentParser(
        prog="charbench",
        description="Does a persona trained in chat survive when the model works as an agent?",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{report,sweep,demo,train-classifier}"
    )
    _add_report(sub)
    _add_sweep(sub)
    from charbench.training import classifier_command

    classifier_command.add_parser(sub)
    if with_demo:
        _add_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``charbench`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # the demo's flags are only needed (and its module only imported) for `charbench demo`
    parser = build_parser(with_demo=bool(argv) and argv[0] in ("demo", "-h", "--help"))
    args = parser.parse_args(argv)
    args.argv = argv[1:]
    rc = args.func(args)
    return int(rc)


if __name__ == "__main__":
    sys.exit(main())
