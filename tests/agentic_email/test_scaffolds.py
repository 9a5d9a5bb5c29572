"""The three scaffolds' rendered messages: same facts as the tools return, no persona leak."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fixtures.scripted_models import reply, scripted_model, shared_tiny_classifier, tool_call
from inspect_ai import eval as inspect_eval
from inspect_ai.model import ChatMessage, ChatMessageSystem, ChatMessageTool, ChatMessageUser
from inspect_ai.tool import ToolInfo

from charbench.agentic_email import prompts
from charbench.agentic_email.prompts import build_messages
from charbench.agentic_email.scenarios import Scenario, load_scenarios
from charbench.agentic_email.task import agentic_email
from charbench.agentic_email.tools import TOOL_NAMES
from charbench.agentic_email.workplace import load_workplace
from charbench.personas import DISPLAY_NAMES, PERSONA_DESCRIPTIONS, PERSONAS

SCENARIOS = load_scenarios()
WORKPLACE = load_workplace()


@pytest.fixture(scope="module")
def tiny_classifier() -> Path:
    return shared_tiny_classifier()


def test_fifty_scenarios_available() -> None:
    assert len(SCENARIOS) == 50


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_agentic_messages(scenario: Scenario) -> None:
    system, user = build_messages(scenario, WORKPLACE, "agentic")
    assert isinstance(system, ChatMessageSystem) and isinstance(user, ChatMessageUser)
    assert WORKPLACE.standing_context().strip() in system.text
    assert WORKPLACE.user.name in system.text and WORKPLACE.org_name in system.text
    assert user.text == scenario.request.strip()
    # the agent must look the facts up: the prompt does not hand them over
    assert scenario.facts_text() not in system.text + user.text


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_draft_and_chat_render_the_facts(scenario: Scenario) -> None:
    d_system, d_user = build_messages(scenario, WORKPLACE, "draft")
    (c_user,) = build_messages(scenario, WORKPLACE, "chat")
    assert isinstance(d_system, ChatMessageSystem)
    assert isinstance(c_user, ChatMessageUser)
    for fact in scenario.facts:
        assert fact in d_user.text
        assert fact in c_user.text
    assert scenario.facts_text() in d_user.text
    assert scenario.request.strip() in d_user.text
    # the two controls differ only in the system prompt
    assert d_user.text == c_user.text
    # draft: the identity and standing context, no acting instructions, no tools
    assert WORKPLACE.standing_context().strip() in d_system.text
    assert "How to work" not in d_system.text
    for name in TOOL_NAMES:
        assert name not in d_system.text and name not in d_user.text
    assert "only the body" in d_user.text


class _FakeUser:
    name = "Robin Vale"
    title = "Head of Operations"
    team = "Operations"
    email = "robin@example.org"


class _FakeWorkplace:
    org_name = "Example Org"
    user = _FakeUser()

    def standing_context(self) -> str:
        return "## Standing context\n\n- nothing"


def _our_words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]+", text)}


def test_prompts_never_mention_a_persona_or_style() -> None:
    wp: Any = _FakeWorkplace()
    texts = [prompts.agent_system_prompt(wp), prompts.draft_system_prompt(wp)]
    texts.append(prompts.draft_user_prompt(SCENARIOS[0]).replace(SCENARIOS[0].request, ""))
    banned = {"persona", "personality", "style", "tone", "character", "voice", "stylistic"}
    banned |= {p.lower() for p in PERSONAS} | {n.lower() for n in DISPLAY_NAMES.values()}
    for text in texts:
        assert not (_our_words(text) & banned), _our_words(text) & banned


def test_agent_prompt_length_and_sections() -> None:
    prompt = prompts.agent_system_prompt(WORKPLACE)
    own = prompt.replace(WORKPLACE.standing_context().strip(), "")
    assert 300 <= len(own.split()) <= 600
    assert len(prompt.split()) >= 450
    for heading in ("## Your role", "## How to work"):
        assert heading in prompt
    # tools are described by the provider/tool definitions, not by the prompt
    assert "```json" not in prompt and '"arguments"' not in prompt


@pytest.mark.parametrize("scaffold", ["agentic", "draft", "chat"])
def test_persona_prompt_goes_first(scaffold: str) -> None:
    scenario = SCENARIOS[0]
    plain = build_messages(scenario, WORKPLACE, scaffold)  # type: ignore[arg-type]
    prompted = build_messages(scenario, WORKPLACE, scaffold, "poeticism")  # type: ignore[arg-type]
    assert isinstance(prompted[0], ChatMessageSystem)
    assert prompted[0].text.startswith(PERSONA_DESCRIPTIONS["poeticism"])
    assert prompted[-1].text == plain[-1].text
    if scaffold != "chat":
        assert prompted[0].text.endswith(plain[0].text)
    else:
        assert prompted[0].text == PERSONA_DESCRIPTIONS["poeticism"]


def test_build_messages_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"unknown scaffold 'email'.*agentic, draft, chat"):
        build_messages(SCENARIOS[0], WORKPLACE, "email")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no description for persona 'pirate'"):
        build_messages(SCENARIOS[0], WORKPLACE, "draft", "pirate")


def _follow_expected_path(turn: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> Any:
    request = next(m.text for m in messages if isinstance(m, ChatMessageUser))
    scenario = next(s for s in SCENARIOS if s.request.strip() == request)
    calls = scenario.expected_calls
    if turn < len(calls):
        call = calls[turn]
        return tool_call(call.tool, call.kwargs)
    return reply("Done.")


@pytest.mark.slow
def test_facts_are_what_the_agentic_tools_return(tiny_classifier: Path, tmp_path: Path) -> None:
    """Run every scenario's expected path through the real loop and tools: the facts the
    controls render appear in the tool results the agent saw, and every path emails."""
    (log,) = inspect_eval(
        agentic_email(personas="humor", classifier=str(tiny_classifier)),
        model=scripted_model(_follow_expected_path),
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    assert log.samples is not None and len(log.samples) == len(SCENARIOS)
    by_id = {s.id: s for s in SCENARIOS}
    for sample in log.samples:
        scenario = by_id[sample.metadata["scenario"]]
        tool_text = "\n".join(m.text for m in sample.messages if isinstance(m, ChatMessageTool))
        errors = [m.error for m in sample.messages if isinstance(m, ChatMessageTool) and m.error]
        assert not errors, (scenario.id, errors)
        for fact in scenario.facts:
            assert fact in tool_text, (scenario.id, fact)
        (user,) = build_messages(scenario, WORKPLACE, "chat")
        assert all(fact in user.text for fact in scenario.facts)
        score = next(iter(sample.scores.values()))  # type: ignore[union-attr]
        assert score.metadata is not None
        assert score.metadata["outcome"] == "emailed", scenario.id
        assert score.metadata["tool_calls"] == len(scenario.expected_calls)
        assert score.metadata["email_to"] == [scenario.recipient]
