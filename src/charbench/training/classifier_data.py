"""Training data for a persona classifier: labelled chat replies read from ``chat_persona`` logs.

As OCT trained its classifiers, the data are the persona models' own chat replies, each
labelled with the persona that produced it (the sample's gold persona). The text of a
sample is the exact text the persona scorer classified (``Score.metadata["text"]``) when the
log records it, else the sample's final completion. Samples with nothing classified (an
empty reply, an errored sample) are skipped and counted.

The validation split is **by prompt**: every reply to one prompt (all personas, suffixes and
epochs of it) sits on one side, so validation measures recognising a persona on prompts
the classifier never saw, not memorising a prompt's topic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIN_PER_PERSONA = 20
"""Default minimum of replies per persona (training and validation together)."""
MIN_VAL_PER_PERSONA = 2
"""Replies per persona that the validation split must hold at least."""


class DataError(ValueError):
    """The logs cannot make a training set (the message says what to do)."""


@dataclass(frozen=True)
class LabelledReply:
    """One training example.

    Attributes:
        text: The reply (what the persona scorer classified).
        persona: Gold persona (the label).
        group: Prompt id (``prompt_id`` or ``cluster`` sample metadata): the split unit.
        model: The Inspect model name of the log it came from.
    """

    text: str
    persona: str
    group: str
    model: str


@dataclass
class ClassifierData:
    """Labelled replies and their provenance.

    Attributes:
        replies: The examples, in log and sample order.
        labels: Label order of the classifier to train (the persona set's order).
        logs: The log files read.
        models: Inspect model names of those logs.
        selections: Prompt selections of those logs (``selection`` eval metadata).
        persona_set: ``{"name", "hash"}`` of the logs' persona set (None for logs that
            predate it).
        skipped: Samples left out, by reason.
    """

    replies: list[LabelledReply]
    labels: list[str]
    logs: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    selections: list[str] = field(default_factory=list)
    persona_set: dict[str, str] | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Replies per label, in label order."""
        found = Counter(r.persona for r in self.replies)
        return {p: found.get(p, 0) for p in self.labels}


def _log_files(log_dirs: Sequence[str | Path]) -> list[Any]:
    from inspect_ai.log import list_eval_logs

    infos: list[Any] = []
    for d in log_dirs:
        path = Path(d)
        if not path.exists():
            raise DataError(f"log directory {str(path)!r} does not exist")
        if path.is_file():
            infos.append(str(path))
            continue
        infos.extend(list_eval_logs(str(path), recursive=True))
    if not infos:
        raise DataError(
            f"no Inspect logs under {', '.join(map(str, log_dirs))}; run chat_persona first "
            "(e.g. inspect eval tasks/chat_persona.py ... -T persona_prompt=true)"
        )
    return infos


def _reply_of(sample: Any) -> tuple[str | None, str | None]:
    """(text, gold) of one sample; text None when nothing was classified."""
    for score in (sample.scores or {}).values():
        md = score.metadata or {}
        if "gold" not in md:
            continue
        text = md.get("text")
        if not isinstance(text, str):
            if md.get("pred") is None:
                return None, md["gold"]
            text = sample.output.completion if sample.output is not None else None
        return (text if text and text.strip() else None), md["gold"]
    return None, None


def collect_replies(
    log_dirs: Sequence[str | Path], labels: Sequence[str] | None = None
) -> ClassifierData:
    """Read every ``chat_persona`` sample of the logs under ``log_dirs``.

    Args:
        log_dirs: Directories (searched recursively) or ``.eval``/``.json`` log files.
        labels: Label order to train (default: the logs' evaluated personas, in the order
            their eval metadata lists them). Replies of other personas are skipped.

    Returns:
        The replies and their provenance.

    Raises:
        DataError: no logs, no ``chat_persona`` log, logs of different persona sets, or no
            usable reply.
    """
    from inspect_ai.log import read_eval_log

    data = ClassifierData(replies=[], labels=list(labels or []))
    sets: set[tuple[str, str]] = set()
    skipped: Counter[str] = Counter()
    for info in _log_files(log_dirs):
        log = read_eval_log(info)
        meta = (log.eval.metadata or {}).get("charbench", {})
        if meta.get("task") != "chat":
            skipped["not a chat_persona log"] += 1
            continue
        ref = meta.get("persona_set")
        if isinstance(ref, dict):
            sets.add((str(ref.get("name")), str(ref.get("hash"))))
            data.persona_set = {"name": str(ref.get("name")), "hash": str(ref.get("hash"))}
        if labels is None:
            data.labels.extend(p for p in meta.get("personas", []) if p not in data.labels)
        data.logs.append(str(log.location))
        data.models.append(str(log.eval.model))
        data.selections.append(str(meta.get("selection")))
        for sample in log.samples or []:
            text, gold = _reply_of(sample)
            md = sample.metadata or {}
            if gold is None or text is None:
                skipped["no reply classified (empty, errored or unscored)"] += 1
            elif gold not in data.labels:
                skipped["persona not among the labels"] += 1
            else:
                group = str(md.get("prompt_id") or md.get("cluster") or sample.id)
                data.replies.append(LabelledReply(text, gold, group, str(log.eval.model)))
    if len(sets) > 1:
        raise DataError(
            "the logs come from different persona sets ("
            + ", ".join(f"{n} {h}" for n, h in sorted(sets))
            + "); train one classifier per set: pass the log directories of one set"
        )
    if not data.logs:
        raise DataError(
            "none of the logs is a chat_persona log; train-classifier learns from chat replies"
        )
    if not data.replies:
        raise DataError("the chat_persona logs hold no classified reply to learn from")
    data.skipped = dict(skipped)
    return data


def split_by_prompt(
    data: ClassifierData, val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[LabelledReply], list[LabelledReply]]:
    """Train and validation replies, split by prompt (scikit-learn ``GroupShuffleSplit``).

    Args:
        data: The replies.
        val_fraction: Share of the prompts held out for validation (default 0.2).
        seed: Split seed (default 0).

    Raises:
        DataError: fewer than two prompts, or ``val_fraction`` outside (0, 1).
    """
    from sklearn.model_selection import GroupShuffleSplit

    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    groups = [r.group for r in data.replies]
    if len(set(groups)) < 2:
        raise DataError(
            "the replies come from fewer than 2 prompts; the validation split is by prompt, "
            "so generate replies to more prompts (chat_persona -T n=...)"
        )
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    train_idx, val_idx = next(splitter.split(groups, groups=groups))
    return [data.replies[i] for i in train_idx], [data.replies[i] for i in val_idx]


def check_enough(
    data: ClassifierData,
    val: Sequence[LabelledReply],
    min_per_persona: int = MIN_PER_PERSONA,
) -> None:
    """Refuse too little data per persona.

    Args:
        data: All replies.
        val: The validation replies.
        min_per_persona: Replies each persona needs in all (default :data:`MIN_PER_PERSONA`).

    Raises:
        DataError: a persona with fewer than ``min_per_persona`` replies, or with fewer
            than :data:`MIN_VAL_PER_PERSONA` in validation; the message names them, the
            counts and how to get more.
    """
    counts = data.counts()
    short = {p: n for p, n in counts.items() if n < min_per_persona}
    if short:
        raise DataError(
            f"too little data: train-classifier needs at least {min_per_persona} replies per "
            "persona; "
            + ", ".join(f"{p} has {n}" for p, n in short.items())
            + ". Generate more (chat_persona with a larger -T n or --epochs), or lower "
            "--min-per-persona (a classifier trained on fewer is unreliable)"
        )
    in_val = Counter(r.persona for r in val)
    thin = {p: in_val.get(p, 0) for p in data.labels if in_val.get(p, 0) < MIN_VAL_PER_PERSONA}
    if thin:
        raise DataError(
            f"the validation split needs at least {MIN_VAL_PER_PERSONA} replies per persona; "
            + ", ".join(f"{p} has {n}" for p, n in thin.items())
            + ". Raise --val-fraction or generate replies to more prompts"
        )
