"""The agent loop of ``agentic_email`` and the single-reply solver of its controls.

:func:`email_agent` runs one rollout: each turn it generates with the sample's persona
model (:func:`charbench.routing.model_for_persona`) and the scenario's tools, executes
*every* tool call of the turn with Inspect's :func:`~inspect_ai.model.execute_tools`, and
stops at the first of:

- ``emailed``: ``send_email`` succeeded (the tool records the email in the store's
  :class:`~charbench.agentic_email.tools.SentEmail`); the loop checks after each turn, so
  a turn that mixes text, other calls and ``send_email`` still sends.
- ``no_email``: the model ended a turn without a tool call before any email was sent, and
  its text holds no call either.
- ``unparsed_call``: the turn came back without tool calls, but its text holds a call to
  one of the offered tools in a common format (a fenced JSON block, ``<tool_call>``, bare
  JSON with ``name`` and ``arguments``/``parameters``, Llama's ``<|python_tag|>``): the model
  called a tool and the provider did not parse it (a server without a tool-call parser,
  or Inspect's ``hf`` provider with a parser for another format). Not the model's choice,
  so never scored as ``no_email``; the sample's transcript and log carry a warning with the
  fix (:data:`UNPARSED_CALL_HINT`). With ``text_tool_calls=True`` such calls are parsed from
  the text and run instead (marked in the transcript and the message metadata).
- ``empty_after_tool``: an empty turn (no text, no calls) right after tool results; the
  usual cause is a server that drops ``tool`` messages (:data:`EMPTY_AFTER_TOOL_HINT`).
- ``malformed``: ``max_malformed`` consecutive turns in which every tool call had a
  ``parse_error`` (the tool protocol could not read it).
- ``turn_limit``: ``max_turns`` model turns without any of the above.

With ``tool_choice`` other than ``"auto"`` every turn must call a tool (``"any"``: the model
picks which; ``"send_email"``: that tool), passed to the model as Inspect's ``tool_choice``;
``hf-lora`` enforces it by prefilling the opening of the call. The rollout can then end only
as ``emailed``, ``malformed`` or ``turn_limit`` (or, with a provider that does not parse
tool calls, ``unparsed_call`` / ``empty_after_tool``). This is for models that cannot call tools
unprompted (the demo's 135M model); the study's setting is ``"auto"``.

A failing tool call (missing or mistyped arguments, an unknown recipient, a parse error)
goes back to the model as a tool error and the loop continues. The outcome and counters are
kept in the sample store (:class:`Episode`), which the log shows and the scorer reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Literal

from inspect_ai.log import transcript
from inspect_ai.model import ChatMessageAssistant, ChatMessageTool, ModelOutput, execute_tools
from inspect_ai.solver import Generate, Solver, TaskState, solver
from inspect_ai.tool import Tool, ToolCall, ToolChoice, ToolDef, ToolFunction, ToolInfo
from inspect_ai.util import StoreModel
from pydantic import Field, JsonValue

from charbench._generation import generate_for_persona, generation_config, persona_model
from charbench.agentic_email.tools import SentEmail
from charbench.contracts import EMAIL_OUTCOMES, EmailOutcome
from charbench.toolcalls.text_calls import find_text_tool_calls

__all__ = [
    "EMPTY_AFTER_TOOL_HINT",
    "OUTCOMES",
    "TEXT_TOOL_CALLS_KEY",
    "TOOL_CHOICES",
    "UNPARSED_CALL_HINT",
    "AgentToolChoice",
    "Episode",
    "Outcome",
    "check_tool_choice",
    "email_agent",
    "single_reply",
]

logger = logging.getLogger(__name__)

Outcome = EmailOutcome
OUTCOMES: tuple[Outcome, ...] = EMAIL_OUTCOMES  # type: ignore[assignment]
"""Every way a rollout ends (``Score.metadata["outcome"]`` of the agentic scaffold)."""

UNPARSED_CALL_HINT = (
    "charbench: the model wrote a tool call ({calls}) as text, but the model provider "
    "returned no tool calls, so the call never ran (outcome 'unparsed_call', not "
    "'no_email'). Likely cause: the server does not parse tool calls (served with only the "
    "chat template, or with a tool parser for another model family). Fix: serve the model "
    "with its tool-call parser (vLLM: --enable-auto-tool-choice --tool-call-parser <family>) "
    "or run with -T text_tool_calls=true to parse such calls from the text; see "
    "docs/serving.md."
)
"""The warning of an ``unparsed_call`` rollout (``{calls}``: the calls found in the text)."""

EMPTY_AFTER_TOOL_HINT = (
    "charbench: the model returned an empty reply (no text, no tool call) right after tool "
    "results (outcome 'empty_after_tool'). Likely cause: the server dropped the tool "
    "messages, so the model never saw the results{known}. Fix: serve the model with a chat "
    "template that renders tool messages (e.g. its own template, with "
    "-T text_tool_calls=true if the server then returns calls as text); see docs/serving.md."
)
"""The warning of an ``empty_after_tool`` rollout (``{known}``: what is known of the server)."""

_LLAMA_CPP = (
    "; the model is served from a GGUF file, and llama.cpp's function-calling chat format "
    "(llama-cpp-python --chat_format chatml-function-calling) is known to drop tool messages"
)

TEXT_TOOL_CALLS_KEY = "charbench_text_tool_calls"
"""``ChatMessageAssistant.metadata`` key listing the ids of calls parsed from the text."""

AgentToolChoice = Literal["auto", "any", "send_email"]
TOOL_CHOICES: tuple[AgentToolChoice, ...] = ("auto", "any", "send_email")
"""The agent's tool-choice policies: the model decides (``auto``, the study's setting), must
call some tool each turn (``any``), or must call ``send_email`` each turn (``send_email``)."""

_CHOICE: dict[str, ToolChoice] = {
    "auto": "auto",
    "any": "any",
    "send_email": ToolFunction("send_email"),
}


class Episode(StoreModel):
    """What happened in one rollout, kept in the sample store.

    Attributes:
        outcome: One of :data:`OUTCOMES`; ``""`` while the loop runs (and if the sample was
            stopped by an Inspect limit before the loop ended).
        turns: Model turns taken (generate calls).
        tool_calls: Tool calls the model made, including malformed ones.
        malformed_turns: Turns in which every tool call had a ``parse_error`` (all of them,
            not only the final consecutive run).
        final_text: Text of the last assistant turn (the model's status line when it
            stopped on its own).
        text_parsed_calls: Tool calls parsed from the reply text by the
            ``text_tool_calls`` fallback (included in ``tool_calls``).
        hint: The warning logged when the rollout ended as ``unparsed_call`` or
            ``empty_after_tool`` (``""`` otherwise).
    """

    outcome: str = Field(default="")
    turns: int = Field(default=0)
    tool_calls: int = Field(default=0)
    malformed_turns: int = Field(default=0)
    final_text: str = Field(default="")
    text_parsed_calls: int = Field(default=0)
    hint: str = Field(default="")


def check_tool_choice(tool_choice: object) -> None:
    """Raise a ValueError naming the choices unless ``tool_choice`` is one of them."""
    if tool_choice not in TOOL_CHOICES:
        raise ValueError(
            f"unknown tool_choice {tool_choice!r}; choose one of {', '.join(TOOL_CHOICES)}"
        )


def _check_limits(max_turns: int, max_malformed: int, tool_choice: str = "auto") -> None:
    check_tool_choice(tool_choice)
    if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
        raise ValueError(f"max_turns must be a positive integer, got {max_turns!r}")
    if isinstance(max_malformed, bool) or not isinstance(max_malformed, int) or max_malformed < 1:
        raise ValueError(f"max_malformed must be a positive integer, got {max_malformed!r}")


def _tool_infos(tools: Sequence[Tool]) -> list[ToolInfo]:
    """What the model is offered of each tool, for the text-call parser."""
    defs = [ToolDef(tool) for tool in tools]
    return [ToolInfo(name=d.name, description=d.description, parameters=d.parameters) for d in defs]


def _warn(episode: Episode, hint: str) -> None:
    """Record ``hint`` in the episode, as a transcript info event and as a logged warning."""
    episode.hint = hint
    transcript().info({"charbench_warning": episode.outcome, "hint": hint}, source="charbench")
    logger.warning(hint)


def _attach_text_calls(message: ChatMessageAssistant, calls: list[ToolCall]) -> None:
    """Make calls parsed from the text the turn's ``tool_calls``, marked as text-parsed.

    The message keeps its content (what the model wrote); the call ids go under
    :data:`TEXT_TOOL_CALLS_KEY` in its metadata and a transcript info event lists the calls.
    """
    message.tool_calls = calls
    message.metadata = {**(message.metadata or {}), TEXT_TOOL_CALLS_KEY: [c.id for c in calls]}
    shown: list[JsonValue] = [
        {"id": c.id, "function": c.function, "arguments": c.arguments, "parse_error": c.parse_error}
        for c in calls
    ]
    transcript().info({TEXT_TOOL_CALLS_KEY: shown}, source="charbench")


def _no_call_outcome(
    state: TaskState, output: ModelOutput, infos: list[ToolInfo], episode: Episode
) -> Outcome:
    """The outcome of a turn that came back without tool calls (and warns if it is not
    the model's choice)."""
    message = output.message
    found = find_text_tool_calls(message.text, infos).tool_calls
    if found:
        episode.outcome = "unparsed_call"
        names = ", ".join(dict.fromkeys(call.function for call in found))
        _warn(episode, UNPARSED_CALL_HINT.format(calls=names))
        return "unparsed_call"
    before = state.messages[-2] if len(state.messages) >= 2 else None
    if not message.text.strip() and isinstance(before, ChatMessageTool):
        episode.outcome = "empty_after_tool"
        known = _LLAMA_CPP if ".gguf" in (output.model or "").lower() else ""
        _warn(episode, EMPTY_AFTER_TOOL_HINT.format(known=known))
        return "empty_after_tool"
    return "no_email"


@solver
def email_agent(
    tools_for: Callable[[TaskState], Sequence[Tool]],
    max_turns: int = 8,
    max_malformed: int = 4,
    tool_choice: AgentToolChoice = "auto",
    text_tool_calls: bool = False,
) -> Solver:
    """The agentic rollout: generate, execute all tool calls, repeat until an outcome.

    Args:
        tools_for: Returns the tools of a sample (the scenario's workplace tools); called
            once per sample, so tool state never leaks between samples.
        max_turns: Model turns allowed (default 8); reaching it gives ``turn_limit``.
        max_malformed: Consecutive all-malformed turns allowed (default 4); reaching it gives
            ``malformed``.
        tool_choice: ``"auto"`` (default: the model decides, the study's setting),
            ``"any"`` (each turn must call a tool) or ``"send_email"`` (each turn must call
            ``send_email``); see :data:`TOOL_CHOICES`.
        text_tool_calls: When a turn comes back without tool calls, parse calls from its
            text with charbench's lenient protocol
            (:func:`charbench.toolcalls.text_calls.find_text_tool_calls`) and run them
            (default False: such a turn ends the rollout as ``unparsed_call``). For a model
            behind a server that does not parse tool calls.

    Returns:
        A solver. It needs ``state.metadata["persona"]`` (the sample's gold persona) to
        route generation to that persona's model.

    Raises:
        ValueError: ``max_turns`` or ``max_malformed`` is not a positive integer,
            ``tool_choice`` is not one of :data:`TOOL_CHOICES`, or ``text_tool_calls`` is
            not a bool.
    """
    _check_limits(max_turns, max_malformed, tool_choice)
    if not isinstance(text_tool_calls, bool):
        raise ValueError(f"text_tool_calls must be true or false, got {text_tool_calls!r}")
    choice = _CHOICE[tool_choice]

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        persona = state.metadata.get("persona")
        if not isinstance(persona, str):
            raise ValueError("email_agent needs sample metadata 'persona' (the gold persona)")
        model = persona_model(persona)
        tools = list(tools_for(state))
        state.tools = tools
        infos = _tool_infos(tools)
        config = generation_config()
        episode = state.store_as(Episode)
        sent = state.store_as(SentEmail)
        consecutive_malformed = 0
        outcome: Outcome | None = None
        while outcome is None:
            if episode.turns >= max_turns:
                outcome = "turn_limit"
                break
            output = await model.generate(
                state.messages, tools, tool_choice=choice, config=config
            )
            state.output = output
            message: ChatMessageAssistant = output.message
            state.messages.append(message)
            episode.turns += 1
            episode.final_text = message.text
            if text_tool_calls and not message.tool_calls:
                found = find_text_tool_calls(message.text, infos).tool_calls
                if found:
                    _attach_text_calls(message, found)
                    episode.text_parsed_calls += len(found)
            calls = list(message.tool_calls or [])
            if not calls:
                outcome = _no_call_outcome(state, output, infos, episode)
                break
            episode.tool_calls += len(calls)
            if all(call.parse_error for call in calls):
                consecutive_malformed += 1
                episode.malformed_turns += 1
            else:
                consecutive_malformed = 0
            result = await execute_tools(state.messages, tools)
            state.messages.extend(result.messages)
            if sent.sent:
                outcome = "emailed"
            elif consecutive_malformed >= max_malformed:
                outcome = "malformed"
        episode.outcome = outcome
        return state

    return solve


@solver
def single_reply() -> Solver:
    """One generation with the sample's persona model and no tools (draft and chat controls).

    Every sample generates its own reply (no sharing across persona labels), so with a model
    that is not a persona template the persona labels are independent draws.

    Returns:
        A solver that appends the reply to the conversation and sets ``state.output``; it
        records an :class:`Episode` (``turns=1``, outcome decided by the scorer's text
        function from the reply).
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        persona = state.metadata.get("persona")
        if not isinstance(persona, str):
            raise ValueError("single_reply needs sample metadata 'persona' (the gold persona)")
        await generate_for_persona(state, persona, reuse=False)
        episode = state.store_as(Episode)
        episode.turns = 1
        episode.final_text = state.output.message.text
        return state

    return solve
