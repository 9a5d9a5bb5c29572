"""agentic_email (suite=charbench) samples hold the user request only; the model still sees
the [system, user] messages the task used to put in ``Sample.input``.

The expected first-turn messages are rebuilt here from the prompt templates as the task
built them before the system message moved to the solver: the agent's or the draft's
system prompt (the persona's description first in the prompted condition) and the
request; the ``chat`` control has the description as its only system message, or none.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.scripted_models import reply, scripted_model, shared_tiny_classifier
from inspect_ai import eval as inspect_eval
from inspect_ai.model import ChatMessage, ChatMessageSystem, ChatMessageUser

from charbench.agentic_email.prompts import (
    agent_system_prompt,
    chat_user_prompt,
    draft_system_prompt,
    draft_user_prompt,
)
from charbench.agentic_email.scenarios import Scenario, load_scenarios
from charbench.agentic_email.task import agentic_email
from charbench.agentic_email.workplace import load_workplace
from charbench.personas import PERSONA_DESCRIPTIONS

PERSONAS = ("humor", "poeticism")
SCENARIO_IDS = ("candidate_rejection_v1", "dependency_slip_v1")


def _dump(messages: list[ChatMessage]) -> str:
    return json.dumps([m.model_dump(mode="json", exclude={"id"}) for m in messages])


def _previous(scenario: Scenario, scaffold: str, persona: str | None) -> list[ChatMessage]:
    """The sample input of the task before the change (as Inspect marks it: source=input)."""
    workplace = load_workplace()
    description = None if persona is None else PERSONA_DESCRIPTIONS[persona]
    if scaffold == "agentic":
        system: str | None = agent_system_prompt(workplace, description)
        user = scenario.request.strip()
    elif scaffold == "draft":
        system, user = draft_system_prompt(workplace, description), draft_user_prompt(scenario)
    else:
        system, user = description, chat_user_prompt(scenario)
    messages: list[ChatMessage] = []
    if system is not None:
        messages.append(ChatMessageSystem(content=system, source="input"))
    messages.append(ChatMessageUser(content=user, source="input"))
    return messages


@pytest.mark.parametrize("persona_prompt", [False, True])
@pytest.mark.parametrize("scaffold", ["agentic", "draft", "chat"])
def test_input_is_the_request_and_the_model_sees_the_previous_messages(
    scaffold: str, persona_prompt: bool, tmp_path: Path
) -> None:
    task = agentic_email(
        personas=",".join(PERSONAS), scenarios=",".join(SCENARIO_IDS), scaffold=scaffold,  # type: ignore[arg-type]
        persona_prompt=persona_prompt, classifier=str(shared_tiny_classifier()),
    )
    scenarios = {s.id: s for s in load_scenarios(list(SCENARIO_IDS))}
    expected = {
        f"{p}-{sid}": _previous(sc, scaffold, p if persona_prompt else None)
        for p in PERSONAS for sid, sc in scenarios.items()
    }
    for sample in task.dataset:
        assert isinstance(sample.input, list)
        (user,) = sample.input  # no system message: the sample list shows the request
        assert isinstance(user, ChatMessageUser)
        assert user.text == expected[str(sample.id)][-1].text

    calls: list[list[ChatMessage]] = []
    (log,) = inspect_eval(
        task, model=scripted_model(lambda *_: reply("Hi Sam,\nDone."), calls=calls),
        log_dir=str(tmp_path), display="none",
    )
    assert log.status == "success", log.error
    assert log.samples is not None and len(log.samples) == len(expected)
    for sample in log.samples:
        assert _dump(sample.messages[:-1]) == _dump(expected[str(sample.id)])
    # one generation per sample (no reuse in these scaffolds), each with exactly those messages
    assert sorted(_dump(c) for c in calls) == sorted(_dump(m) for m in expected.values())
