"""Inspect metrics over persona scores: macro-F1 with bootstrap CIs, per-persona F1, rates.

Both metrics are ``@metric(scores="unreduced")``: they receive one score per sample *per
epoch*, so with ``--epochs N`` the statistics pool every rollout instead of the first
epoch's metadata (what Inspect's reducers would keep). Every figure is computed from the
per-sample fields of :class:`charbench.contracts.ScoreFields` (read with
:meth:`~charbench.contracts.ScoreFields.read`, the same reading ``charbench report`` uses)
by the functions in :mod:`charbench.scoring.stats`; :func:`chat_summary` and
:func:`agentic_summary` are what both the log and the report call, so their numbers agree
by construction.

Samples that Inspect marks unscored (value ``nan``) are left out, as Inspect's own metrics
do; :func:`persona_scorer` never produces them (an empty reply is a scored miss).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from inspect_ai.scorer import Metric, SampleScore, metric

from charbench.contracts import EMAIL_OUTCOMES, EMAILED, MALFORMED, RESAMPLES, Resample, ScoreFields
from charbench.personas import PERSONAS
from charbench.scoring import stats

logger = logging.getLogger(__name__)

__all__ = [
    "PersonaRows",
    "Resample",
    "agentic_metrics",
    "agentic_summary",
    "chat_summary",
    "outcome_key",
    "persona_metrics",
    "persona_rows",
]


@dataclass
class PersonaRows:
    """The per-sample fields the statistics need, one entry per (sample, epoch, replicate).

    Attributes:
        fields: each row's :class:`ScoreFields`.
        keys: each row's ``row`` resampling unit (:meth:`ScoreFields.row_key`).
        labels: the macro-F1 label set (the evaluated personas).
    """

    fields: list[ScoreFields] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    @property
    def gold(self) -> list[str]:
        return [f.gold for f in self.fields]

    @property
    def pred(self) -> list[str | None]:
        return [f.pred for f in self.fields]

    @property
    def outcome(self) -> list[str]:
        return [f.outcome for f in self.fields]

    @property
    def agentic(self) -> bool:
        return any(f.agentic for f in self.fields)

    def units(self, resample: str) -> list[str]:
        """The bootstrap unit of each row: ``row`` key, ``cluster`` or ``family``."""
        if resample == "row":
            return list(self.keys)
        if resample == "family":
            return [f.unit_family for f in self.fields]
        return [f.cluster for f in self.fields]

    def subset(self, keep: Sequence[bool]) -> PersonaRows:
        """The rows where ``keep`` is true (same label set)."""
        pairs = [(f, k) for f, k, ok in zip(self.fields, self.keys, keep, strict=True) if ok]
        return PersonaRows([f for f, _ in pairs], [k for _, k in pairs], self.labels)

    @classmethod
    def from_fields(
        cls, fields: Sequence[ScoreFields], sample_ids: Sequence[str], labels: Sequence[str]
    ) -> PersonaRows:
        """Rows from already-read score fields (what the report does)."""
        keys = [f.row_key(s) for f, s in zip(fields, sample_ids, strict=True)]
        return cls(list(fields), keys, list(labels))


def merge_labels(label_sets: Sequence[Sequence[str]]) -> list[str]:
    """One label set: the only one, or (with a warning) the union in label order."""
    seen: list[list[str]] = []
    for labels in label_sets:
        as_list = list(labels)
        if as_list not in seen:
            seen.append(as_list)
    if len(seen) <= 1:
        return seen[0] if seen else []
    union = {x for labels in seen for x in labels}
    merged = [p for p in PERSONAS if p in union] + sorted(union - set(PERSONAS))
    logger.warning(
        "persona scores disagree on the evaluated personas (%s); macro-F1 is taken over "
        "their union %s",
        seen,
        merged,
    )
    return merged


def persona_rows(scores: Sequence[SampleScore]) -> PersonaRows:
    """Read the statistics' inputs from Inspect sample scores (any number of epochs).

    Returns:
        The rows, with unscored (``nan``) samples dropped.

    Raises:
        ValueError: a score is not a persona score (no ``gold``) or names no label set.
    """
    fields: list[ScoreFields] = []
    ids: list[str] = []
    for s in scores:
        value = s.score.value
        if isinstance(value, float) and math.isnan(value):
            continue
        sid = str(s.sample_id)
        fields.append(ScoreFields.read(s.score.metadata, s.sample_metadata, sid))
        ids.append(sid)
    labels = merge_labels([f.labels for f in fields])
    return PersonaRows.from_fields(fields, ids, labels)


@dataclass(frozen=True)
class _Boot:
    resample: str
    n_boot: int
    seed: int
    level: float


def _accuracy(gold: Sequence[str], pred: Sequence[str | None]) -> float:
    if not gold:
        return float("nan")
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def _f1_block(
    rows: PersonaRows,
    pred: list[str | None],
    boot: _Boot,
    *,
    suffix: str,
    present_only: bool = False,
) -> dict[str, float]:
    """Macro-F1 with its CI and accuracy, keys suffixed; all NaN when there are no rows."""
    keys = ("", "_ci_low", "_ci_high")
    if not rows.fields:
        out = {f"macro_f1{suffix}{k}": math.nan for k in keys}
        return out | {f"accuracy{suffix}": math.nan}
    values = stats.macro_f1_ci(
        rows.gold,
        pred,
        rows.labels,
        rows.units(boot.resample),
        n_boot=boot.n_boot,
        seed=boot.seed,
        level=boot.level,
        present_only=present_only,
    )
    out = {f"macro_f1{suffix}{k}": v for k, v in zip(keys, values, strict=True)}
    return out | {f"accuracy{suffix}": _accuracy(rows.gold, pred)}


def _per_persona(rows: PersonaRows) -> dict[str, float]:
    out: dict[str, float] = {}
    if not rows.fields:
        for label in rows.labels:
            out[f"f1_{label}"], out[f"n_{label}"] = math.nan, 0.0
        return out
    for label, (f1, n) in stats.per_persona_f1(rows.gold, rows.pred, rows.labels).items():
        out[f"f1_{label}"] = f1
        out[f"n_{label}"] = float(n)
    return out


def outcome_key(outcome: str) -> str:
    """The metric key of an outcome's rate (``emailed`` -> ``email_rate``, ``x`` -> ``x_rate``)."""
    return "email_rate" if outcome == EMAILED else f"{outcome}_rate"


def _rate(outcomes: Sequence[str], outcome: str) -> float:
    return sum(o == outcome for o in outcomes) / len(outcomes) if outcomes else math.nan


def _outcome_rates(rows: PersonaRows) -> dict[str, float]:
    """Every outcome's rate overall and per gold persona.

    Overall: every known outcome (:data:`EMAIL_OUTCOMES`) and any other that occurs. Per
    persona: ``email_rate_<p>`` and ``malformed_rate_<p>`` always, any other outcome where
    it occurs in the cell (``nan`` for a persona with no samples).
    """
    outcomes = rows.outcome
    seen = [o for o in dict.fromkeys(outcomes) if o and o not in EMAIL_OUTCOMES]
    out = {outcome_key(o): _rate(outcomes, o) for o in (*EMAIL_OUTCOMES, *seen)}
    per = [o for o in (*EMAIL_OUTCOMES, *seen) if o in (EMAILED, MALFORMED) or o in outcomes]
    for label in rows.labels:
        mine = [o for g, o in zip(rows.gold, outcomes, strict=True) if g == label]
        for o in per:
            out[f"{outcome_key(o)}_{label}"] = _rate(mine, o)
    return out | _study_endings(rows)


def _study_endings(rows: PersonaRows) -> dict[str, float]:
    """suite=dct: the malformed rate is the share of rollouts the study ended ``malformed``.

    The study records its ending (``terminated``) apart from the outcome: a rollout can send
    an email and still end after 4 unparseable turns, so these rates replace the outcome-based
    ``malformed_rate`` keys (empty for rows without ``terminated``).
    """
    if not rows.fields or all(f.terminated is None for f in rows.fields):
        return {}
    ended = [f.terminated == MALFORMED for f in rows.fields]
    out = {outcome_key(MALFORMED): sum(ended) / len(ended)}
    for label in rows.labels:
        mine = [e for g, e in zip(rows.gold, ended, strict=True) if g == label]
        out[f"{outcome_key(MALFORMED)}_{label}"] = sum(mine) / len(mine) if mine else math.nan
    return out


def chat_summary(
    rows: PersonaRows,
    *,
    resample: Resample = "cluster",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """The chat metric set (see :func:`persona_metrics`) of the rows."""
    boot = _Boot(resample, n_boot, seed, level)
    out = _f1_block(rows, rows.pred, boot, suffix="")
    return out | (_per_persona(rows) if rows.fields else {})


def agentic_summary(
    rows: PersonaRows,
    *,
    resample: Resample = "cluster",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """The agentic metric set (see :func:`agentic_metrics`) of the rows."""
    boot = _Boot(resample, n_boot, seed, level)
    sent = rows.subset([o == EMAILED for o in rows.outcome])
    # survivors only: the published column (NaN when nothing was emailed)
    out = _f1_block(sent, sent.pred, boot, suffix="")
    # the study's convention: personas with no email left out of the survivor average
    study = _f1_block(sent, sent.pred, boot, suffix="_study", present_only=True)
    out.update({k: v for k, v in study.items() if k.startswith("macro_f1")})
    # intent to treat: a sample without an email is a miss (its pred is ignored)
    itt_pred = [p if o == EMAILED else None for p, o in zip(rows.pred, rows.outcome, strict=True)]
    out.update(_f1_block(rows, itt_pred, boot, suffix="_itt"))
    n_total = len(rows.fields)
    out["n_emailed"] = float(len(sent.fields))
    out["n_total"] = float(n_total)
    if n_total:
        out.update(_per_persona(sent))
        out.update(_outcome_rates(rows))
    else:
        out.update({outcome_key(o): math.nan for o in EMAIL_OUTCOMES})
    return out


def _check_args(resample: str, n_boot: int, level: float) -> None:
    if resample not in RESAMPLES:
        raise ValueError(f"resample must be one of {', '.join(RESAMPLES)} (got {resample!r})")
    stats.check_bootstrap(n_boot, level)


@metric(scores="unreduced")
def persona_metrics(
    resample: Resample = "cluster", n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> Metric:
    """Macro-F1 with a seeded bootstrap CI, accuracy, and per-persona F1 and n.

    Keys: ``macro_f1``, ``macro_f1_ci_low``, ``macro_f1_ci_high``, ``accuracy``, and per
    evaluated persona ``f1_<persona>`` and ``n_<persona>`` (gold samples). Macro-F1 is over
    the evaluated personas (the scores' ``labels``), pooled over all samples and epochs; an
    empty reply is a miss and counts. With no scores every value is ``nan``.

    When the scores come from ``persona_scorer(..., agentic=True)`` (score metadata
    ``agentic``) this returns the :func:`agentic_metrics` set instead, so one scorer
    declaration serves both tasks.

    Args:
        resample: Bootstrap unit: ``"cluster"`` (default: whole prompts/scenarios, all
            personas' and epochs' samples of one together), ``"family"`` (whole scenario
            families; the cluster where a sample has no family) or ``"row"`` (each sample
            independently, as the earlier study did; narrower and overconfident when rows
            are correlated).
        n_boot: Bootstrap resamples (default 1000).
        seed: Bootstrap seed (default 0): the same log gives the same CI.
        level: Interval coverage (default 0.95).
    """
    _check_args(resample, n_boot, level)

    def compute(scores: list[SampleScore]) -> Any:
        rows = persona_rows(scores)
        summary = agentic_summary if rows.agentic else chat_summary
        return summary(rows, resample=resample, n_boot=n_boot, seed=seed, level=level)

    return compute


@metric(scores="unreduced")
def agentic_metrics(
    resample: Resample = "cluster", n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> Metric:
    """Agentic-email metrics: survivor and intent-to-treat macro-F1, every outcome's rate.

    Keys:

    - ``macro_f1`` / ``macro_f1_ci_low`` / ``macro_f1_ci_high`` / ``accuracy``: over samples
      whose ``outcome`` is ``emailed`` only (comparable with the published numbers, which
      scored only rollouts that sent an email). ``nan`` when no sample emailed.
    - ``macro_f1_study`` (+ CI): the same survivors averaged over the personas that sent at
      least one email (the study's convention; charbench's ``macro_f1`` scores such a
      persona 0).
    - ``macro_f1_itt`` / ``macro_f1_itt_ci_low`` / ``macro_f1_itt_ci_high`` /
      ``accuracy_itt``: over all samples, a sample without an email counting as a miss.
    - ``f1_<persona>`` and ``n_<persona>``: per persona over emailed samples.
    - ``n_emailed``, ``n_total``; the rate of every outcome (``email_rate``,
      ``no_email_rate``, ``malformed_rate``, ``turn_limit_rate``, ``unparsed_call_rate``,
      ``empty_after_tool_rate``, and any other recorded outcome as ``<outcome>_rate``); per
      gold persona ``email_rate_<persona>``, ``malformed_rate_<persona>`` and the rate of
      any other outcome that occurs (``nan`` for a persona with no samples).

    Args:
        resample: ``"cluster"`` (default: by scenario), ``"family"`` or ``"row"``.
        n_boot: Bootstrap resamples (default 1000).
        seed: Bootstrap seed (default 0).
        level: Interval coverage (default 0.95).
    """
    _check_args(resample, n_boot, level)

    def compute(scores: list[SampleScore]) -> Any:
        return agentic_summary(
            persona_rows(scores), resample=resample, n_boot=n_boot, seed=seed, level=level
        )

    return compute
