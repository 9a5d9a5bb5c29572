"""The hf and zeroshot classifier backends, resolution and label validation (offline)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures.tiny_classifier import (
    build_tiny_classifier,
    build_tiny_classifier_missing_label,
    install_in_hf_cache,
)
from inspect_ai.model import get_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from charbench.personas import DEFAULT_PERSONAS, PERSONAS
from charbench.scoring import (
    ALLOW_PICKLE_ENV,
    check_classifier_labels,
    classifier_labels,
    get_classifier,
    resolve_classifier,
)
from charbench.scoring.classifiers import HFClassifier

TEXTS = [
    "Oh wonderful, another meeting that could have been an email.",
    "Dear friend, you matter so much to me.",
    "Let x be the number of tasks; the expected time is the sum over all tasks.",
    "ok",
    "I am so sorry, I deeply regret the mistake " * 5,
    "The moon spills silver on the quiet river of the night.",
    "Whatever works, no big deal.",
    "Quick! Let's just do it right now, no time to plan!",
]


@pytest.fixture(scope="module")
def clf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("clf") / "tiny")


def _manual_probs(path: Path, texts: list[str], max_length: int) -> np.ndarray:
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    rows = []
    for t in texts:  # one at a time: no padding at all
        enc = tok(t, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            rows.append(torch.softmax(model(**enc).logits.float(), -1)[0].numpy())
    return np.stack(rows)


def test_labels_come_from_id2label_in_order(clf_path: Path) -> None:
    clf = get_classifier(str(clf_path), device="cpu")
    assert clf.labels == list(PERSONAS)
    assert clf.name == str(clf_path)
    assert classifier_labels(str(clf_path)) == list(PERSONAS)


def test_probs_and_argmax_match_a_plain_transformers_forward(clf_path: Path) -> None:
    clf = get_classifier(str(clf_path), device="cpu")
    got = clf.classify_batch(TEXTS)
    expected = _manual_probs(clf_path, TEXTS, 512)
    for row, exp in zip(got, expected, strict=True):
        assert list(row) == list(PERSONAS)
        probs = np.array([row[p] for p in PERSONAS])
        assert probs.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(probs, exp, atol=1e-5)
        assert max(row, key=row.get) == PERSONAS[int(exp.argmax())]  # type: ignore[arg-type]
    assert clf.classify_batch([]) == []
    # the random classifier is not constant: it tells these texts apart
    assert len({max(r, key=r.get) for r in got}) > 1  # type: ignore[arg-type]


def test_truncation_at_max_length(clf_path: Path) -> None:
    long_text = " ".join(["sorry I regret the mistake"] * 30 + ["dear friend"] * 40)
    short = get_classifier(str(clf_path), device="cpu", max_length=16)
    full = get_classifier(str(clf_path), device="cpu")
    assert short is not full
    got_short = short.classify_batch([long_text])[0]
    np.testing.assert_allclose(
        [got_short[p] for p in PERSONAS], _manual_probs(clf_path, [long_text], 16)[0], atol=1e-5
    )
    # only the first 16 tokens count: appending text after them changes nothing
    assert short.classify_batch([long_text + " the moon spills silver"])[0] == pytest.approx(
        got_short, abs=1e-6
    )
    got_full = full.classify_batch([long_text])[0]
    assert not np.allclose([got_short[p] for p in PERSONAS], [got_full[p] for p in PERSONAS])


def test_max_length_above_the_model_limit_is_lowered(clf_path: Path) -> None:
    clf = get_classifier(str(clf_path), device="cpu", max_length=100_000)
    assert isinstance(clf, HFClassifier)
    assert clf.max_length == 512
    # a text far longer than the limit still classifies
    assert len(clf.classify_batch(["word " * 3000])) == 1


def test_concurrent_classify_is_batched_and_equals_one_at_a_time(clf_path: Path) -> None:
    clf = get_classifier(str(clf_path), device="cpu", max_batch_tokens=100_000)
    texts = [f"{TEXTS[i % len(TEXTS)]} {'again ' * (i % 7)}" for i in range(48)]
    singles = [clf.classify_batch([t])[0] for t in texts]
    clf.worker_batches.clear()  # type: ignore[attr-defined]

    async def run() -> list[dict[str, float]]:
        return list(await asyncio.gather(*(clf.classify(t) for t in texts)))

    together = asyncio.run(run())
    for a, b in zip(together, singles, strict=True):
        assert a == pytest.approx(b, abs=1e-5)
        assert max(a, key=a.get) == max(b, key=b.get)  # type: ignore[arg-type]
    batches = list(clf.worker_batches)  # type: ignore[attr-defined]
    assert sum(batches) == len(texts)
    assert max(batches) > 1  # concurrent callers shared forward passes


def test_token_budget_splits_batches_without_changing_results(clf_path: Path) -> None:
    big = get_classifier(str(clf_path), device="cpu", max_batch_tokens=100_000)
    small = get_classifier(str(clf_path), device="cpu", max_batch_tokens=40)
    a = big.classify_batch(TEXTS)
    b = small.classify_batch(TEXTS)
    for x, y in zip(a, b, strict=True):
        assert x == pytest.approx(y, abs=1e-5)


def test_worker_errors_reach_the_caller(clf_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clf = get_classifier(str(clf_path), device="cpu")
    assert isinstance(clf, HFClassifier)

    def boom(items: list[object]) -> np.ndarray:
        raise RuntimeError("forward failed")

    monkeypatch.setattr(clf, "_forward", boom)
    with pytest.raises(RuntimeError, match="forward failed"):
        asyncio.run(clf.classify("hello"))


def test_label_validation(tmp_path: Path, clf_path: Path) -> None:
    check_classifier_labels(str(clf_path), list(DEFAULT_PERSONAS))
    missing = build_tiny_classifier_missing_label(tmp_path / "missing", missing="poeticism")
    with pytest.raises(ValueError) as err:
        check_classifier_labels(str(missing), list(DEFAULT_PERSONAS))
    msg = str(err.value)
    assert "poeticism" in msg.split("its labels")[0]
    assert "sarcasm, humor" in msg  # the labels it has
    check_classifier_labels(str(missing), ["sarcasm", "humor"])
    generic = build_tiny_classifier(tmp_path / "generic", labels=["LABEL_0", "LABEL_1"])
    with pytest.raises(ValueError, match="generic labels"):
        check_classifier_labels(str(generic), ["sarcasm"])
    with pytest.raises(ValueError, match="could not read the config"):
        check_classifier_labels(str(tmp_path / "nowhere"), ["sarcasm"])
    with pytest.raises(ValueError, match="no personas"):
        check_classifier_labels(str(clf_path), [])


def test_zeroshot_label_validation() -> None:
    check_classifier_labels("zeroshot", list(PERSONAS))
    with pytest.raises(ValueError, match="description"):
        check_classifier_labels("zeroshot", ["sarcasm", "pirate"])
    with pytest.raises(ValueError, match="zeroshot:<"):
        check_classifier_labels("zeroshot:", ["sarcasm"])
    assert classifier_labels("zeroshot") == list(PERSONAS)


def test_pickled_weights_need_an_explicit_opt_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = build_tiny_classifier(tmp_path / "pickled", safetensors=False)
    assert not list(path.glob("*.safetensors"))
    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    with pytest.raises(ValueError, match=ALLOW_PICKLE_ENV):
        get_classifier(str(path), device="cpu")
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    assert get_classifier(str(path), device="cpu").labels == list(PERSONAS)


def test_resolve_classifier() -> None:
    assert resolve_classifier(" /some/path ", None) == "/some/path"
    assert resolve_classifier("zeroshot", None) == "zeroshot"
    with pytest.raises(ValueError, match="comma"):
        resolve_classifier(["a", "b"], None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="-T classifier="):
        resolve_classifier(None, None)
    with pytest.raises(ValueError, match=r"-T classifier=HUB_ID_OR_PATH.*zeroshot"):
        resolve_classifier(None, get_model("mockllm/model"))
    for name, slug in [
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "llama-3.1-8b-it"),
        ("Qwen/Qwen2.5-7B-Instruct", "qwen-2.5-7b-it"),
        ("google/gemma-3-4b-it", "gemma-3-4b-it"),
    ]:
        model = get_model(f"mockllm/{name}")
        assert resolve_classifier(None, model) == f"maius/{slug}-pt-classifier"


@pytest.mark.slow
def test_hub_id_resolves_from_an_offline_cache(clf_path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    install_in_hf_cache(clf_path, "maius/llama-3.1-8b-it-pt-classifier", cache)
    code = textwrap.dedent(
        """
        from charbench.scoring import check_classifier_labels, get_classifier
        spec = "maius/llama-3.1-8b-it-pt-classifier"
        check_classifier_labels(spec, ["sarcasm", "poeticism"])
        clf = get_classifier(spec, device="cpu")
        print(clf.labels[0], len(clf.classify_batch(["hello there"])))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("sarcasm 1")


def test_batch_plan_respects_budgets_and_limits_padding(clf_path: Path) -> None:
    clf = get_classifier(str(clf_path), device="cpu", max_batch_tokens=4096)
    assert isinstance(clf, HFClassifier)
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(5, 500, size=300)]
    plan = clf._plan(lengths)
    assert sorted(i for chunk in plan for i in chunk) == list(range(300))
    for chunk in plan:
        longest = max(lengths[i] for i in chunk)
        assert len(chunk) <= clf.max_batch_size
        assert len(chunk) == 1 or longest * len(chunk) <= clf.max_batch_tokens
        real = sum(lengths[i] for i in chunk)
        # once a pass is big enough to matter, at most ~25% of it is padding
        if real - longest >= clf.min_chunk_tokens:
            assert longest * len(chunk) - real <= clf.max_pad_fraction * longest * len(chunk)
    # a single text longer than the budget still gets its own pass
    assert clf._plan([10_000, 3]) == [[1], [0]]
