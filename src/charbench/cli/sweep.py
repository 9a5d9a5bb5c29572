"""``charbench sweep``: the bases x conditions x tasks grid (see :mod:`charbench.sweep`).

With several bases, each base runs in its own child process
(:func:`charbench.sweep_process.run_base_in_child`), which dies with this one; the whole
sweep holds its log directory (:class:`charbench.sweep_process.SweepLock`), so a second sweep
on it refuses to start and names the holder.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from charbench._table import table

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from charbench.sweep import SweepConfig, SweepEval
    from charbench.sweep_process import SweepLock

_Sub = argparse._SubParsersAction

REPRODUCE_FIXED = (
    "bases", "stages", "adapter", "tasks", "personas", "n", "scenarios", "selection",
    "prompts", "suffix", "classifier", "restrict_to_evaluated", "suite", "seed",
)
"""Options that ``--reproduce`` fixes to the published grid (giving one is an error)."""


def add_parser(sub: _Sub[argparse.ArgumentParser]) -> None:
    """Add ``sweep`` and its arguments."""
    p = sub.add_parser(
        "sweep",
        help="run the bases x stages x tasks grid through inspect eval_set",
        description="Build the grid of (base, condition, task) evals and run it with Inspect's "
        "eval_set, one base at a time (each base loaded once for all its conditions and "
        "personas). Logs go to LOG_DIR/<base>; re-running the same command resumes an "
        "interrupted sweep and reuses finished logs. See docs/sweep.md.",
    )
    _add_grid_arguments(p)
    _add_task_arguments(p)
    _add_model_arguments(p)
    _add_run_arguments(p)


def _add_grid_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reproduce",
        action="store_true",
        help="the published grid exactly: llama,qwen,gemma x base,distillation,full x "
        "chat,agentic,draft, --suite dct, --selection dct, --n 300, -M bos=vllm, seed 0, the "
        "released classifiers, the 10 default personas",
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


def _add_task_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=300, help="chat prompts per persona (default 300)")
    p.add_argument(
        "--scenarios",
        default=None,
        help="agentic scenario ids or families, comma-separated (default all)",
    )
    p.add_argument(
        "--suite",
        default=None,
        choices=["charbench", "dct", "both"],
        help="scenario suite of the agentic and draft evals (-T suite=): charbench, dct (the "
        "study's own scaffolds) or both (each); default: the task's default",
    )
    p.add_argument(
        "--selection",
        default="heldout",
        choices=["heldout", "dct", "oct"],
        help="chat prompt selection (default heldout; dct reproduces the published one)",
    )
    p.add_argument(
        "--prompts",
        default=None,
        help="chat prompts: a JSON/JSONL file, 'builtin', or default Pure-Dove",
    )
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


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
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


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-dir", default="logs", help="root log directory (default logs/)")
    p.add_argument("--epochs", type=int, default=1, help="epochs per eval (default 1)")
    p.add_argument(
        "--retry-attempts",
        type=int,
        default=0,
        help="eval_set retries of failed evals within this run (default 0)",
    )
    p.add_argument(
        "--log-dir-allow-dirty",
        action="store_true",
        help="let a log directory hold logs of other settings (after an argument change); "
        "passed to Inspect's eval_set",
    )
    p.add_argument("--dry-run", action="store_true", help="print the evals and exit; loads nothing")
    p.set_defaults(parser=p)


def _model_args(items: Sequence[str]) -> dict[str, object]:
    import yaml

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"-M {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _generate(args: argparse.Namespace) -> dict[str, Any]:
    options = {
        "max_connections": args.max_connections,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_tokens": args.max_tokens,
        "seed": args.seed,
    }
    return {k: v for k, v in options.items() if v is not None}


def _reproduce_config(args: argparse.Namespace) -> SweepConfig:
    from charbench import sweep

    parser: argparse.ArgumentParser = args.parser
    given = [
        "--" + name.replace("_", "-")
        for name in REPRODUCE_FIXED
        if getattr(args, name) != parser.get_default(name)
    ]
    if given:
        raise ValueError(
            f"--reproduce runs the published grid exactly; drop {', '.join(given)} (or run "
            "without --reproduce to choose the grid yourself)"
        )
    return sweep.reproduce_config(
        log_dir=args.log_dir,
        epochs=args.epochs,
        provider=args.model_provider,
        base_url=args.base_url,
        vllm_name_template=args.vllm_name_template,
        model_args=_model_args(args.model_arg),
        generate=_generate(args),
    )


def sweep_config(args: argparse.Namespace) -> SweepConfig:
    """The :class:`charbench.sweep.SweepConfig` of parsed ``sweep`` arguments.

    Raises:
        ValueError: a bad value (the message names the option).
    """
    from charbench import sweep
    from charbench.personas import builtin_set, resolve_personas

    if args.reproduce:
        return _reproduce_config(args)
    persona_set, personas = resolve_personas(args.personas)
    return sweep.SweepConfig(
        bases=sweep.parse_bases(args.bases),
        stages=sweep.parse_stages(args.stages),
        adapters=sweep.parse_adapters(args.adapter),
        tasks=sweep.parse_tasks(args.tasks),
        personas=personas,
        persona_set=None if persona_set is builtin_set() else persona_set.source,
        n=args.n,
        scenarios=sweep.parse_scenarios(args.scenarios),
        suite=sweep.parse_suite(args.suite),
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
        generate=_generate(args),
    )


def run(args: argparse.Namespace) -> int:
    """Print the grid; unless ``--dry-run``, run it. 0 done, 1 unfinished, 2 bad input."""
    from rich.console import Console

    from charbench import sweep

    console = Console()
    try:
        cfg = sweep_config(args)
        grid = sweep.build_grid(cfg)
    except ValueError as ex:
        console.print(f"[red]charbench sweep: {ex}[/red]", highlight=False)
        return 2
    header, rows = sweep.grid_rows(grid, cfg.epochs)
    console.print(table(f"charbench sweep: {len(grid)} evals", header, rows))
    if args.dry_run:
        return 0
    from charbench.sweep_process import SweepBusyError, SweepLock

    try:
        with SweepLock(cfg.log_dir) as lock:
            rc = _run_grid(console, cfg, grid, lock, args)
    except SweepBusyError as ex:
        console.print(f"[red]charbench sweep: {ex}[/red]", highlight=False)
        return 2
    if rc == 0:
        console.print(f"done; see the results with: charbench report {cfg.log_dir}")
    elif rc == 1:
        console.print("[red]some evals did not finish; run the same command again to resume[/red]")
    return rc


def _run_grid(
    console: Console,
    cfg: SweepConfig,
    grid: list[SweepEval],
    lock: SweepLock,
    args: argparse.Namespace,
) -> int:
    """Run the grid: in this process for one base, else one child process per base."""
    from charbench import sweep
    from charbench.sweep_process import run_base_checked, run_base_in_child

    groups = sweep.group_by_base(grid)
    options = {
        "retry_attempts": args.retry_attempts,
        "log_dir_allow_dirty": args.log_dir_allow_dirty,
    }
    if len(groups) == 1:
        return run_base_checked(groups[0], cfg, **options)
    # one process per base: its weights are freed before the next base loads
    failed: dict[str, int] = {}
    for group in groups:
        base = group[0].base
        console.print(f"[bold]sweep: base {base} ({len(group)} evals)[/bold]")
        rc = run_base_in_child(cfg, base, lock=lock, **options)
        if rc != 0:
            failed[base] = rc
    if failed:
        console.print(f"[red]unfinished bases: {', '.join(failed)}[/red]")
        return 2 if 2 in failed.values() else 1
    return 0
