"""Statistics of the report: the in-log summaries, per cell, on the pooled samples.

Every macro-F1, CI, accuracy and outcome rate of a cell comes from
:func:`charbench.scoring.metrics.chat_summary` / :func:`~charbench.scoring.metrics.agentic_summary`,
the functions the metrics in the log call, on the same :class:`~charbench.contracts.ScoreFields`
read the same way: for a cell read from one log, the report's numbers equal the log's
metrics by construction. The two statistics that compare cells, the ID-minus-OOD gap and
the lift over the base model, use the same engine (:mod:`charbench.scoring.stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from charbench.contracts import (
    CHAT,
    EMAIL_OUTCOMES,
    EMAIL_TASKS,
    EMAILED,
    UNPARSED_CALL,
    Resample,
)
from charbench.personas import PERSONAS
from charbench.report.lineage import CELL_KEYS, POOL_KEYS, cell_task_label
from charbench.scoring import stats
from charbench.scoring.metrics import PersonaRows, agentic_summary, chat_summary, outcome_key

NONE_LABEL = "none"
"""Confusion-matrix column for samples with nothing to classify (no reply, no email)."""

ID_TASK = CHAT
"""The in-distribution task of the gap."""

STAGE_ORDER: tuple[str, ...] = ("base", "distillation", "introspection", "full")
"""Order of known conditions in tables and figures; other conditions follow by name."""

Key = tuple[str, str, str]

_F1_KEYS = ("macro_f1", "macro_f1_itt", "macro_f1_study")
_EMAIL_COLUMNS = (
    "n_total",
    "n_emailed",
    *(outcome_key(o) for o in EMAIL_OUTCOMES),
    *(f"{k}{s}" for k in _F1_KEYS[1:] for s in ("", "_ci_low", "_ci_high")),
    "accuracy_itt",
)


def condition_sort_key(condition: str) -> tuple[int, str]:
    """Sort key putting the released stages first, in training order."""
    if condition in STAGE_ORDER:
        return (STAGE_ORDER.index(condition), condition)
    return (len(STAGE_ORDER), condition)


@dataclass
class Cell:
    """One report cell: its valid rows as the metrics see them, and its settings."""

    key: Key
    frame: pd.DataFrame
    rows: PersonaRows
    email: bool
    resample: Resample

    @classmethod
    def build(cls, key: Key, frame: pd.DataFrame) -> Cell:
        valid = frame[frame["error"].isna()]
        personas = list(frame["personas"].iloc[0])
        rows = PersonaRows.from_fields(list(valid["fields"]), list(valid["sample_id"]), personas)
        email = str(frame["eval_task"].iloc[0]) in EMAIL_TASKS or rows.agentic
        resample = cast(Resample, str(frame["resample"].iloc[0]))
        return cls(key, frame, rows, email, resample)

    def summary(self, *, seed: int, n_boot: int) -> dict[str, float]:
        """The in-log summary of the cell's rows."""
        fn = agentic_summary if self.email else chat_summary
        return fn(self.rows, resample=self.resample, n_boot=n_boot, seed=seed)

    @property
    def scored(self) -> PersonaRows:
        """The rows macro-F1 is over: emailed only for email tasks, all otherwise."""
        if not self.email:
            return self.rows
        return self.rows.subset([o == EMAILED for o in self.rows.outcome])

    def itt_pred(self) -> list[str | None]:
        return [
            p if o == EMAILED else None
            for p, o in zip(self.rows.pred, self.rows.outcome, strict=True)
        ]

    def counts(self, *, itt: bool) -> stats.UnitCounts:
        rows = self.rows if itt else self.scored
        pred = self.itt_pred() if itt else rows.pred
        return stats.UnitCounts.build(rows.gold, pred, rows.units(self.resample), rows.labels)


@dataclass
class Tables:
    """The report's tables.

    Attributes:
        summary: one row per cell (see :func:`compute_tables` for the columns).
        per_persona: one row per (cell, persona).
        gaps: one row per (base, condition, OOD task) that has a chat cell too.
        confusion: per cell key ``(base, condition, task)``: gold personas as rows and
            predicted labels as columns (plus ``none``).
    """

    summary: pd.DataFrame
    per_persona: pd.DataFrame
    gaps: pd.DataFrame
    confusion: dict[Key, pd.DataFrame]


ONE_UNIT = "ci_one_unit"
"""Flag of a cell whose scored samples hold a single bootstrap unit (one prompt, scenario or
family): every resample is the same, so its CI is a point that says nothing about the
uncertainty (the report's notes say so)."""


def _confusion(gold: list[str], pred: list[str | None], personas: Sequence[str]) -> pd.DataFrame:
    preds = [NONE_LABEL if p is None else p for p in pred]
    extra = sorted(
        {p for p in preds if p not in personas and p != NONE_LABEL},
        key=lambda p: (PERSONAS.index(p) if p in PERSONAS else len(PERSONAS), p),
    )
    columns = [*personas, *extra] + ([NONE_LABEL] if NONE_LABEL in preds else [])
    if not gold:  # e.g. an email cell in which no sample sent an email: all zeros
        out = pd.DataFrame(0, index=list(personas), columns=columns)
    else:
        labels = list(dict.fromkeys([*columns, *gold]))
        matrix = confusion_matrix(gold, preds, labels=labels)
        out = pd.DataFrame(matrix, index=labels, columns=labels).loc[list(personas), columns]
    out.index.name, out.columns.name = "gold", "pred"
    return out


def _summary_row(cell: Cell, values: dict[str, float]) -> dict[str, Any]:
    base, condition, task = cell.key
    frame = cell.frame
    scored = cell.scored
    row: dict[str, Any] = {
        "base": base,
        "condition": condition,
        "task": task,
        "n": len(scored.fields),
        "n_errors": int(frame["error"].notna().sum()),
        "n_logs": int(frame["cell_logs"].iloc[0]),
        "n_replicates": int(frame["run"].nunique()),
        "n_clusters": len(set(scored.units("cluster"))),
        "ci_unit": cell.resample,
        "macro_f1": values["macro_f1"],
        "macro_f1_ci_low": values["macro_f1_ci_low"],
        "macro_f1_ci_high": values["macro_f1_ci_high"],
        "accuracy": values["accuracy"],
        "chance": 1.0 / len(cell.rows.labels),
    }
    row.update({k: values.get(k, np.nan) for k in _EMAIL_COLUMNS})
    flags = [UNPARSED_CALL] if values.get(outcome_key(UNPARSED_CALL), 0.0) > 0 else []
    if scored.fields and len(set(scored.units(cell.resample))) < 2:
        flags.append(ONE_UNIT)
    row["flags"] = ",".join(flags)
    row["eval_task"] = frame["eval_task"].iloc[0]
    for k in POOL_KEYS:
        row[k] = frame[k].iloc[0]
    row["personas"] = ",".join(cell.rows.labels)
    row["logs"] = ";".join(sorted(frame["log"].unique()))
    return row


def _persona_rows(cell: Cell, values: dict[str, float]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    scored = cell.scored
    itt = stats.per_persona_f1(cell.rows.gold, cell.itt_pred(), cell.rows.labels) if (
        cell.email and cell.rows.fields
    ) else {}
    kinds = list(dict.fromkeys(outcome_key(o) for o in (*EMAIL_OUTCOMES, *cell.rows.outcome) if o))
    for p in cell.rows.labels:
        mine = [x for g, x in zip(scored.gold, scored.pred, strict=True) if g == p]
        row: dict[str, Any] = dict(zip(CELL_KEYS, cell.key, strict=True))
        row.update(
            persona=p,
            n=int(values.get(f"n_{p}", 0)),
            f1=values.get(f"f1_{p}", np.nan),
            pred_rate=float(np.mean([x == p for x in mine])) if mine else np.nan,
        )
        if cell.email:
            n_total = sum(g == p for g in cell.rows.gold)
            row.update(n_total=n_total, n_emailed=row["n"], f1_itt=itt.get(p, (np.nan, 0))[0])
            row.update({k: values[f"{k}_{p}"] for k in kinds if f"{k}_{p}" in values})
        out.append(row)
    return out


def compute_tables(samples: pd.DataFrame, *, seed: int = 0, n_boot: int = 1000) -> Tables:
    """Compute every table of the report from the pooled samples.

    Summary columns: ``base, condition, task, n, n_errors, n_logs, n_replicates, n_clusters,
    ci_unit`` (the bootstrap unit of the cell's CIs: the one its logs' metric used),
    ``macro_f1, macro_f1_ci_low, macro_f1_ci_high, accuracy, chance``; for email tasks
    (NaN elsewhere) ``n_total, n_emailed``, the rate of every outcome (``email_rate``,
    ``no_email_rate``, ``malformed_rate``, ``turn_limit_rate``, ``unparsed_call_rate``,
    ``empty_after_tool_rate``), ``macro_f1_itt`` and ``macro_f1_study`` with CIs,
    ``accuracy_itt``; ``flags`` (``unparsed_call`` where it occurred); then the pooling keys,
    ``personas`` and ``logs``. ``n`` counts the samples macro-F1 is over (every scored sample
    for chat, the emailed ones for email tasks); errored samples are in ``n_errors`` only.

    Per-persona columns: ``persona, n, f1, pred_rate``; for email tasks ``n_total,
    n_emailed, f1_itt`` and the per-persona outcome rates; where a ``base`` condition of the
    same base and task exists ``lift, lift_ci_low, lift_ci_high, lift_clusters`` (paired
    bootstrap over the shared units) and for email tasks ``lift_emailed``.

    Gaps are computed only between cells that evaluated the same personas.
    """
    cells = {
        (str(k[0]), str(k[1]), str(k[2])): Cell.build((str(k[0]), str(k[1]), str(k[2])), g)
        for k, g in samples.groupby(list(CELL_KEYS), sort=False)
    }
    order = sorted(cells, key=lambda k: (k[0], condition_sort_key(k[1]), k[2]))
    summary_rows: list[dict[str, Any]] = []
    persona_rows: list[dict[str, Any]] = []
    confusion: dict[Key, pd.DataFrame] = {}
    for key in order:
        cell = cells[key]
        values = cell.summary(seed=seed, n_boot=n_boot)
        summary_rows.append(_summary_row(cell, values))
        persona_rows.extend(_persona_rows(cell, values))
        confusion[key] = _confusion(cell.scored.gold, cell.scored.pred, cell.rows.labels)
    per_persona = pd.DataFrame(persona_rows)
    if not per_persona.empty:
        per_persona = _add_lift(per_persona, cells, seed=seed, n_boot=n_boot)
    return Tables(
        pd.DataFrame(summary_rows), per_persona, _gaps(cells, seed=seed, n_boot=n_boot),
        confusion,
    )


def _hits(rows: PersonaRows, persona: str, resample: str) -> tuple[list[float], list[str]]:
    return [1.0 if p == persona else 0.0 for p in rows.pred], rows.units(resample)


def _lift(cell: Cell, base: Cell, persona: str, *, seed: int, n_boot: int) -> dict[str, float]:
    mine = cell.rows.subset([g == persona for g in cell.rows.gold])
    lift, lo, hi, k = stats.rate_diff_ci(
        _hits(mine, persona, cell.resample),
        _hits(base.rows, persona, cell.resample),
        n_boot=n_boot,
        seed=seed,
    )
    out = {"lift": lift, "lift_ci_low": lo, "lift_ci_high": hi, "lift_clusters": float(k)}
    if cell.email:
        sent = mine.subset([o == EMAILED for o in mine.outcome])
        base_sent = base.scored
        out["lift_emailed"] = stats.rate_diff_ci(
            _hits(sent, persona, cell.resample), _hits(base_sent, persona, cell.resample),
            n_boot=1, seed=seed,
        )[0]
    return out


def _add_lift(
    per_persona: pd.DataFrame, cells: dict[Key, Cell], *, seed: int, n_boot: int
) -> pd.DataFrame:
    cols = ("lift", "lift_ci_low", "lift_ci_high", "lift_clusters", "lift_emailed")
    values: dict[str, list[float]] = {c: [] for c in cols}
    for _, r in per_persona.iterrows():
        key: Key = (str(r["base"]), str(r["condition"]), str(r["task"]))
        base_key: Key = (key[0], "base", key[2])
        out = dict.fromkeys(cols, float("nan"))
        if key[1] != "base" and base_key in cells:
            out.update(_lift(cells[key], cells[base_key], str(r["persona"]),
                             seed=seed, n_boot=n_boot))
        for c in cols:
            values[c].append(out[c])
    return per_persona.assign(**values)


GAP_COLUMNS = (
    "base", "condition", "ood_task", "id_macro_f1", "ood_macro_f1", "gap", "gap_ci_low",
    "gap_ci_high", "ood_macro_f1_itt", "gap_itt", "gap_itt_ci_low", "gap_itt_ci_high",
)


def _gaps(cells: dict[Key, Cell], *, seed: int, n_boot: int) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for (base, condition, task), cell in cells.items():
        id_task = cell_task_label(ID_TASK, "charbench", str(cell.frame["persona_set"].iloc[0]))
        id_cell = cells.get((base, condition, id_task))
        if id_cell is None or not cell.email:
            continue
        if id_cell.rows.labels != cell.rows.labels:
            continue  # different label sets: macro-F1s are not comparable
        id_counts = id_cell.counts(itt=False)
        scored, itt = cell.counts(itt=False), cell.counts(itt=True)
        gap = stats.gap_ci(id_counts, scored, n_boot=n_boot, seed=seed)
        gap_itt = stats.gap_ci(id_counts, itt, n_boot=n_boot, seed=seed)
        values = (
            base, condition, task, id_counts.macro_f1(), scored.macro_f1(), *gap,
            itt.macro_f1(), *gap_itt,
        )
        rows.append(dict(zip(GAP_COLUMNS, values, strict=True)))
    return pd.DataFrame(rows, columns=list(GAP_COLUMNS))
