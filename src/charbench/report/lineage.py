"""Retries and replicates: how the logs of one report cell combine.

The rule (README, "charbench report"), decided from what Inspect records, never from sample
ids alone:

- **A retry continues a run.** ``inspect eval-retry`` and ``eval_set``'s retries write a new
  log with a new ``eval_id`` and ``run_id`` but the *same* ``task_id`` as the log they
  retry (Inspect passes the original as ``PreviousTask(id=log.eval.task_id)``). Logs of a
  cell that share a ``task_id`` are one run: each (sample id, epoch) is kept once, the
  completed copy from the newest log, so a finished sample replaces an errored or missing
  one.
- **Independent runs are replicates.** Logs of a cell with different ``task_id`` s are
  separate runs of the same measurement: all their samples are pooled, each row records its
  replicate (0, 1, ... in order of the runs' first logs), and the bootstrap keeps the rows of
  one prompt/scenario together across replicates (a ``row`` bootstrap treats each
  replicate's sample as its own row).
- **Different measurements are refused.** Replicates whose model, serving route
  (``model_base_url``), model args, generation config or task args differ (operational
  settings such as ``max_connections``, timeouts, ``max_batch_size`` and the seed
  excepted) are refused, naming both logs and the differing settings, unless
  ``--pool-replicates``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from inspect_ai.log import EvalSpec

from charbench.contracts import BUILTIN_PERSONA_SET

CELL_KEYS: tuple[str, ...] = ("base", "condition", "task")
"""The columns that define a report cell."""

POOL_KEYS: tuple[str, ...] = (
    "classifier",
    "restrict",
    "personas",
    "suffix",
    "selection",
    "persona_prompt",
    "suite",
    "persona_set",
    "text_tool_calls",
)
"""Eval-metadata keys that must agree between all logs pooled into one cell (a report never
pools two suites, two persona sets, two classifiers, ...)."""

OPERATIONAL_CONFIG: frozenset[str] = frozenset(
    {
        "max_retries",
        "timeout",
        "attempt_timeout",
        "stream_idle_timeout",
        "max_connections",
        "adaptive_connections",
        "cache_prompt",
        "cache",
        "batch",
        "extra_headers",
        "seed",
    }
)
"""Generation-config keys that do not change the measurement (a different seed is what
makes a replicate)."""
OPERATIONAL_MODEL_ARGS: frozenset[str] = frozenset({"max_batch_size", "allow_pickle"})
"""Model args that do not change the measurement."""
SELECTION_TASK_ARGS: frozenset[str] = frozenset(
    {"n", "scenarios", "condition", "personas", "limit"}
)
"""Task args that choose samples or label the cell rather than change how one is measured
(the eval metadata's pooling keys guard the label set)."""


def cell_task_label(task: str, suite: str, persona_set: str) -> str:
    """The report's ``task`` of a cell: the eval's task label, marked with a non-default
    suite (``agentic [dct]``) and a non-built-in persona set (``chat [set mine]``), so that
    cells of different suites or persona sets are never pooled."""
    marks = ([suite] if suite != "charbench" else []) + (
        [f"set {persona_set}"] if persona_set != BUILTIN_PERSONA_SET else []
    )
    return f"{task} [{', '.join(marks)}]" if marks else task


class PoolingError(ValueError):
    """Logs that cannot be pooled into one cell (or a log that breaks the contract)."""


@dataclass(frozen=True)
class LogRecord:
    """What the pooling rule needs of one log."""

    path: str
    meta: Any  # charbench.contracts.EvalMeta
    run: str
    created: str
    status: str
    measurement: dict[str, str]
    seed: int | None


@dataclass
class Pooled:
    """Result of :func:`pool_cells`."""

    samples: pd.DataFrame
    logs: pd.DataFrame
    notes: list[str]
    duplicates: int


def measurement(spec: EvalSpec) -> dict[str, str]:
    """The settings of a log that change what is measured, flattened to comparable strings."""
    out = {"model": spec.model, "model_base_url": repr(spec.model_base_url)}
    for key, value in sorted(spec.model_args.items()):
        if key not in OPERATIONAL_MODEL_ARGS:
            out[f"model_args.{key}"] = repr(value)
    config = spec.model_generate_config.model_dump(exclude_none=True)
    for key, value in sorted(config.items()):
        if key not in OPERATIONAL_CONFIG:
            out[f"generate_config.{key}"] = repr(value)
    for key, value in sorted(spec.task_args.items()):
        if key not in SELECTION_TASK_ARGS:
            out[f"task_args.{key}"] = repr(value)
    return out


def _differences(a: dict[str, str], b: dict[str, str]) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [
        f"{k}: {a.get(k, '(unset)')} vs {b.get(k, '(unset)')}"
        for k in keys
        if a.get(k) != b.get(k)
    ]


def cell_name(cell: Sequence[Any]) -> str:
    """``base=... condition=... task=...`` for messages."""
    return " ".join(f"{k}={v!r}" for k, v in zip(CELL_KEYS, cell, strict=True))


def check_pool_keys(samples: pd.DataFrame) -> None:
    """Raise :class:`PoolingError` for cells whose logs disagree on a pooling key."""
    problems: list[str] = []
    for cell, group in samples.groupby(list(CELL_KEYS), sort=True, dropna=False):
        per_log = group.drop_duplicates("log")
        for key in POOL_KEYS:
            if per_log[key].map(repr).nunique() > 1:
                listing = "; ".join(
                    f"{row['log']} has {key}={row[key]!r}" for _, row in per_log.iterrows()
                )
                problems.append(f"cell {cell_name(cell)} mixes {key} values: {listing}")
        scored = group[group["error"].isna()]
        bad = scored[scored["labels"] != scored["personas"]]
        if len(bad):
            problems.append(
                f"cell {cell_name(cell)}: {len(bad)} sample(s) were scored over labels "
                f"{bad['labels'].iloc[0]!r} but the eval evaluated personas "
                f"{bad['personas'].iloc[0]!r} (logs: {', '.join(sorted(bad['log'].unique()))})"
            )
    if problems:
        raise PoolingError(
            "refusing to pool logs that are not comparable:\n  - "
            + "\n  - ".join(problems)
            + "\nMove the logs of different settings into different directories, or give "
            "them distinct conditions with -T condition=NAME."
        )


def _runs_of_cell(records: list[LogRecord]) -> list[list[LogRecord]]:
    """The cell's logs grouped by run (Inspect ``task_id``), runs in order of first log."""
    runs: dict[str, list[LogRecord]] = {}
    for record in sorted(records, key=lambda r: (r.created, r.path)):
        runs.setdefault(record.run, []).append(record)
    return list(runs.values())


def _check_replicates(
    cell: tuple[str, ...], runs: list[list[LogRecord]], pool: bool, notes: list[str]
) -> list[str]:
    """Problems (or, with ``pool``, notes) for replicates measured differently."""
    problems: list[str] = []
    first = runs[0][0]
    for run in runs[1:]:
        diff = _differences(first.measurement, run[0].measurement)
        if not diff:
            continue
        text = (
            f"cell {cell_name(cell)}: {first.path} and {run[0].path} are separate runs "
            f"measured differently ({'; '.join(diff)})"
        )
        (notes if pool else problems).append(
            text + (": pooled anyway (--pool-replicates)" if pool else "")
        )
    seeds = [run[0].seed for run in runs]
    if len(runs) > 1 and seeds[0] is not None and len(set(seeds)) == 1:
        notes.append(
            f"cell {cell_name(cell)}: its {len(runs)} replicate runs share seed {seeds[0]}; "
            "with a deterministic provider their samples repeat each other (give each run "
            "its own --seed)"
        )
    return problems


def _merge_retries(
    cell_rows: pd.DataFrame, cell: tuple[str, ...], notes: list[str]
) -> tuple[pd.DataFrame, int]:
    """Keep one row per (run, sample id, epoch): the completed copy from the newest log."""
    ordered = cell_rows.assign(_done=cell_rows["error"].isna()).sort_values(
        ["_done", "log_created", "completed_at", "log"],
        ascending=[False, False, False, True],
        na_position="last",
        kind="mergesort",
    )
    kept = ordered.drop_duplicates(["run", "sample_id", "epoch"], keep="first")
    dropped = len(cell_rows) - len(kept)
    if dropped:
        n_logs = cell_rows.groupby("run")["log"].nunique()
        retried = [r for r, n in n_logs.items() if n > 1]
        notes.append(
            f"cell {cell_name(cell)}: {len(retried)} run(s) were retried (same Inspect "
            f"task_id); {dropped} sample copy(ies) replaced by the newest completed copy"
        )
    return kept.drop(columns="_done"), dropped


def _number_replicates(frame: pd.DataFrame, runs: list[list[LogRecord]]) -> pd.DataFrame:
    index = {run[0].run: i for i, run in enumerate(runs)}
    replicate = frame["run"].map(index).astype(int)
    fields = [
        f.model_copy(update={"replicate": int(r)}) if f is not None else None
        for f, r in zip(frame["fields"], replicate, strict=True)
    ]
    return frame.assign(replicate=replicate, fields=fields)


def pool_cells(
    samples: pd.DataFrame, records: list[LogRecord], *, pool_replicates: bool
) -> Pooled:
    """Apply the module's rule to every cell: merge retries, pool or refuse replicates.

    Raises:
        PoolingError: pooling keys differ within a cell, or (without ``pool_replicates``)
            replicates differ in measurement; the message names the logs.
    """
    notes: list[str] = []
    if samples.empty:
        return Pooled(samples, _logs_table(records, samples, {}), notes, 0)
    check_pool_keys(samples)
    by_cell: dict[tuple[str, ...], list[LogRecord]] = {}
    for r in records:
        by_cell.setdefault(record_cell(r), []).append(r)
    problems: list[str] = []
    frames: list[pd.DataFrame] = []
    replicate_of: dict[str, int] = {}
    dropped = 0
    for cell, cell_rows in samples.groupby(list(CELL_KEYS), sort=True):
        key = tuple(str(c) for c in cell)
        runs = _runs_of_cell(by_cell[key])
        replicate_of.update({r.path: i for i, run in enumerate(runs) for r in run})
        problems += _check_replicates(key, runs, pool_replicates, notes)
        merged, n = _merge_retries(cell_rows, key, notes)
        dropped += n
        merged = _number_replicates(merged, runs)
        units = list(dict.fromkeys(merged.sort_values("replicate", kind="mergesort")["resample"]))
        if len(units) > 1:
            notes.append(
                f"cell {cell_name(key)}: its logs' metrics used different bootstrap units "
                f"({', '.join(units)}); the report's CIs use {units[0]} (the first run's) "
                "for all its rows"
            )
            merged = merged.assign(resample=units[0])
        if len(runs) > 1:
            notes.append(
                f"cell {cell_name(key)}: pooled {len(runs)} replicate runs "
                f"({sum(len(r) for r in runs)} logs) as independent samples"
            )
        n_logs = sum(len(r) for r in runs)
        frames.append(merged.assign(cell_logs=n_logs))
    if problems:
        raise PoolingError(
            "refusing to pool replicate runs measured differently:\n  - "
            + "\n  - ".join(problems)
            + "\nPass --pool-replicates to pool them anyway, or move them into different "
            "directories (or give them distinct -T condition=NAME)."
        )
    pooled = pd.concat(frames).sort_values(
        [*CELL_KEYS, "replicate", "sample_id", "epoch"], kind="mergesort"
    )
    pooled = pooled.reset_index(drop=True)
    return Pooled(pooled, _logs_table(records, pooled, replicate_of), notes, dropped)


def persona_set_label(meta: Any) -> str:
    """``name@hash`` of an eval's persona set; ``oct`` for the built-in set.

    Logs written before persona sets were recorded carry no hash (the built-in set); newer
    ones record the built-in set's content hash, which must label the same cell.
    """
    from charbench.personas import builtin_set

    ps = meta.persona_set
    if ps.name == BUILTIN_PERSONA_SET and ps.hash in (None, builtin_set().content_hash):
        return BUILTIN_PERSONA_SET
    return str(ps.name) + (f"@{ps.hash}" if ps.hash else "")


def record_cell(record: LogRecord) -> tuple[str, str, str]:
    """The report cell of a log."""
    meta = record.meta
    task = cell_task_label(meta.task, meta.suite, persona_set_label(meta))
    return (str(meta.base), str(meta.condition), task)


def _logs_table(
    records: list[LogRecord], samples: pd.DataFrame, replicate_of: dict[str, int]
) -> pd.DataFrame:
    """One row per log: its cell, run and replicate, and the samples kept from it."""
    rows = []
    for r in records:
        mine = samples[samples["log"] == r.path] if not samples.empty else samples
        rep = replicate_of.get(r.path, 0)
        rows.append(
            {
                "log": r.path,
                **dict(zip(CELL_KEYS, record_cell(r), strict=True)),
                "run": r.run,
                "replicate": int(rep),
                "status": r.status,
                "created": pd.Timestamp(r.created),
                "samples_kept": len(mine),
                "errors": int(mine["error"].notna().sum()) if len(mine) else 0,
            }
        )
    return pd.DataFrame(rows)
