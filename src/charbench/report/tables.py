"""Statistics of the report, recomputed from the pooled per-sample table.

Point estimates and single-cell CIs come from :mod:`charbench.scoring.stats` (shared with the
in-log metrics). Two statistics the shared module does not cover live here as small pure
helpers: the ID-minus-OOD gap (two independent cluster bootstraps, one per cell) and the lift
over the base model (a paired cluster bootstrap over the prompts or scenarios both cells
share). Both use additive per-cluster counts, so a resample is a weighted sum rather than a
re-scan of the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from charbench.personas import PERSONAS
from charbench.report.load import AGENTIC_TASKS, CELL_KEYS
from charbench.scoring.stats import macro_f1_ci, per_persona_f1

NONE_LABEL = "none"
"""Confusion-matrix column for samples with nothing to classify (no reply, no email)."""

ID_TASK = "chat"
"""The in-distribution task of the gap."""

STAGE_ORDER: tuple[str, ...] = ("base", "distillation", "introspection", "full")
"""Order of known conditions in tables and figures; other conditions follow by name."""


def condition_sort_key(condition: str) -> tuple[int, str]:
    """Sort key putting the released stages first, in training order."""
    if condition in STAGE_ORDER:
        return (STAGE_ORDER.index(condition), condition)
    return (len(STAGE_ORDER), condition)


def _percentile_ci(values: np.ndarray, level: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (float("nan"), float("nan"))
    alpha = (1.0 - level) / 2.0
    return (float(np.quantile(finite, alpha)), float(np.quantile(finite, 1.0 - alpha)))


@dataclass(frozen=True)
class ClusterCounts:
    """Per-cluster confusion counts of one cell, for fast bootstrap of macro-F1.

    Attributes:
        clusters: cluster ids, one per row of the count arrays.
        tp: true positives per cluster and label, shape (clusters, labels).
        fp: false positives per cluster and label.
        fn: false negatives per cluster and label.
    """

    clusters: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @classmethod
    def build(
        cls,
        gold: Sequence[str],
        pred: Sequence[str | None],
        clusters: Sequence[str],
        labels: Sequence[str],
    ) -> ClusterCounts:
        """Count per cluster; a prediction outside ``labels`` (or None) is a miss."""
        ids, inverse = np.unique(
            np.asarray(clusters, dtype=object).astype(str), return_inverse=True
        )
        index = {lab: i for i, lab in enumerate(labels)}
        n_c, n_l = len(ids), len(labels)
        tp = np.zeros((n_c, n_l))
        fp = np.zeros((n_c, n_l))
        fn = np.zeros((n_c, n_l))
        for c, g, p in zip(inverse, gold, pred, strict=True):
            gi = index.get(g)
            pi = index.get(p) if p is not None else None
            if gi is not None and gi == pi:
                tp[c, gi] += 1
                continue
            if gi is not None:
                fn[c, gi] += 1
            if pi is not None:
                fp[c, pi] += 1
        return cls(ids, tp, fp, fn)

    def macro_f1(self, weights: np.ndarray | None = None) -> float:
        """Macro-F1 of the cell, or of a resample given cluster ``weights`` (counts)."""
        w = np.ones(len(self.clusters)) if weights is None else weights
        tp, fp, fn = w @ self.tp, w @ self.fp, w @ self.fn
        denom = 2 * tp + fp + fn
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0)
        return float(f1.mean()) if f1.size else float("nan")


def _resample_weights(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.bincount(rng.integers(0, n, size=n), minlength=n).astype(float)


def gap_ci(
    id_counts: ClusterCounts,
    ood_counts: ClusterCounts,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """ID-minus-OOD macro-F1 gap with a percentile bootstrap CI.

    ID clusters (prompts) and OOD clusters (scenarios) are resampled independently, each
    with replacement and as many as the cell has; the generator is seeded, so the same
    inputs give the same CI.

    Returns:
        ``(gap, ci_low, ci_high)``; NaNs when either cell has no clusters.
    """
    if len(id_counts.clusters) == 0 or len(ood_counts.clusters) == 0:
        return (float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    point = id_counts.macro_f1() - ood_counts.macro_f1()
    boots = np.empty(n_boot)
    for b in range(n_boot):
        w_id = _resample_weights(len(id_counts.clusters), rng)
        w_ood = _resample_weights(len(ood_counts.clusters), rng)
        boots[b] = id_counts.macro_f1(w_id) - ood_counts.macro_f1(w_ood)
    lo, hi = _percentile_ci(boots, level)
    return (point, lo, hi)


def lift_ci(
    cond_hits: pd.Series,
    base_hits: pd.Series,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float, int]:
    """Difference of two prediction rates on shared clusters, with a paired bootstrap CI.

    Args:
        cond_hits: 1/0 per sample of the condition (persona predicted or not), indexed by
            cluster id (repeated index for several samples of a cluster).
        base_hits: the same for the base condition.
        n_boot: bootstrap resamples (default 1000).
        seed: RNG seed (default 0).
        level: CI level (default 0.95).

    Returns:
        ``(lift, ci_low, ci_high, n_clusters)`` computed on the clusters present in both;
        NaNs and 0 when they share none. Resampling draws shared clusters with replacement
        and takes all samples of a drawn cluster from both conditions (paired).
    """
    c = cond_hits.groupby(level=0).agg(["sum", "count"])
    b = base_hits.groupby(level=0).agg(["sum", "count"])
    shared = c.index.intersection(b.index)
    if len(shared) == 0:
        return (float("nan"), float("nan"), float("nan"), 0)
    c, b = c.loc[shared], b.loc[shared]
    cs, cn = c["sum"].to_numpy(float), c["count"].to_numpy(float)
    bs, bn = b["sum"].to_numpy(float), b["count"].to_numpy(float)
    point = cs.sum() / cn.sum() - bs.sum() / bn.sum()
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for i in range(n_boot):
        w = _resample_weights(len(shared), rng)
        boots[i] = (w @ cs) / (w @ cn) - (w @ bs) / (w @ bn)
    lo, hi = _percentile_ci(boots, level)
    return (float(point), lo, hi, len(shared))


@dataclass
class Tables:
    """The report's tables.

    Attributes:
        summary: one row per cell (see :func:`compute_tables` for the columns).
        per_persona: one row per (cell, persona).
        gaps: one row per (base, condition, OOD task) that has a chat cell too.
        confusion: per cell key ``(base, condition, task)``: a DataFrame with gold personas
            as rows and predicted labels as columns (plus ``none``).
    """

    summary: pd.DataFrame
    per_persona: pd.DataFrame
    gaps: pd.DataFrame
    confusion: dict[tuple[str, str, str], pd.DataFrame]


def _preds(frame: pd.DataFrame) -> list[str | None]:
    return [
        None if p is None or (isinstance(p, float) and np.isnan(p)) else str(p)
        for p in frame["pred"]
    ]


def _confusion(frame: pd.DataFrame, personas: Sequence[str]) -> pd.DataFrame:
    preds = [NONE_LABEL if p is None else p for p in _preds(frame)]
    extra = sorted(
        {p for p in preds if p not in personas and p != NONE_LABEL},
        key=lambda p: (PERSONAS.index(p) if p in PERSONAS else len(PERSONAS), p),
    )
    columns = [*personas, *extra] + ([NONE_LABEL] if NONE_LABEL in preds else [])
    golds = list(frame["gold"].astype(str))
    if not golds:  # e.g. an agentic cell in which no sample sent an email: all zeros
        empty = pd.DataFrame(0, index=list(personas), columns=columns)
        empty.index.name, empty.columns.name = "gold", "pred"
        return empty
    all_labels = list(dict.fromkeys([*columns, *golds]))
    matrix = confusion_matrix(golds, preds, labels=all_labels)
    full = pd.DataFrame(matrix, index=all_labels, columns=all_labels)
    out = full.loc[list(personas), columns]
    out.index.name = "gold"
    out.columns.name = "pred"
    return out


def _scored_rows(cell: pd.DataFrame, task: str) -> pd.DataFrame:
    """Rows macro-F1 is computed over: emailed only for agentic tasks, all otherwise."""
    valid = cell[cell["error"].isna()]
    if task in AGENTIC_TASKS:
        return valid[valid["outcome"] == "emailed"]
    return valid


def _itt_rows(cell: pd.DataFrame) -> pd.DataFrame:
    valid = cell[cell["error"].isna()].copy()
    valid.loc[valid["outcome"] != "emailed", "pred"] = None
    return valid


def _f1_with_ci(
    rows: pd.DataFrame, labels: Sequence[str], n_boot: int, seed: int
) -> tuple[float, float, float]:
    """Macro-F1 and its cluster-bootstrap CI via :func:`charbench.scoring.stats.macro_f1_ci`.

    The same call as the in-log metric, so a cell read from one log reproduces its metric.
    """
    if rows.empty:
        return (float("nan"), float("nan"), float("nan"))
    return macro_f1_ci(
        list(rows["gold"].astype(str)),
        _preds(rows),
        labels,
        list(rows["cluster"].astype(str)),
        n_boot=n_boot,
        seed=seed,
    )


def _accuracy(rows: pd.DataFrame) -> float:
    if rows.empty:
        return float("nan")
    return float(np.mean([g == p for g, p in zip(rows["gold"], _preds(rows), strict=True)]))


def compute_tables(samples: pd.DataFrame, *, seed: int = 0, n_boot: int = 1000) -> Tables:
    """Compute every table of the report from the pooled samples.

    Gaps are computed only between cells that evaluated the same personas.

    Summary columns: ``base, condition, task, n, n_errors, n_logs, n_clusters, macro_f1,
    macro_f1_ci_low, macro_f1_ci_high, accuracy, chance`` and, for agentic tasks (``agentic``,
    ``draft``, ``chat-email``), ``n_total, n_emailed, email_rate, malformed_rate,
    macro_f1_itt, macro_f1_itt_ci_low, macro_f1_itt_ci_high`` (NaN for chat cells), then the
    pooling keys. ``n`` counts the samples macro-F1 is computed over: every scored sample for
    chat (an empty reply is a miss), the emailed samples for agentic tasks; ``n_total`` counts
    all scored samples of an agentic cell (the intent-to-treat denominator); errored samples
    are in ``n_errors`` only. ``chance`` is ``1 / len(personas)``.

    Per-persona columns: ``persona, n, f1, pred_rate`` (share of the persona's scored samples
    predicted as the persona), for agentic tasks ``n_total, n_emailed, email_rate,
    malformed_rate, f1_itt``, and where a ``base`` condition of the same base and task exists
    ``lift, lift_ci_low, lift_ci_high, lift_clusters`` (see :func:`lift_ci`; the rate is
    over all scored samples, a sample without text counting as "not predicted") and, for
    agentic tasks, ``lift_emailed`` (the same over emailed samples only).

    Args:
        samples: :attr:`charbench.report.load.LoadedLogs.samples`.
        seed: bootstrap seed (default 0); every CI uses it, so results are reproducible.
        n_boot: bootstrap resamples (default 1000).
    """
    summary_rows: list[dict[str, object]] = []
    persona_rows: list[dict[str, object]] = []
    confusion: dict[tuple[str, str, str], pd.DataFrame] = {}
    counts: dict[tuple[str, str, str], tuple[ClusterCounts, ClusterCounts | None]] = {}
    cells = {
        (str(k[0]), str(k[1]), str(k[2])): g
        for k, g in samples.groupby(list(CELL_KEYS), sort=False)
    }
    order = sorted(cells, key=lambda k: (k[0], condition_sort_key(k[1]), k[2]))
    for key in order:
        cell = cells[key]
        base, condition, task = key
        personas = list(cell["personas"].iloc[0])
        agentic = task in AGENTIC_TASKS
        scored = _scored_rows(cell, task)
        valid = cell[cell["error"].isna()]
        f1, lo, hi = _f1_with_ci(scored, personas, n_boot, seed)
        row: dict[str, object] = {
            "base": base,
            "condition": condition,
            "task": task,
            "n": len(scored),
            "n_errors": int(cell["error"].notna().sum()),
            "n_logs": int(cell["log"].nunique()),
            "n_clusters": int(scored["cluster"].nunique()),
            "macro_f1": f1,
            "macro_f1_ci_low": lo,
            "macro_f1_ci_high": hi,
            "accuracy": _accuracy(scored),
            "chance": 1.0 / len(personas),
            "n_total": np.nan,
            "n_emailed": np.nan,
            "email_rate": np.nan,
            "malformed_rate": np.nan,
            "macro_f1_itt": np.nan,
            "macro_f1_itt_ci_low": np.nan,
            "macro_f1_itt_ci_high": np.nan,
        }
        itt = _itt_rows(cell) if agentic else None
        if itt is not None:
            f1_itt, lo_itt, hi_itt = _f1_with_ci(itt, personas, n_boot, seed)
            row.update(
                n_total=len(valid),
                n_emailed=int((valid["outcome"] == "emailed").sum()),
                email_rate=float((valid["outcome"] == "emailed").mean()) if len(valid) else np.nan,
                malformed_rate=float((valid["outcome"] == "malformed").mean())
                if len(valid)
                else np.nan,
                macro_f1_itt=f1_itt,
                macro_f1_itt_ci_low=lo_itt,
                macro_f1_itt_ci_high=hi_itt,
            )
        for k in ("classifier", "restrict", "suffix", "selection", "persona_prompt"):
            row[k] = cell[k].iloc[0]
        row["personas"] = ",".join(personas)
        row["logs"] = ";".join(sorted(cell["log"].unique()))
        summary_rows.append(row)

        per = per_persona_f1(list(scored["gold"].astype(str)), _preds(scored), personas)
        per_itt = (
            per_persona_f1(list(itt["gold"].astype(str)), _preds(itt), personas)
            if itt is not None
            else {}
        )
        for p in personas:
            mine = scored[scored["gold"] == p]
            prow: dict[str, object] = {
                "base": base,
                "condition": condition,
                "task": task,
                "persona": p,
                "n": int(per[p][1]),
                "f1": float(per[p][0]),
                "pred_rate": float(np.mean([x == p for x in _preds(mine)]))
                if len(mine)
                else np.nan,
            }
            if itt is not None:
                v = valid[valid["gold"] == p]
                prow.update(
                    n_total=len(v),
                    n_emailed=int((v["outcome"] == "emailed").sum()),
                    email_rate=float((v["outcome"] == "emailed").mean()) if len(v) else np.nan,
                    malformed_rate=float((v["outcome"] == "malformed").mean())
                    if len(v)
                    else np.nan,
                    f1_itt=float(per_itt[p][0]),
                )
            persona_rows.append(prow)
        confusion[key] = _confusion(scored, personas)
        counts[key] = (
            ClusterCounts.build(
                list(scored["gold"].astype(str)), _preds(scored), list(scored["cluster"]), personas
            ),
            ClusterCounts.build(
                list(itt["gold"].astype(str)), _preds(itt), list(itt["cluster"]), personas
            )
            if itt is not None
            else None,
        )

    summary = pd.DataFrame(summary_rows)
    per_persona = pd.DataFrame(persona_rows)
    if not per_persona.empty:
        per_persona = _add_lift(per_persona, cells, seed=seed, n_boot=n_boot)
    gaps = _gaps(summary, counts, seed=seed, n_boot=n_boot)
    return Tables(summary, per_persona, gaps, confusion)


def _hits(rows: pd.DataFrame, persona: str) -> pd.Series:
    values = [1.0 if p == persona else 0.0 for p in _preds(rows)]
    return pd.Series(values, index=pd.Index(rows["cluster"].astype(str), name="cluster"))


def _add_lift(
    per_persona: pd.DataFrame,
    cells: dict[tuple[str, str, str], pd.DataFrame],
    *,
    seed: int,
    n_boot: int,
) -> pd.DataFrame:
    cols = ("lift", "lift_ci_low", "lift_ci_high", "lift_clusters", "lift_emailed")
    values: dict[str, list[float]] = {c: [] for c in cols}
    for _, r in per_persona.iterrows():
        base_key = (str(r["base"]), "base", str(r["task"]))
        out = dict.fromkeys(cols, float("nan"))
        if r["condition"] != "base" and base_key in cells:
            cond = cells[(str(r["base"]), str(r["condition"]), str(r["task"]))]
            cond = cond[cond["error"].isna() & (cond["gold"] == r["persona"])]
            base = cells[base_key]
            base = base[base["error"].isna()]
            lift, lo, hi, k = lift_ci(
                _hits(cond, str(r["persona"])),
                _hits(base, str(r["persona"])),
                n_boot=n_boot,
                seed=seed,
            )
            out.update(lift=lift, lift_ci_low=lo, lift_ci_high=hi, lift_clusters=float(k))
            if r["task"] in AGENTIC_TASKS:
                ce = cond[cond["outcome"] == "emailed"]
                be = base[base["outcome"] == "emailed"]
                out["lift_emailed"] = lift_ci(
                    _hits(ce, str(r["persona"])), _hits(be, str(r["persona"])), n_boot=0
                )[0]
        for c in cols:
            values[c].append(out[c])
    return per_persona.assign(**values)


def summary_personas(summary: pd.DataFrame, key: tuple[str, str, str]) -> str:
    """The comma-joined evaluated personas of the summary row of cell ``key``."""
    row = summary[
        (summary["base"] == key[0]) & (summary["condition"] == key[1]) & (summary["task"] == key[2])
    ]
    return str(row["personas"].iloc[0])


def _gaps(
    summary: pd.DataFrame,
    counts: dict[tuple[str, str, str], tuple[ClusterCounts, ClusterCounts | None]],
    *,
    seed: int,
    n_boot: int,
) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    columns = [
        "base",
        "condition",
        "ood_task",
        "id_macro_f1",
        "ood_macro_f1",
        "gap",
        "gap_ci_low",
        "gap_ci_high",
        "ood_macro_f1_itt",
        "gap_itt",
        "gap_itt_ci_low",
        "gap_itt_ci_high",
    ]
    for (base, condition, task), (scored, itt) in counts.items():
        id_key = (base, condition, ID_TASK)
        if task == ID_TASK or id_key not in counts or itt is None:
            continue
        if summary_personas(summary, id_key) != summary_personas(summary, (base, condition, task)):
            continue  # different label sets: macro-F1s are not comparable
        id_counts = counts[id_key][0]
        gap, lo, hi = gap_ci(id_counts, scored, n_boot=n_boot, seed=seed)
        gap_itt, lo_itt, hi_itt = gap_ci(id_counts, itt, n_boot=n_boot, seed=seed)
        rows.append(
            {
                "base": base,
                "condition": condition,
                "ood_task": task,
                "id_macro_f1": id_counts.macro_f1(),
                "ood_macro_f1": scored.macro_f1(),
                "gap": gap,
                "gap_ci_low": lo,
                "gap_ci_high": hi,
                "ood_macro_f1_itt": itt.macro_f1(),
                "gap_itt": gap_itt,
                "gap_itt_ci_low": lo_itt,
                "gap_itt_ci_high": hi_itt,
            }
        )
    return pd.DataFrame(rows, columns=columns)
