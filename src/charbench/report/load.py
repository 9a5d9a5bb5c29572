"""Reading Inspect logs into one pooled per-sample table.

Every charbench task writes ``Task(metadata={"charbench": {...}})`` (docs/architecture.md,
"Eval metadata") and a ``persona_scorer`` score per sample whose metadata carries ``gold``,
``pred``, ``labels``, ``cluster`` and ``outcome``. This module reads those per-sample
fields (never a stored aggregate), groups logs into cells ``(base, condition, task)``, and
pools the samples of all logs of a cell.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from inspect_ai.log import EvalLog, EvalSample, list_eval_logs, read_eval_log

CELL_KEYS: tuple[str, ...] = ("base", "condition", "task")
"""The columns that define a report cell."""

POOL_KEYS: tuple[str, ...] = (
    "classifier",
    "restrict",
    "personas",
    "suffix",
    "selection",
    "persona_prompt",
)
"""Eval-metadata keys that must agree between all logs pooled into one cell."""

AGENTIC_TASKS: frozenset[str] = frozenset(
    {"agentic", "agentic-any", "agentic-forced", "draft", "chat-email"}
)
"""Eval-metadata task names of the agentic_email task's scaffolds (email outcomes)."""

_EXCLUDE_FIELDS = {"messages", "events", "timelines", "attachments", "output", "store"}

SAMPLE_COLUMNS: tuple[str, ...] = (
    *CELL_KEYS,
    *POOL_KEYS,
    "log",
    "log_created",
    "log_status",
    "sample_id",
    "epoch",
    "gold",
    "pred",
    "labels",
    "cluster",
    "outcome",
    "error",
    "completed_at",
)


class PoolingError(ValueError):
    """Logs that cannot be pooled into one cell (or a log that breaks the contract)."""


@dataclass
class LoadedLogs:
    """The pooled samples of a log directory.

    Attributes:
        samples: one row per (cell, sample id, epoch) after de-duplication, with the
            columns of :data:`SAMPLE_COLUMNS`. ``pred`` is None when nothing was classified
            (empty reply, no email); ``error`` is the error message of a sample that errored
            (such rows have no ``pred`` and are excluded from the statistics but counted).
        logs: one row per charbench log read: path, cell, status, created, number of
            samples, number of errored samples.
        notes: human-readable notes (skipped non-charbench logs, duplicates dropped, ...).
        duplicates: number of (sample id, epoch) rows dropped because a newer log of the
            same cell held the same sample.
    """

    samples: pd.DataFrame
    logs: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    duplicates: int = 0


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(s.strip() for s in value.split(",") if s.strip())
    return tuple(str(v) for v in value)


def _eval_meta(log: EvalLog, path: str) -> dict[str, Any] | None:
    meta = (log.eval.metadata or {}).get("charbench")
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise PoolingError(f"{path}: eval metadata 'charbench' is not a mapping: {meta!r}")
    missing = [k for k in ("task", "base", "condition", "personas") if k not in meta]
    if missing:
        raise PoolingError(
            f"{path}: eval metadata 'charbench' lacks {', '.join(missing)}; it was not "
            "written by a charbench task that follows docs/architecture.md (re-run the eval "
            "with the current charbench)"
        )
    return meta


def _persona_score(sample: EvalSample) -> dict[str, Any] | None:
    """The metadata of the sample's persona score, or None if it has none."""
    if not sample.scores:
        return None
    scores = dict(sample.scores)
    ordered = [scores.pop("persona_scorer")] if "persona_scorer" in scores else []
    ordered.extend(scores.values())
    for score in ordered:
        meta = score.metadata or {}
        if "gold" in meta and "pred" in meta:
            return dict(meta)
    return None


def _model_base(model: str, model_args: dict[str, Any]) -> str:
    """The base model named by a logged model (``hf-lora/<base>``, ``vllm/<base>:<adapter>``)."""
    provider, _, name = model.partition("/")
    if provider == "vllm" and ":" in name:
        return name.split(":", 1)[0]
    if provider in ("hf-lora", "hf", "vllm") and name:
        return name
    return model


def fill_cell_metadata(
    meta: dict[str, Any], model: str, model_args: dict[str, Any], path: str, notes: list[str]
) -> dict[str, Any]:
    """Fill a missing ``base``/``condition`` (a task built outside an eval) from the log's model.

    Inspect's CLI builds tasks with the model active, so the task can record its base and
    condition; a task object built in Python before ``eval()`` cannot, and records None.
    The report then labels the cell by the logged model (and says so in the notes).
    """
    meta = dict(meta)
    if meta.get("base") in (None, ""):
        meta["base"] = _model_base(model, model_args)
        notes.append(f"{path}: eval metadata has no base; using {meta['base']!r} from the model")
    if meta.get("condition") in (None, ""):
        stage = model_args.get("stage")
        meta["condition"] = str(stage) if stage else model
        notes.append(
            f"{path}: eval metadata has no condition; using {meta['condition']!r} "
            "(pass -T condition=NAME to label it)"
        )
    return meta


def _rows_for_log(path: str, log: EvalLog, meta: dict[str, Any]) -> list[dict[str, Any]]:
    cell = {
        "base": str(meta["base"]),
        "condition": str(meta["condition"]),
        "task": str(meta["task"]),
        "classifier": str(meta.get("classifier")),
        "restrict": bool(meta.get("restrict", False)),
        "personas": _as_tuple(meta["personas"]),
        "suffix": None if meta.get("suffix") is None else str(meta.get("suffix")),
        "selection": None if meta.get("selection") is None else str(meta.get("selection")),
        "persona_prompt": bool(meta.get("persona_prompt", False)),
        "log": path,
        "log_created": pd.Timestamp(log.eval.created),
        "log_status": log.status,
    }
    rows: list[dict[str, Any]] = []
    for sample in log.samples or []:
        score = _persona_score(sample)
        smeta = sample.metadata or {}
        error = None
        if sample.error is not None:
            error = sample.error.message or "error"
        elif score is None:
            error = "sample has no persona score (cancelled or scored by another scorer)"
        gold = (score or {}).get("gold", smeta.get("persona"))
        pred = (score or {}).get("pred")
        labels = _as_tuple((score or {}).get("labels", smeta.get("personas", cell["personas"])))
        cluster = (score or {}).get("cluster", smeta.get("cluster", str(sample.id)))
        rows.append(
            {
                **cell,
                "sample_id": str(sample.id),
                "epoch": int(sample.epoch),
                "gold": None if gold is None else str(gold),
                "pred": None if pred in (None, "") else str(pred),
                "labels": labels,
                "cluster": str(cluster),
                "outcome": (score or {}).get("outcome"),
                "error": error,
                "completed_at": pd.Timestamp(sample.completed_at)
                if sample.completed_at
                else pd.NaT,
            }
        )
    return rows


def _check_pooling(samples: pd.DataFrame) -> None:
    """Raise :class:`PoolingError` for cells whose logs disagree on a pooling key."""
    problems: list[str] = []
    for cell, group in samples.groupby(list(CELL_KEYS), sort=True, dropna=False):
        per_log = group.drop_duplicates("log")
        for key in POOL_KEYS:
            values = per_log[key].map(repr).unique()
            if len(values) > 1:
                listing = "; ".join(
                    f"{row['log']} has {key}={row[key]!r}" for _, row in per_log.iterrows()
                )
                problems.append(
                    f"cell base={cell[0]!r} condition={cell[1]!r} task={cell[2]!r} mixes "
                    f"{key} values: {listing}"
                )
        scored = group[group["error"].isna()]
        bad = scored[scored["labels"] != scored["personas"]]
        if len(bad):
            problems.append(
                f"cell base={cell[0]!r} condition={cell[1]!r} task={cell[2]!r}: "
                f"{len(bad)} sample(s) were scored over labels {bad['labels'].iloc[0]!r} "
                f"but the eval evaluated personas {bad['personas'].iloc[0]!r} "
                f"(logs: {', '.join(sorted(bad['log'].unique()))})"
            )
    if problems:
        raise PoolingError(
            "refusing to pool logs that are not comparable:\n  - "
            + "\n  - ".join(problems)
            + "\nMove the logs of different settings into different directories, or give "
            "them distinct conditions with -T condition=NAME."
        )


def _dedupe(samples: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Keep one row per (cell, sample id, epoch): the newest completed one."""
    if samples.empty:
        return samples, 0
    ordered = samples.assign(_done=samples["error"].isna()).sort_values(
        ["_done", "log_created", "completed_at", "log"],
        ascending=[False, False, False, True],
        na_position="last",
        kind="mergesort",
    )
    keys = [*CELL_KEYS, "sample_id", "epoch"]
    kept = ordered.drop_duplicates(keys, keep="first").drop(columns="_done")
    dropped = len(samples) - len(kept)
    kept = kept.sort_values([*CELL_KEYS, "sample_id", "epoch"], kind="mergesort")
    return kept.reset_index(drop=True), dropped


def log_paths(log_dir: str | Path) -> list[str]:
    """The Inspect log files under ``log_dir`` (recursive), oldest first.

    Raises:
        FileNotFoundError: ``log_dir`` does not exist.
    """
    if not Path(log_dir).exists():
        raise FileNotFoundError(f"log directory {str(log_dir)!r} does not exist")
    infos = list_eval_logs(str(log_dir), recursive=True, descending=False)
    return [info.name for info in infos]


def load_logs(paths: Iterable[str | Path]) -> LoadedLogs:
    """Read charbench logs and pool their samples by cell.

    Logs without ``charbench`` eval metadata are skipped with a note. Samples that errored
    are kept as rows with ``error`` set (counted by the report, excluded from statistics).
    The same (sample id, epoch) appearing in several logs of one cell (a retried run) is
    kept once: the completed copy from the newest log.

    Args:
        paths: log files (``.eval`` or ``.json``).

    Returns:
        The pooled samples, the list of logs read, and notes.

    Raises:
        PoolingError: a cell mixes classifiers, restrict flags, label sets, suffixes,
            prompt selections or prompted/unprompted runs (the message names the logs), or a
            log's charbench metadata is incomplete.
    """
    rows: list[dict[str, Any]] = []
    log_rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for p in paths:
        path = str(p)
        header = read_eval_log(path, header_only=True)
        meta = _eval_meta(header, path)
        if meta is None:
            notes.append(f"skipped {path}: not a charbench log (no 'charbench' eval metadata)")
            continue
        meta = fill_cell_metadata(
            meta, header.eval.model, dict(header.eval.model_args or {}), path, notes
        )
        log = read_eval_log(path, exclude_fields=_EXCLUDE_FIELDS)
        these = _rows_for_log(path, log, meta)
        rows.extend(these)
        log_rows.append(
            {
                "log": path,
                "base": str(meta["base"]),
                "condition": str(meta["condition"]),
                "task": str(meta["task"]),
                "status": log.status,
                "created": pd.Timestamp(log.eval.created),
                "samples": len(these),
                "errors": sum(r["error"] is not None for r in these),
            }
        )
        if log.status != "success":
            notes.append(
                f"{path} has status {log.status!r}: its {len(these)} sample(s) are used, "
                "errored ones counted as errors"
            )
    samples = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    if samples.empty:
        return LoadedLogs(samples, pd.DataFrame(log_rows), notes, 0)
    _check_pooling(samples)
    samples, dropped = _dedupe(samples)
    if dropped:
        notes.append(
            f"de-duplicated {dropped} sample(s) that appeared in more than one log of the same "
            "cell (same sample id and epoch; kept the completed copy from the newest log)"
        )
    return LoadedLogs(samples, pd.DataFrame(log_rows), notes, dropped)


def load_log_dir(log_dir: str | Path) -> LoadedLogs:
    """:func:`load_logs` on every log under ``log_dir``.

    Raises:
        FileNotFoundError: the directory does not exist or holds no Inspect logs.
        PoolingError: see :func:`load_logs`.
    """
    paths = log_paths(log_dir)
    if not paths:
        raise FileNotFoundError(
            f"no Inspect logs (.eval/.json) under {str(log_dir)!r}; run an eval there first "
            "(e.g. `inspect eval tasks/chat_persona.py --log-dir ...` or `charbench sweep`)"
        )
    return load_logs(paths)
