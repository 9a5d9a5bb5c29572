"""Corpus statistics for persona classification: one macro-F1, one bootstrap engine.

Pure numpy, no Inspect: the metrics in the log (:mod:`charbench.scoring.metrics`) and
``charbench report`` both call these functions on the per-sample fields of the scores
(``gold``, ``pred``, ``labels`` and the bootstrap unit of each sample).

Conventions (they hold for every function here):

- **One F1.** Every F1 is ``2 tp / (2 tp + fp + fn)`` of confusion counts per label
  (:class:`UnitCounts`), 0 when that is 0/0; it equals scikit-learn's
  ``f1_score(labels=labels, zero_division=0)`` (the tests say so).
- **Label set.** Macro-F1 is averaged over the given ``labels`` (the evaluated personas).
  ``present_only=True`` gives the study's convention instead: the average over the labels
  with at least one gold sample (a persona with no email is left out of the survivor
  macro-F1 rather than scoring 0).
- **Misses.** A prediction that is ``None`` (nothing to classify: an empty reply, no email)
  or a label outside ``labels`` (e.g. ``misalignment`` when it is not evaluated) counts as a
  false negative for the gold class and as nobody's false positive.
- **Absent labels.** A label with no gold samples and no predictions has F1 0 and still
  counts in the average, inside bootstrap resamples too: a resample that misses every
  sample of a persona scores that persona 0, exactly as the point estimate would on such
  data.
- **Empty input.** No samples at all: macro-F1 and its CI are ``nan``; per-persona F1 is
  ``nan`` with n 0.
- **One bootstrap.** :func:`bootstrap` resamples units (rows, prompts/scenarios, or
  scenario families: the caller gives each row its unit) with replacement, as many as there
  are, and keeps every row of a drawn unit; a statistic is a function of how often each
  unit was drawn, so resampled macro-F1 is a weighted sum of per-unit counts. Units are
  ordered by their sorted ids, so the same rows in any order give the same interval.
- **Determinism.** The generator is ``numpy.random.default_rng(seed)``: the same data,
  seed and ``n_boot`` give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def _check_lengths(gold: Sequence[str], pred: Sequence[str | None]) -> None:
    if len(gold) != len(pred):
        raise ValueError(
            f"gold and pred must have the same length (got {len(gold)} and {len(pred)})"
        )


def check_labels(labels: Sequence[str]) -> list[str]:
    """``labels`` as a list; raises ValueError when it is empty or has duplicates."""
    labels = list(labels)
    if not labels:
        raise ValueError("labels is empty: pass the evaluated personas")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels has duplicates: {labels}")
    return labels


def check_bootstrap(n_boot: int, level: float) -> None:
    """Raise ValueError for ``n_boot < 1`` or ``level`` outside (0, 1)."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1 (got {n_boot})")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1) (got {level})")


def f1_of_counts(tp: FloatArray, fp: FloatArray, fn: FloatArray) -> FloatArray:
    """Per-label F1 ``2tp / (2tp + fp + fn)``, 0 where that is 0/0 (the one F1 formula)."""
    denom = 2 * tp + fp + fn
    f1: FloatArray = np.divide(
        2 * tp, denom, out=np.zeros_like(denom, dtype=float), where=denom > 0
    )
    return f1


@dataclass(frozen=True)
class UnitCounts:
    """Confusion counts per bootstrap unit and label, for exact and resampled F1.

    Attributes:
        units: sorted unit ids, one per row of the count arrays.
        tp: true positives, shape (units, labels).
        fp: false positives per unit and label.
        fn: false negatives per unit and label.
    """

    units: NDArray[np.str_]
    tp: FloatArray
    fp: FloatArray
    fn: FloatArray

    @classmethod
    def build(
        cls,
        gold: Sequence[str],
        pred: Sequence[str | None],
        units: Sequence[str],
        labels: Sequence[str],
    ) -> UnitCounts:
        """Count per unit; a prediction outside ``labels`` (or None) is a miss.

        Raises:
            ValueError: ``gold``, ``pred`` and ``units`` differ in length.
        """
        _check_lengths(gold, pred)
        if len(units) != len(gold):
            raise ValueError(
                f"units must have one entry per sample (got {len(units)} for {len(gold)})"
            )
        ids, inverse = np.unique(np.asarray([str(u) for u in units], dtype=str),
                                 return_inverse=True)
        index = {label: i for i, label in enumerate(labels)}
        shape = (len(ids), len(labels))
        tp, fp, fn = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        for u, g, p in zip(inverse, gold, pred, strict=True):
            gi = index.get(g)
            pi = index.get(p) if p is not None else None
            if gi is not None and gi == pi:
                tp[u, gi] += 1
                continue
            if gi is not None:
                fn[u, gi] += 1
            if pi is not None:
                fp[u, pi] += 1
        return cls(ids, tp, fp, fn)

    def _total(self, weights: FloatArray | None) -> tuple[FloatArray, FloatArray, FloatArray]:
        if weights is None:
            return self.tp.sum(axis=0), self.fp.sum(axis=0), self.fn.sum(axis=0)
        return weights @ self.tp, weights @ self.fp, weights @ self.fn

    def f1(self, weights: FloatArray | None = None) -> FloatArray:
        """Per-label F1 of the data, or of a resample given unit ``weights`` (draw counts)."""
        return f1_of_counts(*self._total(weights))

    def support(self, weights: FloatArray | None = None) -> FloatArray:
        """Gold samples per label (tp + fn)."""
        tp, _, fn = self._total(weights)
        return tp + fn

    def macro_f1(self, weights: FloatArray | None = None, *, present_only: bool = False) -> float:
        """Macro-F1 over all labels, or (``present_only``) over labels with gold samples.

        ``nan`` with no units, or with ``present_only`` and no gold sample of any label.
        """
        if len(self.units) == 0:
            return float("nan")
        f1 = self.f1(weights)
        if present_only:
            f1 = f1[self.support(weights) > 0]
        return float(f1.mean()) if f1.size else float("nan")


def macro_f1(
    gold: Sequence[str],
    pred: Sequence[str | None],
    labels: Sequence[str],
    *,
    present_only: bool = False,
) -> float:
    """Macro-F1 over ``labels`` (see the module conventions).

    Args:
        gold: Gold persona per sample.
        pred: Predicted persona per sample; ``None`` or a label not in ``labels`` is a miss.
        labels: The evaluated personas; the average is over exactly these.
        present_only: Average over the labels with gold samples only (the study's
            convention; default False).

    Returns:
        Macro-F1 in [0, 1], or ``nan`` when there are no samples.

    Raises:
        ValueError: ``gold`` and ``pred`` differ in length, or ``labels`` is empty or has
            duplicates.
    """
    _check_lengths(gold, pred)
    labels = check_labels(labels)
    counts = UnitCounts.build(gold, pred, ["all"] * len(gold), labels)
    return counts.macro_f1(present_only=present_only)


def per_persona_f1(
    gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]
) -> dict[str, tuple[float, int]]:
    """F1 and support (number of gold samples) of each label.

    Returns:
        ``{label: (f1, n)}`` in ``labels`` order. With no samples at all every F1 is
        ``nan`` and every n is 0; a label with no gold samples (but other data) has n 0 and
        F1 0.
    """
    _check_lengths(gold, pred)
    labels = check_labels(labels)
    if len(gold) == 0:
        return {label: (float("nan"), 0) for label in labels}
    counts = UnitCounts.build(gold, pred, ["all"] * len(gold), labels)
    f1, n = counts.f1(), counts.support()
    return {label: (float(f1[i]), int(n[i])) for i, label in enumerate(labels)}


def percentile_ci(values: FloatArray, level: float) -> tuple[float, float]:
    """The ``(1-level)/2`` and ``1-(1-level)/2`` percentiles of the finite ``values``."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (float("nan"), float("nan"))
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return (float(low), float(high))


def bootstrap(
    stat: Callable[..., float],
    sizes: Sequence[int],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """The bootstrap engine: percentile interval of ``stat`` over resampled units.

    Each resample draws, for each independent unit set ``i``, ``sizes[i]`` units with
    replacement (in set order, from one seeded generator) and calls
    ``stat(w_0, w_1, ...)`` with ``w_i`` the number of times each unit of set ``i`` was
    drawn. One set is the usual bootstrap; two sets resample two cells independently (the
    ID-minus-OOD gap); a paired comparison passes one set of shared units.

    Args:
        stat: Statistic of the weight vectors; ``nan`` results are ignored.
        sizes: Number of units of each independent set.
        n_boot: Resamples (default 1000), >= 1.
        seed: Generator seed (default 0).
        level: Interval coverage in (0, 1) (default 0.95).

    Returns:
        ``(low, high)``; ``(nan, nan)`` when a set is empty or every resample is ``nan``.
        With a single unit every resample equals the data (zero width).

    Raises:
        ValueError: bad ``n_boot`` or ``level``.
    """
    check_bootstrap(n_boot, level)
    if not sizes or min(sizes) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot, dtype=float)
    for b in range(n_boot):
        weights = [
            np.bincount(rng.integers(0, k, size=k), minlength=k).astype(float) for k in sizes
        ]
        values[b] = stat(*weights)
    return percentile_ci(values, level)


def macro_f1_ci(
    gold: Sequence[str],
    pred: Sequence[str | None],
    labels: Sequence[str],
    units: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    present_only: bool = False,
) -> tuple[float, float, float]:
    """Macro-F1 with a seeded percentile bootstrap interval over ``units``.

    Args:
        gold: Gold persona per sample.
        pred: Predicted persona per sample (``None`` / other labels are misses).
        labels: The evaluated personas.
        units: Bootstrap unit of each sample (its prompt/scenario id for a cluster
            bootstrap, its family, or a per-row key for the plain row bootstrap).
        n_boot: Resamples (default 1000).
        seed: Generator seed (default 0).
        level: Interval coverage (default 0.95).
        present_only: The study's label set (see :func:`macro_f1`).

    Returns:
        ``(macro_f1, low, high)``; all ``nan`` for empty input.

    Raises:
        ValueError: mismatched lengths, bad ``labels`` or bad bootstrap settings.
    """
    labels = check_labels(labels)
    check_bootstrap(n_boot, level)
    counts = UnitCounts.build(gold, pred, units, labels)
    point = counts.macro_f1(present_only=present_only)
    low, high = bootstrap(
        lambda w: counts.macro_f1(w, present_only=present_only),
        [len(counts.units)],
        n_boot=n_boot,
        seed=seed,
        level=level,
    )
    return (point, low, high)


def gap_ci(
    id_counts: UnitCounts,
    ood_counts: UnitCounts,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """ID-minus-OOD macro-F1 gap; the two cells' units are resampled independently.

    Returns:
        ``(gap, low, high)``; all ``nan`` when either cell has no units.
    """
    if len(id_counts.units) == 0 or len(ood_counts.units) == 0:
        return (float("nan"), float("nan"), float("nan"))
    point = id_counts.macro_f1() - ood_counts.macro_f1()
    low, high = bootstrap(
        lambda w_id, w_ood: id_counts.macro_f1(w_id) - ood_counts.macro_f1(w_ood),
        [len(id_counts.units), len(ood_counts.units)],
        n_boot=n_boot,
        seed=seed,
        level=level,
    )
    return (point, low, high)


def _per_unit(hits: Sequence[float], units: Sequence[str]) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for h, u in zip(hits, units, strict=True):
        s, n = out.get(str(u), (0.0, 0.0))
        out[str(u)] = (s + float(h), n + 1.0)
    return out


def rate_diff_ci(
    cond: tuple[Sequence[float], Sequence[str]],
    base: tuple[Sequence[float], Sequence[str]],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float, int]:
    """Difference of two rates on shared units, with a paired bootstrap interval.

    Args:
        cond: ``(hits, units)`` of the condition: 1/0 per sample and its unit.
        base: the same for the reference (the base model).
        n_boot, seed, level: see :func:`bootstrap`.

    Returns:
        ``(difference, low, high, n_shared_units)`` over the units present in both; NaNs
        and 0 when they share none. A resample draws shared units and takes all samples of
        a drawn unit from both sides (paired).
    """
    c, b = _per_unit(*cond), _per_unit(*base)
    shared = sorted(set(c) & set(b))
    if not shared:
        return (float("nan"), float("nan"), float("nan"), 0)
    cs, cn = (np.asarray([c[u][i] for u in shared]) for i in (0, 1))
    bs, bn = (np.asarray([b[u][i] for u in shared]) for i in (0, 1))

    def diff(w: FloatArray) -> float:
        return float((w @ cs) / (w @ cn) - (w @ bs) / (w @ bn))

    point = diff(np.ones(len(shared)))
    low, high = bootstrap(diff, [len(shared)], n_boot=n_boot, seed=seed, level=level)
    return (point, low, high, len(shared))
