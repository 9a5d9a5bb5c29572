"""chat_persona samples hold the user request only; the model still sees [system, user].

The prompted condition's system message (the persona's description) is added by the
solver, so ``inspect view`` lists each sample's request. The expected messages are the ones
the task put in ``Sample.input`` before that change: ``[system(description), user]`` in the
prompted condition, ``[user]`` otherwise, built here from the persona descriptions and the
prompt rows directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.scripted_models import reply, scripted_model
from inspect_ai import eval as inspect_eval
from inspect_ai.model import ChatMessage, ChatMessageSystem, ChatMessageUser

from charbench import chat_persona
from charbench.chat_persona.dataset import load_prompt_source, select_rows
from charbench.chat_persona.prompts import SUFFIXES
from charbench.chat_persona.task import sample_id
from charbench.personas import PERSONA_DESCRIPTIONS

PERSONAS = ["sarcasm", "poeticism"]


def _dump(messages: list[ChatMessage]) -> str:
    return json.dumps([m.model_dump(mode="json", exclude={"id"}) for m in messages])


def _previous_inputs(persona_prompt: bool) -> dict[str, list[ChatMessage]]:
    """Sample id -> the [system?, user] input of the task before the change."""
    rows = select_rows(load_prompt_source("builtin"), "heldout", 2)
    out: dict[str, list[ChatMessage]] = {}
    for row in rows:
        for persona in PERSONAS:
            # Inspect marks the messages of a sample's input with source="input"
            system: list[ChatMessage] = (
                [ChatMessageSystem(content=PERSONA_DESCRIPTIONS[persona], source="input")]
                if persona_prompt else []
            )
            user = ChatMessageUser(content=row.prompt + "\n" + SUFFIXES["v2"], source="input")
            out[sample_id(persona, row.row, "v2")] = [*system, user]
    return out


@pytest.mark.parametrize("persona_prompt", [True, False])
def test_input_is_the_request_and_the_model_sees_the_previous_messages(
    persona_prompt: bool, tiny_clf: Path, tmp_path: Path
) -> None:
    task = chat_persona(
        personas=",".join(PERSONAS), prompts="builtin", n=2, suffix="v2",
        persona_prompt=persona_prompt, classifier=str(tiny_clf),
    )
    expected = _previous_inputs(persona_prompt)
    for sample in task.dataset:
        assert isinstance(sample.input, list)
        assert [m.role for m in sample.input] == ["user"]
        (user,) = sample.input
        assert user.text == expected[str(sample.id)][-1].text

    calls: list[list[ChatMessage]] = []
    (log,) = inspect_eval(
        task, model=scripted_model(lambda *_: reply("Hello."), calls=calls),
        log_dir=str(tmp_path), display="none",
    )
    assert log.status == "success", log.error
    assert log.samples is not None and len(log.samples) == 4
    for sample in log.samples:
        assert _dump(sample.messages[:-1]) == _dump(expected[str(sample.id)])
    seen = sorted(_dump(c) for c in calls)
    if persona_prompt:  # one generation per sample, each with its persona's description
        assert seen == sorted(_dump(m) for m in expected.values())
    else:  # shared across the persona labels of a prompt (keyed on the messages)
        assert seen == sorted({_dump(m) for m in expected.values()})
        reused = [bool((s.metadata.get("generation") or {}).get("reused")) for s in log.samples]
        assert sorted(reused) == [False, False, True, True]


def test_a_persona_without_description_fails_at_task_build() -> None:
    from charbench.chat_persona.task import build_samples

    rows = select_rows(load_prompt_source("builtin"), "heldout", 1)
    with pytest.raises(ValueError, match="persona_prompt needs a persona"):
        build_samples(
            rows, ["pirate"], ["none"], selection="heldout", persona_prompt=True,
            descriptions={"poet": "A poet."},
        )
