"""Inspect metrics over hand-built persona scores (including several epochs)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from inspect_ai.scorer import Metric, SampleScore, Score
from inspect_ai.scorer._metric import metric_scores

from charbench.personas import DEFAULT_PERSONAS
from charbench.scoring import agentic_metrics, macro_f1, macro_f1_ci, persona_metrics

LABELS = list(DEFAULT_PERSONAS)


def _score(
    gold: str,
    pred: str | None,
    cluster: str,
    *,
    outcome: str = "replied",
    agentic: bool = False,
    sample_id: str | None = None,
    labels: list[str] | None = None,
) -> SampleScore:
    md: dict[str, Any] = {
        "gold": gold,
        "pred": pred,
        "probs": {},
        "labels": labels or LABELS,
        "cluster": cluster,
        "classifier": "test",
        "restrict": False,
        "outcome": outcome,
        "agentic": agentic,
    }
    return SampleScore(
        score=Score(value=float(pred == gold), answer=pred or "", metadata=md),
        sample_id=sample_id or f"{gold}-{cluster}",
    )


def compute(m: Metric, scores: list[SampleScore]) -> dict[str, float]:
    result = m(scores)  # type: ignore[arg-type]
    assert isinstance(result, dict)
    return {str(k): float(v) for k, v in result.items()}


def _meta(s: SampleScore) -> dict[str, Any]:
    assert s.score.metadata is not None
    return s.score.metadata


def _random_scores(n_prompts: int, epochs: int, seed: int) -> list[SampleScore]:
    rng = np.random.default_rng(seed)
    out = []
    for epoch in range(epochs):
        for k in range(n_prompts):
            for p in LABELS:
                r = rng.random()
                pred = p if r < 0.5 else (None if r < 0.6 else str(rng.choice(LABELS)))
                # same sample id in every epoch, as Inspect reports unreduced scores
                s = _score(p, pred, f"dove-{k}", sample_id=f"{p}-{k:04d}")
                _meta(s)["epoch"] = epoch
                out.append(s)
    return out


def test_metrics_declare_unreduced_scores() -> None:
    assert metric_scores(persona_metrics()) == "unreduced"
    assert metric_scores(agentic_metrics()) == "unreduced"


def test_persona_metrics_pool_every_epoch_and_equal_sklearn() -> None:
    scores = _random_scores(n_prompts=15, epochs=3, seed=0)
    result = compute(persona_metrics(), scores)
    gold = [_meta(s)["gold"] for s in scores]
    pred = [_meta(s)["pred"] for s in scores]
    clusters = [_meta(s)["cluster"] for s in scores]
    point, low, high = macro_f1_ci(gold, pred, LABELS, clusters)
    assert result["macro_f1"] == pytest.approx(point)
    assert (result["macro_f1_ci_low"], result["macro_f1_ci_high"]) == (low, high)
    # the first epoch alone would give a different number
    first = scores[: 15 * len(LABELS)]
    assert result["macro_f1"] != pytest.approx(
        macro_f1(gold[: len(first)], pred[: len(first)], LABELS)
    )
    assert result["accuracy"] == pytest.approx(
        np.mean([g == p for g, p in zip(gold, pred, strict=True)])
    )
    for p in LABELS:
        assert result[f"n_{p}"] == 45.0
        assert 0.0 <= result[f"f1_{p}"] <= 1.0
    assert result["macro_f1_ci_low"] <= result["macro_f1"] <= result["macro_f1_ci_high"]
    # same scores, same CI
    assert compute(persona_metrics(), scores) == result


def test_row_resampling_option_changes_the_interval() -> None:
    scores = _random_scores(n_prompts=15, epochs=2, seed=1)
    by_cluster = compute(persona_metrics(), scores)
    by_row = compute(persona_metrics(resample="row"), scores)
    assert by_cluster["macro_f1"] == by_row["macro_f1"]
    assert by_cluster["macro_f1_ci_low"] != by_row["macro_f1_ci_low"]


def test_empty_replies_count_as_misses() -> None:
    scores = [
        _score("sarcasm", "sarcasm", "c1"),
        _score("sarcasm", None, "c2", outcome="empty"),
        _score("humor", "humor", "c1"),
        _score("humor", "humor", "c2"),
    ]
    result = compute(persona_metrics(), scores)
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["n_sarcasm"] == 2.0
    assert result["f1_sarcasm"] == pytest.approx(2 / 3)


def test_unscored_samples_are_left_out_and_no_scores_give_nan() -> None:
    scores = [_score("humor", "humor", "c1"), SampleScore(score=Score.unscored(), sample_id="x")]
    result = compute(persona_metrics(), scores)
    assert result["n_humor"] == 1.0
    empty = compute(persona_metrics(), [])
    assert all(math.isnan(v) for v in empty.values())


def test_foreign_scores_are_rejected() -> None:
    bad = SampleScore(score=Score(value=1.0, metadata={"labels": LABELS}), sample_id="s")
    with pytest.raises(ValueError, match="gold"):
        compute(persona_metrics(), [bad])
    with pytest.raises(ValueError, match="labels"):
        compute(
            persona_metrics(),
            [SampleScore(score=Score(value=1.0, metadata={"gold": "humor"}), sample_id="s")],
        )


def test_bad_metric_arguments() -> None:
    with pytest.raises(ValueError, match="resample"):
        persona_metrics(resample="prompt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_boot"):
        agentic_metrics(n_boot=0)


def _agentic_scores() -> list[SampleScore]:
    rows = [
        # (gold, pred, outcome, scenario)
        ("sarcasm", "sarcasm", "emailed", "budget_v1"),
        ("sarcasm", None, "no_email", "budget_v2"),
        ("sarcasm", None, "malformed", "vendor_v1"),
        ("humor", "humor", "emailed", "budget_v1"),
        ("humor", "sarcasm", "emailed", "budget_v2"),
        ("humor", "humor", "emailed", "vendor_v1"),
        ("loving", None, "turn_limit", "budget_v1"),
        ("loving", "loving", "emailed", "budget_v2"),
    ]
    labels = ["sarcasm", "humor", "loving"]
    return [
        _score(g, p, c, outcome=o, agentic=True, labels=labels, sample_id=f"{g}-{c}")
        for g, p, o, c in rows
    ]


def test_agentic_metrics_survivor_and_intent_to_treat() -> None:
    scores = _agentic_scores()
    labels = ["sarcasm", "humor", "loving"]
    result = compute(agentic_metrics(), scores)
    emailed = [_meta(s) for s in scores if _meta(s)["outcome"] == "emailed"]
    survivors = macro_f1([m["gold"] for m in emailed], [m["pred"] for m in emailed], labels)
    everyone = macro_f1(
        [_meta(s)["gold"] for s in scores],
        [_meta(s)["pred"] for s in scores],
        labels,
    )
    assert result["macro_f1"] == pytest.approx(survivors)
    assert result["macro_f1_itt"] == pytest.approx(everyone)
    assert result["macro_f1_itt"] < result["macro_f1"]
    assert result["email_rate"] == pytest.approx(5 / 8)
    assert result["malformed_rate"] == pytest.approx(1 / 8)
    assert result["n_emailed"] == 5.0 and result["n_total"] == 8.0
    assert result["email_rate_sarcasm"] == pytest.approx(1 / 3)
    assert result["email_rate_humor"] == 1.0
    assert result["malformed_rate_sarcasm"] == pytest.approx(1 / 3)
    assert result["malformed_rate_loving"] == 0.0
    assert result["n_sarcasm"] == 1.0 and result["n_humor"] == 3.0  # emailed support
    assert result["accuracy"] == pytest.approx(4 / 5)
    assert result["accuracy_itt"] == pytest.approx(4 / 8)
    for key in ("macro_f1", "macro_f1_itt"):
        assert result[f"{key}_ci_low"] <= result[key] <= result[f"{key}_ci_high"]
    # persona_metrics dispatches to the agentic set for agentic scores
    assert compute(persona_metrics(), scores) == result


def test_agentic_metrics_when_nothing_was_emailed() -> None:
    scores = [
        _score("sarcasm", None, "sc1", outcome="no_email", agentic=True),
        _score("humor", None, "sc1", outcome="malformed", agentic=True),
    ]
    result = compute(agentic_metrics(), scores)
    assert math.isnan(result["macro_f1"])
    assert result["macro_f1_itt"] == 0.0
    assert result["email_rate"] == 0.0
    assert result["malformed_rate"] == 0.5


def test_every_outcome_is_counted_per_persona() -> None:
    labels = ["sarcasm", "humor"]
    rows = [
        ("sarcasm", "sarcasm", "emailed", "a"),
        ("sarcasm", None, "unparsed_call", "b"),
        ("sarcasm", None, "empty_after_tool", "c"),
        ("humor", None, "unparsed_call", "a"),
        ("humor", None, "turn_limit", "b"),
        ("humor", "humor", "emailed", "c"),
    ]
    scores = [
        _score(g, p, c, outcome=o, agentic=True, labels=labels, sample_id=f"{g}-{c}")
        for g, p, o, c in rows
    ]
    result = compute(agentic_metrics(), scores)
    assert result["unparsed_call_rate"] == pytest.approx(2 / 6)
    assert result["unparsed_call_rate_sarcasm"] == pytest.approx(1 / 3)
    assert result["empty_after_tool_rate_sarcasm"] == pytest.approx(1 / 3)
    assert result["empty_after_tool_rate_humor"] == 0.0
    assert result["turn_limit_rate_humor"] == pytest.approx(1 / 3)
    assert result["no_email_rate"] == 0.0 and "no_email_rate_humor" not in result
    assert result["email_rate"] == pytest.approx(2 / 6)
    # the rates of the recorded outcomes add up to one
    total = sum(result[k] for k in ("email_rate", "no_email_rate", "malformed_rate",
                                    "turn_limit_rate", "unparsed_call_rate",
                                    "empty_after_tool_rate"))
    assert total == pytest.approx(1.0)


def test_study_convention_leaves_out_personas_without_email() -> None:
    labels = ["sarcasm", "humor", "loving"]
    rows = [
        ("sarcasm", "sarcasm", "emailed", "a"),
        ("humor", "sarcasm", "emailed", "a"),
        ("humor", "humor", "emailed", "b"),
        ("loving", None, "no_email", "a"),
        ("loving", None, "malformed", "b"),
    ]
    scores = [
        _score(g, p, c, outcome=o, agentic=True, labels=labels, sample_id=f"{g}-{c}")
        for g, p, o, c in rows
    ]
    result = compute(agentic_metrics(), scores)
    gold, pred = ["sarcasm", "humor", "humor"], ["sarcasm", "sarcasm", "humor"]
    assert result["macro_f1"] == pytest.approx(macro_f1(gold, pred, labels))
    assert result["macro_f1_study"] == pytest.approx(macro_f1(gold, pred, labels[:2]))
    assert result["macro_f1_study"] > result["macro_f1"]


def test_family_resampling_keeps_families_whole() -> None:
    # 4 families x 5 variants; a family is all right or all wrong: family CI is wider
    rng = np.random.default_rng(3)
    scores = []
    for fam in range(8):
        good = rng.random() < 0.5
        for v in range(5):
            for p in LABELS:
                s = _score(p, p if good else LABELS[0], f"f{fam}_v{v}", agentic=False,
                           sample_id=f"{p}-f{fam}_v{v}")
                _meta(s)["family"] = f"f{fam}"
                scores.append(s)
    fam = compute(persona_metrics(resample="family"), scores)
    clu = compute(persona_metrics(resample="cluster"), scores)
    assert fam["macro_f1"] == clu["macro_f1"]
    assert (fam["macro_f1_ci_high"] - fam["macro_f1_ci_low"]) > (
        clu["macro_f1_ci_high"] - clu["macro_f1_ci_low"]
    )
    # without families, family resampling is cluster resampling
    for s in scores:
        _meta(s).pop("family")
    assert compute(persona_metrics(resample="family"), scores) == clu


def test_score_order_does_not_change_any_metric() -> None:
    scores = _random_scores(n_prompts=10, epochs=2, seed=4)
    for resample in ("row", "cluster"):
        m = persona_metrics(resample=resample)
        assert compute(m, scores) == compute(m, list(reversed(scores)))


def test_dct_malformed_rate_counts_the_study_ending_not_the_outcome() -> None:
    from charbench.contracts import ScoreFields
    from charbench.scoring.metrics import PersonaRows, agentic_summary

    def f(gold: str, pred: str | None, outcome: str, terminated: str) -> ScoreFields:
        return ScoreFields(
            gold=gold, pred=pred, labels=("a", "b"), cluster=f"c-{gold}-{terminated}",
            outcome=outcome, agentic=True, terminated=terminated,
        )

    fields = [
        f("a", "a", "emailed", "malformed"),  # emailed, then 4 unparseable turns
        f("a", None, "no_email", "malformed"),
        f("b", "b", "emailed", "final"),
        f("b", None, "no_email", "max_steps"),
    ]
    rows = PersonaRows.from_fields(fields, [f"s{i}" for i in range(4)], ["a", "b"])
    out = agentic_summary(rows, n_boot=50)
    assert out["email_rate"] == 0.5
    assert out["malformed_rate"] == 0.5
    assert out["malformed_rate_a"] == 1.0
    assert out["malformed_rate_b"] == 0.0
