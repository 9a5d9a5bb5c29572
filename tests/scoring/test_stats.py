"""Statistics: equality with scikit-learn, bootstrap behaviour, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from charbench.personas import DEFAULT_PERSONAS
from charbench.scoring.stats import (
    UnitCounts,
    bootstrap,
    gap_ci,
    macro_f1,
    macro_f1_ci,
    per_persona_f1,
    rate_diff_ci,
)

LABELS = list(DEFAULT_PERSONAS)


def _noisy(
    n_prompts: int, accuracy: float, seed: int
) -> tuple[list[str], list[str | None], list[str]]:
    """One sample per persona per prompt, correct with probability ``accuracy``."""
    rng = np.random.default_rng(seed)
    gold, pred, clusters = [], [], []
    for k in range(n_prompts):
        for p in LABELS:
            gold.append(p)
            pred.append(p if rng.random() < accuracy else str(rng.choice(LABELS)))
            clusters.append(f"dove-{k:05d}")
    return gold, pred, clusters


def test_macro_f1_equals_sklearn_on_random_predictions() -> None:
    rng = np.random.default_rng(1)
    choices = [*LABELS, "misalignment", None]
    for _ in range(20):
        n = int(rng.integers(1, 200))
        gold = [str(x) for x in rng.choice(LABELS, size=n)]
        pred = [choices[i] for i in rng.integers(0, len(choices), size=n)]
        expected = f1_score(
            gold,
            ["<none>" if p is None else p for p in pred],
            labels=LABELS,
            average="macro",
            zero_division=0,
        )
        assert macro_f1(gold, pred, LABELS) == pytest.approx(expected, abs=1e-12)
        units = [str(u) for u in rng.integers(0, 5, size=n)]
        counts = UnitCounts.build(gold, pred, units, LABELS)
        assert counts.macro_f1() == pytest.approx(expected, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["a", "b", "c", "x", None])),
        min_size=1,
        max_size=40,
    )
)
def test_resampled_counts_equal_sklearn_on_the_resampled_rows(
    pairs: list[tuple[str, str | None]],
) -> None:
    """A weighted count statistic is the F1 of the rows a resample would repeat."""
    gold = [g for g, _ in pairs]
    pred = [p for _, p in pairs]
    labels = ["a", "b", "c"]
    units = [f"u{i % 4}" for i in range(len(gold))]
    counts = UnitCounts.build(gold, pred, units, labels)
    weights = np.arange(len(counts.units), dtype=float) % 3
    by_unit = {u: int(w) for u, w in zip(counts.units, weights, strict=True)}
    rep_gold = [g for g, u in zip(gold, units, strict=True) for _ in range(by_unit[u])]
    rep_pred = [p for p, u in zip(pred, units, strict=True) for _ in range(by_unit[u])]
    if not rep_gold:
        return
    expected = f1_score(
        rep_gold, ["<none>" if x is None else x for x in rep_pred], labels=labels,
        average="macro", zero_division=0,
    )
    assert counts.macro_f1(weights) == pytest.approx(expected, abs=1e-12)


def test_none_and_unevaluated_predictions_are_misses_for_the_gold_class() -> None:
    gold = ["sarcasm", "sarcasm", "humor", "humor"]
    pred: list[str | None] = ["sarcasm", None, "humor", "misalignment"]
    per = per_persona_f1(gold, pred, ["sarcasm", "humor"])
    # recall 1/2, precision 1 for both -> F1 2/3
    assert per["sarcasm"] == (pytest.approx(2 / 3), 2)
    assert per["humor"] == (pytest.approx(2 / 3), 2)
    assert macro_f1(gold, pred, ["sarcasm", "humor"]) == pytest.approx(2 / 3)


def test_edge_cases() -> None:
    # all wrong
    assert macro_f1(["a", "b"], ["b", "a"], ["a", "b"]) == 0.0
    # all right
    assert macro_f1(["a", "b"], ["a", "b"], ["a", "b"]) == 1.0
    # one persona only: F1 of the only label
    assert macro_f1(["a", "a", "a"], ["a", None, "a"], ["a"]) == pytest.approx(0.8)
    # a persona never predicted (and never gold) still counts, as 0
    assert macro_f1(["a", "a"], ["a", "a"], ["a", "b"]) == pytest.approx(0.5)
    per = per_persona_f1(["a", "a"], ["a", "a"], ["a", "b"])
    assert per == {"a": (1.0, 2), "b": (0.0, 0)}
    # a persona never predicted but present
    assert macro_f1(["a", "b"], ["a", "a"], ["a", "b"]) == pytest.approx((2 / 3 + 0) / 2)
    # empty input
    assert math.isnan(macro_f1([], [], ["a"]))
    assert all(math.isnan(v) for v in macro_f1_ci([], [], ["a"], []))
    assert per_persona_f1([], [], ["a"])["a"][1] == 0


def test_bad_input_is_rejected_with_clear_errors() -> None:
    with pytest.raises(ValueError, match="same length"):
        macro_f1(["a"], [], ["a"])
    with pytest.raises(ValueError, match="labels is empty"):
        macro_f1(["a"], ["a"], [])
    with pytest.raises(ValueError, match="duplicates"):
        macro_f1(["a"], ["a"], ["a", "a"])
    with pytest.raises(ValueError, match="units"):
        macro_f1_ci(["a"], ["a"], ["a"], ["c1", "c2"])
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap(lambda w: 0.0, [1], n_boot=0)
    with pytest.raises(ValueError, match="level"):
        bootstrap(lambda w: 0.0, [1], level=1.5)


def test_ci_contains_point_and_is_deterministic() -> None:
    gold, pred, clusters = _noisy(60, 0.6, seed=3)
    point, low, high = macro_f1_ci(gold, pred, LABELS, clusters)
    assert low < point < high
    assert macro_f1_ci(gold, pred, LABELS, clusters) == (point, low, high)
    # a different seed gives a (slightly) different interval around the same point
    other = macro_f1_ci(gold, pred, LABELS, clusters, seed=1)
    assert other[0] == point and other[1:] != (low, high)


def test_ci_narrows_with_more_data() -> None:
    widths = []
    for n in (20, 80, 320):
        gold, pred, clusters = _noisy(n, 0.6, seed=5)
        _, low, high = macro_f1_ci(gold, pred, LABELS, clusters, n_boot=400)
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] < widths[0] / 2.5


def test_cluster_resampling_is_wider_when_clusters_are_correlated() -> None:
    # Whole prompts are easy or hard: every persona's sample of a prompt is right or wrong
    # together, so rows are strongly correlated within a prompt.
    rng = np.random.default_rng(7)
    gold, pred, clusters = [], [], []
    for k in range(60):
        easy = rng.random() < 0.5
        for p in LABELS:
            gold.append(p)
            pred.append(p if easy else LABELS[(LABELS.index(p) + 1) % len(LABELS)])
            clusters.append(f"prompt-{k}")
    rows = [str(i) for i in range(len(gold))]
    _, c_low, c_high = macro_f1_ci(gold, pred, LABELS, clusters)
    _, r_low, r_high = macro_f1_ci(gold, pred, LABELS, rows)
    assert (c_high - c_low) > 1.5 * (r_high - r_low)


def test_bootstrap_draws_whole_units_independently_per_set() -> None:
    seen: list[tuple[np.ndarray, ...]] = []

    def stat(*weights: np.ndarray) -> float:
        seen.append(tuple(w.copy() for w in weights))
        return 0.0

    bootstrap(stat, [3, 5], n_boot=50)
    assert len(seen) == 50
    for w3, w5 in seen:
        # each set draws as many units as it has, with replacement
        assert (w3.sum(), w5.sum()) == (3, 5)
        assert len(w3) == 3 and len(w5) == 5
    # the sets are not drawn in lock step
    assert any(list(w3) != list(w5[:3]) for w3, w5 in seen)


def test_unit_order_does_not_change_the_interval() -> None:
    gold, pred, clusters = _noisy(30, 0.6, seed=4)
    order = np.random.default_rng(0).permutation(len(gold))
    shuffled = [[x[i] for i in order] for x in (gold, pred, clusters)]
    assert macro_f1_ci(gold, pred, LABELS, clusters) == macro_f1_ci(*shuffled[:2], LABELS,
                                                                     shuffled[2])


def test_single_cluster_gives_zero_width_interval() -> None:
    gold, pred = ["a", "b", "a"], ["a", "a", "a"]
    point, low, high = macro_f1_ci(gold, pred, ["a", "b"], ["only"] * 3)
    assert low == high == pytest.approx(point)


def test_resample_missing_a_persona_scores_it_zero() -> None:
    # With row resampling on tiny data some resamples lack persona b entirely: its F1 is 0
    # there (documented), so the lower bound can fall below any "dropped label" value.
    gold, pred = ["a", "a", "b"], ["a", "a", "b"]
    _, low, high = macro_f1_ci(gold, pred, ["a", "b"], ["1", "2", "3"])
    assert high == 1.0
    assert low == pytest.approx(0.5)


def test_present_only_is_the_studys_convention() -> None:
    # persona c never emailed: charbench scores it 0, the study leaves it out
    gold, pred = ["a", "a", "b"], ["a", "b", "b"]
    labels = ["a", "b", "c"]
    ours = macro_f1(gold, pred, labels)
    study = macro_f1(gold, pred, labels, present_only=True)
    sk = f1_score(gold, pred, labels=["a", "b"], average="macro", zero_division=0)
    assert study == pytest.approx(sk)
    assert ours == pytest.approx(sk * 2 / 3)


def test_gap_and_paired_rate_difference() -> None:
    gold, pred, clusters = _noisy(40, 0.8, seed=1)
    g2, p2, c2 = _noisy(30, 0.3, seed=2)
    a = UnitCounts.build(gold, pred, clusters, LABELS)
    b = UnitCounts.build(g2, p2, [f"s{c}" for c in c2], LABELS)
    gap, low, high = gap_ci(a, b, n_boot=300)
    assert gap == pytest.approx(macro_f1(gold, pred, LABELS) - macro_f1(g2, p2, LABELS))
    assert low < gap < high and low > 0
    hits = [1.0] * 6 + [0.0] * 2
    units = ["x", "x", "y", "y", "z", "z", "w", "w"]
    base_hits = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    diff, lo, hi, k = rate_diff_ci((hits, units), (base_hits, units[:6]), n_boot=200)
    assert k == 3  # only shared units: w has no base samples
    assert diff == pytest.approx(1.0 - 1 / 6)
    assert lo <= diff <= hi
