"""Inspect metrics over persona scores: macro-F1 with bootstrap CIs, per-persona F1, rates.

Both metrics are ``@metric(scores="unreduced")``: they receive one score per sample *per
epoch*, so with ``--epochs N`` the statistics pool every rollout instead of the first
epoch's metadata (what Inspect's reducers would keep). Every figure is computed from the
per-sample score metadata written by :func:`charbench.scoring.persona_scorer` (``gold``,
``pred``, ``labels``, ``cluster``, ``outcome``), with the functions in
:mod:`charbench.scoring.stats`; see there for edge cases (``nan`` on empty input, absent
personas scoring F1 0).

Samples that Inspect marks unscored (value ``nan``) are left out, as Inspect's own metrics
do; :func:`persona_scorer` never produces them (an empty reply is a scored miss).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from inspect_ai.scorer import Metric, SampleScore, metric

from charbench.personas import PERSONAS
from charbench.scoring import stats

logger = logging.getLogger(__name__)

Resample = Literal["cluster", "row"]

EMAILED = "emailed"
MALFORMED = "malformed"


@dataclass
class PersonaRows:
    """The per-sample fields the statistics need, one entry per (sample, epoch)."""

    gold: list[str]
    pred: list[str | None]
    cluster: list[str]
    outcome: list[str]
    labels: list[str]
    agentic: bool


def _labels_of(scores: Sequence[SampleScore]) -> list[str]:
    seen: list[list[str]] = []
    for s in scores:
        md = s.score.metadata or {}
        labels = md.get("labels")
        if labels is None and s.sample_metadata:
            labels = s.sample_metadata.get("personas")
        if labels:
            as_list = [str(x) for x in labels]
            if as_list not in seen:
                seen.append(as_list)
    if not seen:
        raise ValueError(
            "persona scores carry no 'labels' (evaluated personas) in their metadata; "
            "score with charbench.scoring.persona_scorer"
        )
    if len(seen) == 1:
        return seen[0]
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
    """Extract the statistics' inputs from Inspect sample scores.

    Args:
        scores: Scores written by ``persona_scorer`` (any number of epochs).

    Returns:
        The rows, with unscored (``nan``) samples dropped. ``cluster`` falls back to the
        sample id when a score has none (each sample then is its own cluster).

    Raises:
        ValueError: a score lacks the ``gold`` field (not a persona score), or no score
            names the evaluated personas.
    """
    kept: list[SampleScore] = []
    for s in scores:
        value = s.score.value
        if isinstance(value, float) and math.isnan(value):
            continue
        kept.append(s)
    rows = PersonaRows([], [], [], [], [], agentic=False)
    if not kept:
        return rows
    rows.labels = _labels_of(kept)
    for s in kept:
        md = s.score.metadata or {}
        if "gold" not in md:
            raise ValueError(
                f"score of sample {s.sample_id!r} has no 'gold' in its metadata; persona "
                "metrics need scores from charbench.scoring.persona_scorer"
            )
        rows.gold.append(str(md["gold"]))
        pred = md.get("pred")
        rows.pred.append(None if pred is None else str(pred))
        cluster = md.get("cluster")
        rows.cluster.append(str(cluster) if cluster is not None else f"sample:{s.sample_id}")
        rows.outcome.append(str(md.get("outcome", "")))
        rows.agentic = rows.agentic or bool(md.get("agentic", False))
    return rows


def _accuracy(gold: Sequence[str], pred: Sequence[str | None]) -> float:
    if not gold:
        return float("nan")
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def _f1_block(
    gold: list[str],
    pred: list[str | None],
    cluster: list[str],
    labels: list[str],
    *,
    suffix: str,
    resample: Resample,
    n_boot: int,
    seed: int,
    level: float,
) -> dict[str, float]:
    """Macro-F1 with its CI and accuracy, keys suffixed; all NaN when there are no rows."""
    if not gold:
        keys = (f"macro_f1{suffix}", f"macro_f1{suffix}_ci_low", f"macro_f1{suffix}_ci_high",
                f"accuracy{suffix}")
        return dict.fromkeys(keys, math.nan)
    point, low, high = stats.macro_f1_ci(
        gold, pred, labels, cluster, n_boot=n_boot, seed=seed, level=level, resample=resample
    )
    return {
        f"macro_f1{suffix}": point,
        f"macro_f1{suffix}_ci_low": low,
        f"macro_f1{suffix}_ci_high": high,
        f"accuracy{suffix}": _accuracy(gold, pred),
    }


def _per_persona(gold: list[str], pred: list[str | None], labels: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, (f1, n) in stats.per_persona_f1(gold, pred, labels).items():
        out[f"f1_{label}"] = f1
        out[f"n_{label}"] = float(n)
    return out


def chat_summary(
    rows: PersonaRows,
    *,
    resample: Resample = "cluster",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """The chat metric set (see :func:`persona_metrics`) from extracted rows."""
    if not rows.gold:
        return {
            "macro_f1": math.nan,
            "macro_f1_ci_low": math.nan,
            "macro_f1_ci_high": math.nan,
            "accuracy": math.nan,
        }
    out = _f1_block(
        rows.gold,
        rows.pred,
        rows.cluster,
        rows.labels,
        suffix="",
        resample=resample,
        n_boot=n_boot,
        seed=seed,
        level=level,
    )
    out.update(_per_persona(rows.gold, rows.pred, rows.labels))
    return out


def agentic_summary(
    rows: PersonaRows,
    *,
    resample: Resample = "cluster",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """The agentic metric set (see :func:`agentic_metrics`) from extracted rows."""
    n_total = len(rows.gold)
    sent = [i for i, o in enumerate(rows.outcome) if o == EMAILED]
    f1_block = functools.partial(
        _f1_block, resample=resample, n_boot=n_boot, seed=seed, level=level
    )
    # survivors only: the published column (NaN when nothing was emailed)
    out = f1_block(
        [rows.gold[i] for i in sent],
        [rows.pred[i] for i in sent],
        [rows.cluster[i] for i in sent],
        rows.labels,
        suffix="",
    )
    # intent to treat: a sample without an email is a miss (its pred is ignored)
    itt_pred = [p if o == EMAILED else None for p, o in zip(rows.pred, rows.outcome, strict=True)]
    out.update(f1_block(rows.gold, itt_pred, rows.cluster, rows.labels, suffix="_itt"))
    n_emailed = len(sent)
    n_malformed = sum(o == MALFORMED for o in rows.outcome)
    out["email_rate"] = n_emailed / n_total if n_total else math.nan
    out["malformed_rate"] = n_malformed / n_total if n_total else math.nan
    out["n_emailed"] = float(n_emailed)
    out["n_total"] = float(n_total)
    if n_total:
        out.update(
            _per_persona([rows.gold[i] for i in sent], [rows.pred[i] for i in sent], rows.labels)
            if sent
            else {
                k: v
                for label in rows.labels
                for k, v in ((f"f1_{label}", math.nan), (f"n_{label}", 0.0))
            }
        )
        for label in rows.labels:
            mine = [o for g, o in zip(rows.gold, rows.outcome, strict=True) if g == label]
            out[f"email_rate_{label}"] = (
                sum(o == EMAILED for o in mine) / len(mine) if mine else math.nan
            )
            out[f"malformed_rate_{label}"] = (
                sum(o == MALFORMED for o in mine) / len(mine) if mine else math.nan
            )
    return out


def _check_args(resample: str, n_boot: int, level: float) -> None:
    if resample not in ("cluster", "row"):
        raise ValueError(f"resample must be 'cluster' or 'row' (got {resample!r})")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1 (got {n_boot})")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1) (got {level})")


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
        resample: ``"cluster"`` (default: resample whole prompts/scenarios, all personas'
            and epochs' samples of one together) or ``"row"`` (each sample independently,
            as the earlier study did; narrower and overconfident when rows are correlated).
        n_boot: Bootstrap resamples (default 1000).
        seed: Bootstrap seed (default 0): the same log gives the same CI.
        level: Interval coverage (default 0.95).
    """
    _check_args(resample, n_boot, level)

    def compute(scores: list[SampleScore]) -> Any:
        rows = persona_rows(scores)
        kwargs: dict[str, Any] = {
            "resample": resample,
            "n_boot": n_boot,
            "seed": seed,
            "level": level,
        }
        if rows.agentic:
            return agentic_summary(rows, **kwargs)
        return chat_summary(rows, **kwargs)

    return compute


@metric(scores="unreduced")
def agentic_metrics(
    resample: Resample = "cluster", n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> Metric:
    """Agentic-email metrics: survivor and intent-to-treat macro-F1, email and malformed rates.

    Keys:

    - ``macro_f1`` / ``macro_f1_ci_low`` / ``macro_f1_ci_high`` / ``accuracy``: over samples
      whose ``outcome`` is ``emailed`` only (comparable with the published numbers, which
      scored only rollouts that sent an email). ``nan`` when no sample emailed.
    - ``macro_f1_itt`` / ``macro_f1_itt_ci_low`` / ``macro_f1_itt_ci_high`` /
      ``accuracy_itt``: over all samples, a sample without an email counting as a miss.
    - ``f1_<persona>`` and ``n_<persona>``: per persona over emailed samples.
    - ``email_rate``, ``malformed_rate`` (outcome ``malformed``), ``n_emailed``,
      ``n_total``, and per gold persona ``email_rate_<persona>``,
      ``malformed_rate_<persona>`` (``nan`` for a persona with no samples).

    Args:
        resample: ``"cluster"`` (default: by scenario) or ``"row"``.
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
