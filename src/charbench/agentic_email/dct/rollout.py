"""The study's agentic rollout as an Inspect solver, and what ``suite=dct`` classifies.

:func:`dct_agent` runs one rollout exactly as the study's harness did, text in and text
out (no native tools are offered, so it runs the same on ``hf-lora``, an API model or a
vLLM server). Each step it generates with the sample's persona model
(:func:`charbench._generation.persona_model`, the eval's generate config) from the whole
conversation so far, appends the completion as an assistant turn holding exactly that
text, and then (see :func:`step`):

1. a ``final`` block anywhere in the turn ends the rollout (``final``), even beside a call;
2. a parsed call to a tool named ``final`` ends it too (``final``);
3. a turn without a parseable ``tool_call`` block gets one user turn
   ``[TOOL OUTPUT]\\n`` + the study's error object; the 4th such turn in a row (the study's
   limit, read from its source) ends the rollout (``malformed``) after that turn is added;
4. otherwise the call is simulated from the scenario's stub rules and its JSON result comes
   back as one user turn ``[TOOL OUTPUT]\\n<json>``; the run of malformed turns resets.

The rollout goes on after ``email.send``; it ends at ``final``, at ``malformed``, or after
the scenario's ``max_steps`` turns (``max_steps``). The result of the last step is appended
even when no model call follows, as in the study's trajectories.

The rollout counts as ``emailed`` when a parsed ``email.send`` call carried a non-blank
string ``body``; the first such body, as sent, is what the classifier reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from inspect_ai.model import ChatMessageAssistant, ChatMessageUser
from inspect_ai.solver import Generate, Solver, TaskState, solver
from inspect_ai.util import StoreModel
from pydantic import Field

from charbench._generation import generation_config, persona_model
from charbench.agentic_email.dct.formats import AgenticScenario
from charbench.agentic_email.dct.harness import (
    TOOL_OUTPUT_PREFIX,
    ParsedCall,
    StudyHarness,
    malformed_reply,
    parse_final,
    parse_tool_call,
    simulate_tool,
)

__all__ = ["EMAIL_TOOL", "TERMINATIONS", "DctEpisode", "Step", "dct_agent", "step"]

EMAIL_TOOL = "email.send"
"""The study's email tool; its ``body`` argument is the classified text."""

Termination = Literal["final", "max_steps", "malformed"]
TERMINATIONS: tuple[Termination, ...] = ("final", "max_steps", "malformed")


@dataclass(frozen=True)
class Step:
    """What one assistant turn leads to.

    Attributes:
        kind: ``"final"`` (the rollout ends), ``"call"`` (a simulated tool call) or
            ``"malformed"`` (no parseable block).
        reply: The user turn that follows (``None`` for ``final``).
        call: The parsed call (``"call"`` only).
        summary: The final summary (``"final"`` only; the study's fallback for a call to
            ``final`` without a summary argument is kept as given).
    """

    kind: Literal["final", "call", "malformed"]
    reply: str | None = None
    call: ParsedCall | None = None
    summary: Any = None


def step(harness: StudyHarness, scenario: AgenticScenario, text: str) -> Step:
    """Decide what the study's harness did with one assistant turn (pure)."""
    final = parse_final(harness, text)
    if final is not None:
        return Step("final", summary=final)
    call = parse_tool_call(harness, text)
    if call is not None and call.tool == "final":
        args = call.args
        summary = args.get("summary") or args.get("status") or args.get("message")
        return Step("final", call=call, summary=summary)
    if call is None:
        return Step("malformed", reply=TOOL_OUTPUT_PREFIX + malformed_reply(harness))
    result = simulate_tool(harness, scenario.tool_stubs, call.tool, call.args)
    return Step("call", reply=TOOL_OUTPUT_PREFIX + result, call=call)


class DctEpisode(StoreModel):
    """What happened in one ``suite=dct`` rollout, kept in the sample store.

    Attributes:
        terminated: One of :data:`TERMINATIONS`; ``""`` while running (or when an Inspect
            limit stopped the sample first).
        steps: Model turns taken.
        tool_calls: Simulated tool calls (calls to ``final`` excluded, as in the study).
        malformed_turns: Turns without a parseable block (all of them).
        final_summary: The final block's content, if the rollout ended with one.
        email_body: The first non-blank ``body`` of a parsed ``email.send`` call.
        email_to: That call's ``to`` argument (any JSON value; ``None`` if absent).
        tool_log: ``{"step", "tool", "args"}`` per simulated call (step counts from 0).
    """

    terminated: str = Field(default="")
    steps: int = Field(default=0)
    tool_calls: int = Field(default=0)
    malformed_turns: int = Field(default=0)
    final_summary: Any = Field(default=None)
    email_body: str | None = Field(default=None)
    email_to: Any = Field(default=None)
    tool_log: list[dict[str, Any]] = Field(default_factory=list)


def _record_call(episode: DctEpisode, index: int, call: ParsedCall) -> None:
    episode.tool_calls += 1
    episode.tool_log = [*episode.tool_log, {"step": index, "tool": call.tool, "args": call.args}]
    body = call.args.get("body")
    if (
        episode.email_body is None
        and call.tool == EMAIL_TOOL
        and isinstance(body, str)
        and body.strip()
    ):
        episode.email_body = body
        episode.email_to = call.args.get("to")


@solver
def dct_agent(harness: StudyHarness, scenarios: Mapping[str, AgenticScenario]) -> Solver:
    """The study's agentic rollout (see the module docs).

    Args:
        harness: The study's constants (:func:`~.harness.load_harness`).
        scenarios: charbench scenario id -> scenario; a sample names its scenario in
            ``metadata["scenario"]``.

    Returns:
        A solver; it needs ``metadata["persona"]`` and ``metadata["scenario"]``.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        persona = state.metadata.get("persona")
        scenario = scenarios.get(str(state.metadata.get("scenario")))
        if not isinstance(persona, str) or scenario is None:
            raise ValueError("dct_agent needs sample metadata 'persona' and a known 'scenario'")
        model = persona_model(persona)
        config = generation_config()
        episode = state.store_as(DctEpisode)
        malformed_run = 0
        ending: Termination = "max_steps"
        for index in range(scenario.max_steps):
            output = await model.generate(state.messages, tools=[], config=config)
            state.output = output
            text = output.completion
            state.messages.append(
                ChatMessageAssistant(content=text, model=output.model, source="generate")
            )
            episode.steps = index + 1
            outcome = step(harness, scenario, text)
            if outcome.kind == "final":
                episode.final_summary = outcome.summary
                ending = "final"
                break
            state.messages.append(ChatMessageUser(content=outcome.reply or ""))
            if outcome.kind == "malformed":
                malformed_run += 1
                episode.malformed_turns += 1
                if malformed_run >= harness.max_malformed:
                    ending = "malformed"
                    break
                continue
            assert outcome.call is not None
            _record_call(episode, index, outcome.call)
            malformed_run = 0
        episode.terminated = ending
        return state

    return solve
