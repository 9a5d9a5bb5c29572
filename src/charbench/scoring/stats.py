"""Corpus statistics for persona classification: macro-F1, per-persona F1, cluster bootstrap.

Pure numpy / scikit-learn, no Inspect: the metrics in the log
(:mod:`charbench.scoring.metrics`) and ``charbench report`` both call these functions on the
per-sample fields of the scores (``gold``, ``pred``, ``labels``, ``cluster``).

Conventions (they hold for every function here):

- **Label set.** Macro-F1 is always averaged over the given ``labels`` (the evaluated
  personas), with scikit-learn's ``f1_score(labels=labels, average="macro",
  zero_division=0)``.
- **Misses.** A prediction that is ``None`` (nothing to classify: an empty reply, no email)
  or a label outside ``labels`` (e.g. ``misalignment`` when it is not evaluated) counts as a
  false negative for the gold class and as nobody's false positive.
- **Absent labels.** A label with no gold samples and no predictions has F1 0
  (``zero_division=0``) and still counts in the average. This applies inside bootstrap
  resamples too: a resample that happens to miss every sample of a persona scores that
  persona 0, exactly as the point estimate would on such data. (The alternative, dropping
  the label from the average, would make the resampled statistic a different statistic from
  the point estimate.) With the default cluster bootstrap over prompts/scenarios every
  cluster holds all personas, so this only arises with row resampling on tiny data.
- **Empty input.** No samples at all: macro-F1 and its CI are ``nan`` (there is nothing to
  estimate); per-persona F1 is ``nan`` with n 0.
- **Determinism.** The bootstrap is seeded (``numpy.random.default_rng(seed)``): the same
  data, seed and ``n_boot`` give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

_MISS = "\x00<miss>"
"""Stand-in for a prediction outside ``labels`` (never a real persona name)."""

IntArray = NDArray[np.intp]


def _check_lengths(gold: Sequence[str], pred: Sequence[str | None]) -> None:
    if len(gold) != len(pred):
        raise ValueError(
            f"gold and pred must have the same length (got {len(gold)} and {len(pred)})"
        )


def _check_labels(labels: Sequence[str]) -> list[str]:
    labels = list(labels)
    if not labels:
        raise ValueError("labels is empty: pass the evaluated personas")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels has duplicates: {labels}")
    return labels


def _normalise_pred(pred: Sequence[str | None], labels: Sequence[str]) -> list[str]:
    allowed = set(labels)
    return [p if (p is not None and p in allowed) else _MISS for p in pred]


def macro_f1(gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]) -> float:
    """Macro-averaged F1 over ``labels`` (scikit-learn, ``zero_division=0``).

    Args:
        gold: Gold persona per sample.
        pred: Predicted persona per sample; ``None`` or a label not in ``labels`` is a miss.
        labels: The evaluated personas; the average is over exactly these.

    Returns:
        Macro-F1 in [0, 1], or ``nan`` when there are no samples.

    Raises:
        ValueError: ``gold`` and ``pred`` differ in length, or ``labels`` is empty or has
            duplicates.
    """
    _check_lengths(gold, pred)
    labels = _check_labels(labels)
    if len(gold) == 0:
        return float("nan")
    from sklearn.metrics import f1_score  # imported here: sklearn takes seconds to import

    return float(
        f1_score(
            list(gold),
            _normalise_pred(pred, labels),
            labels=labels,
            average="macro",
            zero_division=0,
        )
    )


def per_persona_f1(
    gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]
) -> dict[str, tuple[float, int]]:
    """F1 and support (number of gold samples) of each label.

    Args:
        gold: Gold persona per sample.
        pred: Predicted persona per sample (``None`` / other labels are misses).
        labels: The evaluated personas.

    Returns:
        ``{label: (f1, n)}`` in ``labels`` order. With no samples at all every F1 is
        ``nan`` and every n is 0; a label with no gold samples (but other data) has n 0 and
        F1 0 (``zero_division=0``).
    """
    _check_lengths(gold, pred)
    labels = _check_labels(labels)
    if len(gold) == 0:
        return {label: (float("nan"), 0) for label in labels}
    from sklearn.metrics import f1_score

    scores = f1_score(
        list(gold),
        _normalise_pred(pred, labels),
        labels=labels,
        average=None,
        zero_division=0,
    )
    counts = {label: 0 for label in labels}
    for g in gold:
        if g in counts:
            counts[g] += 1
    return {label: (float(s), counts[label]) for label, s in zip(labels, scores, strict=True)}


def encode(
    gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]
) -> tuple[IntArray, IntArray]:
    """Integer codes for fast resampled F1: label index, ``-1`` for anything else."""
    index = {label: i for i, label in enumerate(labels)}
    g = np.fromiter((index.get(x, -1) for x in gold), dtype=np.intp, count=len(gold))
    p = np.fromiter(
        (index.get(x, -1) if x is not None else -1 for x in pred), dtype=np.intp, count=len(pred)
    )
    return g, p


def macro_f1_codes(gold: IntArray, pred: IntArray, n_labels: int) -> float:
    """Macro-F1 of integer-coded data (see :func:`encode`); equals :func:`macro_f1`.

    F1 of a label is ``2 tp / (2 tp + fp + fn)``, 0 when that is 0/0. Code ``-1`` is outside
    the label set (a miss as a prediction, ignored as a gold label except through the
    false positive it causes).
    """
    if gold.size == 0:
        return float("nan")
    hit = gold == pred
    tp = np.bincount(gold[hit & (gold >= 0)], minlength=n_labels)[:n_labels]
    n_gold = np.bincount(gold[gold >= 0], minlength=n_labels)[:n_labels]
    n_pred = np.bincount(pred[pred >= 0], minlength=n_labels)[:n_labels]
    denom = n_gold + n_pred  # = 2tp + fp + fn
    f1 = np.divide(2.0 * tp, denom, out=np.zeros(n_labels, dtype=float), where=denom > 0)
    return float(f1.mean())


def _cluster_rows(clusters: Sequence[str]) -> list[IntArray]:
    order: dict[str, list[int]] = {}
    for i, c in enumerate(clusters):
        order.setdefault(str(c), []).append(i)
    return [np.asarray(rows, dtype=np.intp) for rows in order.values()]


def bootstrap_ci(
    stat: Callable[[IntArray], float],
    clusters: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    resample: str = "cluster",
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat``, resampling whole clusters.

    Each resample draws as many clusters as there are, with replacement, and keeps every
    row of each drawn cluster (a cluster drawn twice contributes its rows twice).

    Args:
        stat: Function of an array of row indices (into the original data, with repeats)
            returning the statistic of those rows.
        clusters: Cluster id of each row (the prompt or scenario id). Its length is the
            number of rows.
        n_boot: Number of resamples (default 1000); must be >= 1.
        seed: Seed of the numpy generator (default 0): same inputs, same interval.
        level: Coverage in (0, 1) (default 0.95): the interval is the
            ``(1-level)/2`` and ``1-(1-level)/2`` percentiles.
        resample: ``"cluster"`` (default) or ``"row"`` (every row its own cluster, the
            plain bootstrap).

    Returns:
        ``(low, high)``; ``(nan, nan)`` when there are no rows. Resamples whose statistic
        is ``nan`` are ignored; if all are, the result is ``(nan, nan)``. With a single
        cluster every resample equals the data, so the interval has zero width.

    Raises:
        ValueError: ``n_boot < 1``, ``level`` outside (0, 1), or an unknown ``resample``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1 (got {n_boot})")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1) (got {level})")
    if resample not in ("cluster", "row"):
        raise ValueError(f"resample must be 'cluster' or 'row' (got {resample!r})")
    n = len(clusters)
    if n == 0:
        return (float("nan"), float("nan"))
    groups = (
        [np.asarray([i], dtype=np.intp) for i in range(n)]
        if resample == "row"
        else _cluster_rows(clusters)
    )
    rng = np.random.default_rng(seed)
    k = len(groups)
    sizes = np.fromiter((len(g) for g in groups), dtype=np.intp, count=k)
    flat = np.concatenate(groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    values = np.empty(n_boot, dtype=float)
    for b in range(n_boot):
        draw = rng.integers(0, k, size=k)
        size = sizes[draw]
        # positions of the drawn clusters' rows in ``flat``, cluster after cluster
        shift = np.repeat(starts[draw] - (np.cumsum(size) - size), size)
        values[b] = stat(flat[np.arange(int(size.sum())) + shift])
    values = values[~np.isnan(values)]
    if values.size == 0:
        return (float("nan"), float("nan"))
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return (float(low), float(high))


def macro_f1_ci(
    gold: Sequence[str],
    pred: Sequence[str | None],
    labels: Sequence[str],
    clusters: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    resample: str = "cluster",
) -> tuple[float, float, float]:
    """Macro-F1 with a seeded percentile bootstrap interval.

    Args:
        gold: Gold persona per sample.
        pred: Predicted persona per sample (``None`` / other labels are misses).
        labels: The evaluated personas.
        clusters: Bootstrap unit of each sample (prompt or scenario id).
        n_boot: Resamples (default 1000).
        seed: Generator seed (default 0).
        level: Interval coverage (default 0.95).
        resample: ``"cluster"`` (default) or ``"row"``.

    Returns:
        ``(macro_f1, low, high)``; all ``nan`` for empty input.

    Raises:
        ValueError: mismatched lengths (``clusters`` too), bad ``labels``, or bad bootstrap
            settings (see :func:`bootstrap_ci`).
    """
    _check_lengths(gold, pred)
    if len(clusters) != len(gold):
        raise ValueError(
            f"clusters must have one entry per sample (got {len(clusters)} for {len(gold)})"
        )
    labels = _check_labels(labels)
    point = macro_f1(gold, pred, labels)
    g, p = encode(gold, pred, labels)
    n_labels = len(labels)
    low, high = bootstrap_ci(
        lambda idx: macro_f1_codes(g[idx], p[idx], n_labels),
        clusters,
        n_boot=n_boot,
        seed=seed,
        level=level,
        resample=resample,
    )
    return (point, low, high)
