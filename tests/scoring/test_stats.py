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
    bootstrap_ci,
    encode,
    macro_f1,
    macro_f1_ci,
    macro_f1_codes,
    per_persona_f1,
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
        g, p = encode(gold, pred, LABELS)
        assert macro_f1_codes(g, p, len(LABELS)) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["a", "b", "c", "x", None])),
        min_size=1,
        max_size=40,
    )
)
def test_fast_bootstrap_statistic_matches_sklearn(pairs: list[tuple[str, str | None]]) -> None:
    gold = [g for g, _ in pairs]
    pred = [p for _, p in pairs]
    labels = ["a", "b", "c"]
    g, p = encode(gold, pred, labels)
    assert macro_f1_codes(g, p, 3) == pytest.approx(macro_f1(gold, pred, labels), abs=1e-12)


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
    with pytest.raises(ValueError, match="clusters"):
        macro_f1_ci(["a"], ["a"], ["a"], ["c1", "c2"])
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(lambda i: 0.0, ["a"], n_boot=0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(lambda i: 0.0, ["a"], level=1.5)
    with pytest.raises(ValueError, match="resample"):
        bootstrap_ci(lambda i: 0.0, ["a"], resample="prompt")


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
    _, c_low, c_high = macro_f1_ci(gold, pred, LABELS, clusters, resample="cluster")
    _, r_low, r_high = macro_f1_ci(gold, pred, LABELS, clusters, resample="row")
    assert (c_high - c_low) > 1.5 * (r_high - r_low)


def test_cluster_bootstrap_keeps_clusters_whole() -> None:
    clusters = ["a", "a", "a", "b", "c", "c"]
    seen: list[np.ndarray] = []

    def stat(idx: np.ndarray) -> float:
        seen.append(idx.copy())
        return float(len(idx))

    bootstrap_ci(stat, clusters, n_boot=50)
    groups = {"a": {0, 1, 2}, "b": {3}, "c": {4, 5}}
    for idx in seen:
        counts = np.bincount(idx, minlength=6)
        # within a cluster every row is drawn equally often
        for rows in groups.values():
            assert len({counts[r] for r in rows}) == 1
        assert counts.sum() == len(idx)
    # row resampling draws exactly n rows each time
    seen.clear()
    bootstrap_ci(stat, clusters, n_boot=20, resample="row")
    assert all(len(idx) == 6 for idx in seen)


def test_single_cluster_gives_zero_width_interval() -> None:
    gold, pred = ["a", "b", "a"], ["a", "a", "a"]
    point, low, high = macro_f1_ci(gold, pred, ["a", "b"], ["only"] * 3)
    assert low == high == pytest.approx(point)


def test_resample_missing_a_persona_scores_it_zero() -> None:
    # With row resampling on tiny data some resamples lack persona b entirely: its F1 is 0
    # there (documented), so the lower bound can fall below any "dropped label" value.
    gold, pred = ["a", "a", "b"], ["a", "a", "b"]
    _, low, high = macro_f1_ci(gold, pred, ["a", "b"], ["1", "2", "3"], resample="row")
    assert high == 1.0
    assert low == pytest.approx(0.5)
