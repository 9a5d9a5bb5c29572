"""The agent loop of ``agentic_email`` and the single-reply solver of its controls.

:func:`email_agent` runs one rollout: each turn it generates with the sample's persona
model (:func:`charbench.routing.model_for_persona`) and the scenario's tools, executes
*every* tool call of the turn with Inspect's :func:`~inspect_ai.model.execute_tools`, and
stops at the first of:

- ``emailed``: ``send_email`` succeeded (the tool records the email in the store's
  :class:`~charbench.agentic_email.tools.SentEmail`); the loop checks after each turn, so
  a turn that mixes text, other calls and ``send_email`` still sends.
- ``no_email``: the model ended a turn without a tool call before any email was sent.
- ``malformed``: ``max_malformed`` consecutive turns in which every tool call had a
  ``parse_error`` (the tool protocol could not read it).
- ``turn_limit``: ``max_turns`` model turns without any of the above.

With ``tool_choice`` other than ``"auto"`` every turn must call a tool (``"any"``: the model
picks which; ``"send_email"``: that tool), passed to the model as Inspect's ``tool_choice``;
``hf-lora`` enforces it by prefilling the opening of the call. The rollout can then end only
as ``emailed``, ``malformed`` or ``turn_limit``. This is for models that cannot call tools
unprompted (the demo's 135M model); the study's setting is ``"auto"``.

A failing tool call (missing or mistyped arguments, an unknown recipient, a parse error)
goes back to the model as a tool error and the loop continues. The outcome and counters are
kept in the sample store (:class:`Episode`), which the log shows and the scorer reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from inspect_ai.model import ChatMessageAssistant, execute_tools
from inspect_ai.solver import Generate, Solver, TaskState, solver
from inspect_ai.tool import Tool, ToolChoice, ToolFunction
from inspect_ai.util import StoreModel
from pydantic import Field

from charbench._generation import generate_for_persona, generation_config, persona_model
from charbench.agentic_email.tools import SentEmail

__all__ = [
    "OUTCOMES",
    "TOOL_CHOICES",
    "AgentToolChoice",
    "Episode",
    "Outcome",
    "check_tool_choice",
    "email_agent",
    "single_reply",
]

Outcome = Literal["emailed", "no_email", "malformed", "turn_limit"]
OUTCOMES: tuple[Outcome, ...] = ("emailed", "no_email", "malformed", "turn_limit")

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
    """

    outcome: str = Field(default="")
    turns: int = Field(default=0)
    tool_calls: int = Field(default=0)
    malformed_turns: int = Field(default=0)
    final_text: str = Field(default="")


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


@solver
def email_agent(
    tools_for: Callable[[TaskState], Sequence[Tool]],
    max_turns: int = 8,
    max_malformed: int = 4,
    tool_choice: AgentToolChoice = "auto",
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

    Returns:
        A solver. It needs ``state.metadata["persona"]`` (the sample's gold persona) to
        route generation to that persona's model.

    Raises:
        ValueError: ``max_turns`` or ``max_malformed`` is not a positive integer, or
            ``tool_choice`` is not one of :data:`TOOL_CHOICES`.
    """
    _check_limits(max_turns, max_malformed, tool_choice)
    choice = _CHOICE[tool_choice]

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        persona = state.metadata.get("persona")
        if not isinstance(persona, str):
            raise ValueError("email_agent needs sample metadata 'persona' (the gold persona)")
        model = persona_model(persona)
        tools = list(tools_for(state))
        state.tools = tools
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
            calls = list(message.tool_calls or [])
            if not calls:
                outcome = "no_email"
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
