"""Reading Inspect logs into one pooled per-sample table.

Every charbench task writes ``Task(metadata={"charbench": {...}})``
(:class:`charbench.contracts.EvalMeta`) and a ``persona_scorer`` score per sample
(:class:`charbench.contracts.ScoreFields`). This module finds the logs (following symbolic
links to log folders), reads those fields (never a stored aggregate), skips unreadable files
with a note (or fails with ``strict``), and hands the logs to
:mod:`charbench.report.lineage`, which tells retries from replicates and pools each cell
``(base, condition, task)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from inspect_ai.log import EvalLog, EvalSample, list_eval_logs, read_eval_log
from pydantic import ValidationError

from charbench.contracts import REQUIRED_EVAL_KEYS, RESAMPLES, EvalMeta, ScoreFields
from charbench.report.lineage import (
    CELL_KEYS,
    POOL_KEYS,
    LogRecord,
    PoolingError,
    measurement,
    persona_set_label,
    pool_cells,
    record_cell,
)

__all__ = [
    "CELL_KEYS",
    "POOL_KEYS",
    "SAMPLE_COLUMNS",
    "LoadedLogs",
    "LogReadError",
    "PoolingError",
    "load_log_dir",
    "load_logs",
    "log_paths",
]

_EXCLUDE_FIELDS = {"messages", "events", "timelines", "attachments", "output", "store"}

SAMPLE_COLUMNS: tuple[str, ...] = (
    *CELL_KEYS,
    "eval_task",
    *POOL_KEYS,
    "log",
    "log_created",
    "log_status",
    "run",
    "replicate",
    "resample",
    "sample_id",
    "epoch",
    "gold",
    "pred",
    "labels",
    "cluster",
    "family",
    "outcome",
    "error",
    "completed_at",
    "fields",
)
"""Columns of :attr:`LoadedLogs.samples`. ``fields`` holds each scored row's
:class:`~charbench.contracts.ScoreFields` (None for an errored sample); ``run`` is Inspect's
``task_id`` (shared by a run and its retries); ``replicate`` numbers the independent runs of
a cell from 0; ``task`` is the cell's label
(:func:`~charbench.report.lineage.cell_task_label`), ``eval_task`` the eval's own."""


class LogReadError(ValueError):
    """A log file that cannot be read (raised only with ``strict``)."""


@dataclass
class LoadedLogs:
    """The pooled samples of a log directory.

    Attributes:
        samples: one row per (cell, replicate, sample id, epoch) with the columns of
            :data:`SAMPLE_COLUMNS`; errored samples are rows with ``error`` set (counted,
            excluded from the statistics).
        logs: one row per charbench log read: path, cell, run, replicate, status, created,
            samples, errors.
        notes: what the reader must know (skipped files, retries merged, replicates
            pooled, ...).
        duplicates: rows dropped because a retry of the same run held the sample.
        skipped: files that could not be read (path and reason).
    """

    samples: pd.DataFrame
    logs: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    duplicates: int = 0
    skipped: list[str] = field(default_factory=list)


def _eval_meta(log: EvalLog, path: str) -> EvalMeta | None:
    meta = (log.eval.metadata or {}).get("charbench")
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise PoolingError(f"{path}: eval metadata 'charbench' is not a mapping: {meta!r}")
    missing = [k for k in REQUIRED_EVAL_KEYS if k not in meta]
    if missing:
        raise PoolingError(
            f"{path}: eval metadata 'charbench' lacks {', '.join(missing)}; it was not "
            "written by a charbench task that follows docs/architecture.md (re-run the eval "
            "with the current charbench)"
        )
    try:
        return EvalMeta.model_validate(meta)
    except ValidationError as ex:
        raise PoolingError(f"{path}: eval metadata 'charbench' is invalid: {ex}") from ex


def _model_base(model: str) -> str:
    """The base model named by a logged model (``hf-lora/<base>``, ``vllm/<base>:<adapter>``)."""
    provider, _, name = model.partition("/")
    if provider == "vllm" and ":" in name:
        return name.split(":", 1)[0]
    if provider in ("hf-lora", "hf", "vllm") and name:
        return name
    return model


def fill_cell_metadata(
    meta: EvalMeta, model: str, model_args: dict[str, Any], path: str, notes: list[str]
) -> EvalMeta:
    """Fill a missing ``base``/``condition`` (a task built outside an eval) from the log's model.

    Inspect's CLI builds tasks with the model active, so the task can record its base and
    condition; a task object built in Python before ``eval()`` cannot, and records None.
    The report then labels the cell by the logged model (and says so in the notes).
    """
    update: dict[str, str] = {}
    if meta.base in (None, ""):
        update["base"] = _model_base(model)
        notes.append(f"{path}: eval metadata has no base; using {update['base']!r} from the model")
    if meta.condition in (None, ""):
        stage = model_args.get("stage")
        update["condition"] = str(stage) if stage else model
        notes.append(
            f"{path}: eval metadata has no condition; using {update['condition']!r} "
            "(pass -T condition=NAME to label it)"
        )
    return meta.model_copy(update=update) if update else meta


def _log_resample(log: EvalLog, meta: EvalMeta) -> str:
    """The bootstrap unit the log's metric used: metadata, task args, metric params, cluster."""
    candidates: list[Any] = [meta.resample, log.eval.task_args.get("resample")]
    for score in log.results.scores if log.results else []:
        candidates.extend(m.params.get("resample") for m in score.metrics.values())
    for value in candidates:
        if value in RESAMPLES:
            return str(value)
    return "cluster"


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


def _sample_row(sample: EvalSample, meta: EvalMeta) -> dict[str, Any]:
    """One sample's row: its score fields, or (errored) what the sample metadata says."""
    score = _persona_score(sample)
    smeta = dict(sample.metadata or {})
    sid = str(sample.id)
    error = None
    if sample.error is not None:
        error = sample.error.message or "error"
    elif score is None:
        error = "sample has no persona score (cancelled or scored by another scorer)"
    f = None
    if error is None:
        f = ScoreFields.read(score, smeta, sid).model_copy(update={"epoch": int(sample.epoch)})
    family = f.family if f else smeta.get("family")
    return {
        "sample_id": sid,
        "epoch": int(sample.epoch),
        "gold": f.gold if f else smeta.get("persona"),
        "pred": f.pred if f else None,
        "labels": f.labels if f else meta.personas,
        "cluster": f.cluster if f else str(smeta.get("cluster") or f"sample:{sid}"),
        "family": None if family is None else str(family),
        "outcome": (f.outcome or None) if f else None,
        "error": error,
        "completed_at": pd.Timestamp(sample.completed_at) if sample.completed_at else pd.NaT,
        "fields": f,
    }


def _cell_columns(record: LogRecord, resample: str) -> dict[str, Any]:
    meta = record.meta
    return {
        **dict(zip(CELL_KEYS, record_cell(record), strict=True)),
        "eval_task": meta.task,
        "classifier": str(meta.classifier),
        "restrict": meta.restrict,
        "personas": meta.personas,
        "suffix": meta.suffix,
        "selection": meta.selection,
        "persona_prompt": meta.persona_prompt,
        "suite": meta.suite,
        "persona_set": persona_set_label(meta),
        "text_tool_calls": meta.text_tool_calls,
        "log": record.path,
        "log_created": pd.Timestamp(record.created),
        "log_status": record.status,
        "run": record.run,
        "replicate": 0,
        "resample": resample,
    }


def log_paths(log_dir: str | Path) -> list[str]:
    """The Inspect log files under ``log_dir``, following symbolic links to folders.

    Each real file is listed once (a log reached through two links counts once), oldest
    first within each folder.

    Raises:
        FileNotFoundError: ``log_dir`` does not exist.
    """
    if not Path(log_dir).exists():
        raise FileNotFoundError(f"log directory {str(log_dir)!r} does not exist")
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()
    out: list[str] = []
    for root, dirs, _ in os.walk(str(log_dir), followlinks=True):
        real = os.path.realpath(root)
        if real in seen_dirs:
            dirs[:] = []  # a link cycle or a second link to the same folder
            continue
        seen_dirs.add(real)
        dirs.sort()
        for info in list_eval_logs(root, recursive=False, descending=False):
            name = info.name.removeprefix("file://")
            key = os.path.realpath(name)
            if key not in seen_files:
                seen_files.add(key)
                out.append(name)
    return out


def _read_header(path: str) -> EvalLog:
    try:
        return read_eval_log(path, header_only=True)
    except Exception as ex:  # a truncated, empty or foreign file: any reader error
        raise LogReadError(
            f"{path}: not a readable Inspect log ({type(ex).__name__}: {ex})"
        ) from ex


def _read_one(path: str, notes: list[str]) -> tuple[LogRecord, list[dict[str, Any]]] | None:
    header = _read_header(path)
    meta = _eval_meta(header, path)
    if meta is None:
        notes.append(f"skipped {path}: not a charbench log (no 'charbench' eval metadata)")
        return None
    meta = fill_cell_metadata(meta, header.eval.model, dict(header.eval.model_args), path, notes)
    try:
        log = read_eval_log(path, exclude_fields=_EXCLUDE_FIELDS)
    except Exception as ex:
        raise LogReadError(
            f"{path}: its samples cannot be read ({type(ex).__name__}: {ex})"
        ) from ex
    record = LogRecord(
        path=path,
        meta=meta,
        run=header.eval.task_id or f"log:{path}",
        created=header.eval.created,
        status=log.status,
        measurement=measurement(header.eval),
        seed=header.eval.model_generate_config.seed,
    )
    cell = _cell_columns(record, _log_resample(log, meta))
    return record, [{**cell, **_sample_row(s, meta)} for s in log.samples or []]


def load_logs(
    paths: Iterable[str | Path], *, strict: bool = False, pool_replicates: bool = False
) -> LoadedLogs:
    """Read charbench logs and pool their samples by cell.

    Logs without ``charbench`` eval metadata are skipped with a note; a file that cannot be
    read (truncated, empty, not a log) is skipped with a note naming it and why, unless
    ``strict``. How logs of one cell combine (retries merged, replicates pooled, differing
    measurement refused) is :func:`charbench.report.lineage.pool_cells`.

    Args:
        paths: log files (``.eval`` or ``.json``).
        strict: fail on the first unreadable file instead of skipping it.
        pool_replicates: pool replicate runs of a cell even when their measurement
            settings differ (default False: refuse, naming both logs).

    Raises:
        LogReadError: (``strict``) an unreadable file.
        PoolingError: logs that cannot be pooled (the message names them), or a log whose
            charbench metadata is incomplete.
    """
    records: list[LogRecord] = []
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    skipped: list[str] = []
    for p in paths:
        try:
            read = _read_one(str(p), notes)
        except LogReadError as ex:
            if strict:
                raise
            skipped.append(str(ex))
            continue
        if read is not None:
            records.append(read[0])
            rows.extend(read[1])
    notes.extend(f"skipped unreadable file {s}" for s in skipped)
    samples = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    pooled = pool_cells(samples, records, pool_replicates=pool_replicates)
    return LoadedLogs(
        pooled.samples, pooled.logs, notes + pooled.notes, pooled.duplicates, skipped
    )


def load_log_dir(
    log_dir: str | Path, *, strict: bool = False, pool_replicates: bool = False
) -> LoadedLogs:
    """:func:`load_logs` on every log under ``log_dir`` (symbolic links followed).

    Raises:
        FileNotFoundError: the directory does not exist or holds no Inspect logs.
        LogReadError, PoolingError: see :func:`load_logs`.
    """
    paths = log_paths(log_dir)
    if not paths:
        raise FileNotFoundError(
            f"no Inspect logs (.eval/.json) under {str(log_dir)!r}; run an eval there first "
            "(e.g. `inspect eval tasks/chat_persona.py --log-dir ...` or `charbench sweep`)"
        )
    return load_logs(paths, strict=strict, pool_replicates=pool_replicates)
