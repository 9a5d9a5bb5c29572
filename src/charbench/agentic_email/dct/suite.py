"""``agentic_email -T suite=dct``: the study's scenarios as Inspect samples, solver and text.

:func:`load_suite` reads everything (source, harness constants, scenarios) when the task is
built, before any model loads. :func:`dct_samples` makes one sample per (persona,
scenario): the model's first call sees the scenario's opening turns exactly as the study's
loader passed them to the chat template (a ``tool`` turn as a user turn
``[TOOL OUTPUT]\\n...``), with the persona's description put first in the system prompt only
in the prompted condition. The sample's input is those turns without the leading system
turn(s), which :func:`dct_solver` puts back first; then it runs the study's rollout
(``agentic``) or its draft reply (``draft``), and
:func:`dct_text` is what the classifier reads: the first ``email.send`` body as sent, or
the draft reply after the study's header and preamble stripping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from inspect_ai.dataset import Sample
from inspect_ai.model import (
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageUser,
)
from inspect_ai.solver import Generate, Solver, TaskState, chain, solver

from charbench._generation import generate_for_persona
from charbench._system_prompt import SystemFor, with_system_prompt
from charbench.agentic_email.dct.formats import (
    AgenticScenario,
    DraftScenario,
    Turn,
    load_agentic_scenarios,
    load_draft_scenarios,
    select_scenarios,
)
from charbench.agentic_email.dct.harness import (
    TOOL_OUTPUT_PREFIX,
    StudyHarness,
    load_harness,
    strip_draft,
)
from charbench.agentic_email.dct.rollout import DctEpisode, dct_agent
from charbench.agentic_email.dct.source import DCT_COMMIT, DctSource, resolve_source
from charbench.agentic_email.loop import Episode
from charbench.agentic_email.suite import sample_metadata
from charbench.personas import PERSONA_DESCRIPTIONS
from charbench.scoring import ClassifiedText
from charbench.textsafe import sanitize

__all__ = [
    "DctScaffold",
    "DctSuite",
    "dct_samples",
    "dct_solver",
    "dct_text",
    "draft_reply",
    "load_suite",
    "opening_messages",
    "split_system",
    "unsafe_characters",
]

DctScaffold = Literal["agentic", "draft"]


@dataclass(frozen=True)
class DctSuite:
    """The study's files as loaded for one task.

    Attributes:
        source: Where they came from (:class:`~.source.DctSource`).
        harness: The harness constants.
        scaffold: ``"agentic"`` or ``"draft"``.
        scenarios: The selected scenarios of that scaffold, in file order.
    """

    source: DctSource
    harness: StudyHarness
    scaffold: DctScaffold
    scenarios: tuple[AgenticScenario, ...] | tuple[DraftScenario, ...]

    def metadata(self) -> dict[str, Any]:
        """Eval-metadata fields recording the source (``dct_*``)."""
        return {
            "dct_commit": DCT_COMMIT,
            "dct_origin": self.source.origin,
            "dct_digest": self.source.digest,
            "dct_pinned": self.source.pinned,
        }


def load_suite(
    scaffold: DctScaffold,
    scenarios: str | Sequence[str] | None,
    dct_path: str | None,
) -> DctSuite:
    """Resolve the source and read the harness and the scaffold's scenarios.

    Raises:
        DctSourceError: the files cannot be found, downloaded or read (names ``dct_path``).
        ValueError: an unknown scenario or family.
    """
    source = resolve_source(dct_path)
    harness = load_harness(source.root)
    if scaffold == "agentic":
        agentic = select_scenarios(load_agentic_scenarios(source.root), scenarios)
        return DctSuite(source, harness, scaffold, tuple(agentic))
    draft = select_scenarios(load_draft_scenarios(source.root), scenarios)
    return DctSuite(source, harness, scaffold, tuple(draft))


def _message(turn: Turn) -> ChatMessage:
    content = sanitize(turn.content)[0]
    if turn.role == "system":
        return ChatMessageSystem(content=content)
    if turn.role == "assistant":
        return ChatMessageAssistant(content=content)
    if turn.role == "tool":
        return ChatMessageUser(content=TOOL_OUTPUT_PREFIX + content)
    return ChatMessageUser(content=content)


def unsafe_characters(turns: Sequence[Turn]) -> int:
    """How many characters of the turns :func:`charbench.textsafe.sanitize` replaces (none in
    the pinned commit's files)."""
    return sum(sanitize(t.content)[1] for t in turns)


def opening_messages(
    turns: Sequence[Turn], persona: str | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> list[ChatMessage]:
    """A scenario's opening turns as Inspect messages (made safe with
    :func:`charbench.textsafe.sanitize`, a no-op on the pinned commit's files).

    Args:
        turns: The scenario's turns.
        persona: The prompted condition: this persona's description is put first in the
            first system turn (``"{description}\\n\\n{system}"``), or as a system turn of its
            own when there is none. Default ``None``: the study's turns unchanged.
        descriptions: The persona set's descriptions (default: the built-in OCT set's).
    """
    messages = [_message(t) for t in turns]
    if persona is None:
        return messages
    description = (descriptions or PERSONA_DESCRIPTIONS)[persona].strip()
    for i, message in enumerate(messages):
        if isinstance(message, ChatMessageSystem):
            messages[i] = ChatMessageSystem(content=f"{description}\n\n{message.text}")
            return messages
    return [ChatMessageSystem(content=description), *messages]


def split_system(messages: Sequence[ChatMessage]) -> tuple[list[ChatMessage], list[ChatMessage]]:
    """``(leading system messages, the rest)``: the rest is a sample's input, the leading
    system messages are added back by the solver (:func:`dct_solver`), so the model sees
    ``[*system, *rest] == messages``."""
    k = 0
    while k < len(messages) and isinstance(messages[k], ChatMessageSystem):
        k += 1
    return list(messages[:k]), list(messages[k:])


def _system_for(
    scenarios: Sequence[AgenticScenario] | Sequence[DraftScenario],
    descriptions: Mapping[str, str] | None,
) -> SystemFor:
    """A sample's leading system message(s), rebuilt from its metadata (``scenario``,
    ``persona``, ``persona_prompt``) with :func:`opening_messages`."""
    turns = {s.id: s.turns for s in scenarios}

    def system_for(state: TaskState) -> list[ChatMessage]:
        scenario = str(state.metadata.get("scenario"))
        if scenario not in turns:
            raise ValueError(f"sample {state.sample_id!r} names no known 'scenario' ({scenario!r})")
        persona = state.metadata.get("persona")
        prompted = state.metadata.get("persona_prompt") is True and isinstance(persona, str)
        messages = opening_messages(
            turns[scenario], persona if prompted else None, descriptions
        )
        return split_system(messages)[0]

    return system_for


def dct_samples(
    suite: DctSuite, personas: Sequence[str], persona_prompt: bool, cluster_by_family: bool,
    descriptions: Mapping[str, str] | None = None,
) -> list[Sample]:
    """One sample per (persona, scenario), id ``"{persona}-{scenario id}"``.

    Metadata: ``persona``, ``personas``, ``cluster`` (the scenario id, or its family when
    ``cluster_by_family``), ``task``, ``scenario``, ``source_id`` (the study's id),
    ``family``, ``scaffold``, ``suite`` (``dct``), ``persona_prompt``, ``sanitized`` (how
    many unsafe characters of the scenario's text were replaced; 0 for the pinned files).

    The input is :func:`opening_messages` without its leading system message(s) (what
    ``inspect view`` lists); :func:`dct_solver` puts them back before the first generation.
    """
    samples = []
    for persona in personas:
        for scenario in suite.scenarios:
            samples.append(
                Sample(
                    id=f"{persona}-{scenario.id}",
                    input=split_system(
                        opening_messages(
                            scenario.turns, persona if persona_prompt else None, descriptions
                        )
                    )[1],
                    target=persona,
                    metadata=sample_metadata(
                        persona, personas, scenario.id, scenario.family,
                        scaffold=suite.scaffold, suite="dct", persona_prompt=persona_prompt,
                        cluster_by_family=cluster_by_family, source_id=scenario.source_id,
                        sanitized=unsafe_characters(scenario.turns),
                    ),
                )
            )
    return samples


@solver
def draft_reply(personas: int) -> Solver:
    """One reply per sample, shared across persona labels as the study's draft script did.

    The study generated the base stage's draft replies once and wrote them under every
    persona label. So here: when the model under evaluation is not a persona template (a
    base model, one adapter, an API model), the samples of one prompt share one generation
    (:func:`charbench._generation.generate_for_persona`, recorded in each sample's
    ``generation`` metadata); a persona template generates per persona.

    Args:
        personas: Number of persona labels sharing each prompt.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        persona = state.metadata.get("persona")
        if not isinstance(persona, str):
            raise ValueError("draft_reply needs sample metadata 'persona' (the gold persona)")
        await generate_for_persona(state, persona, reuse=True, consumers=personas)
        state.store_as(Episode).turns = 1
        return state

    return solve


def dct_solver(
    suite: DctSuite, personas: int, descriptions: Mapping[str, str] | None = None
) -> Solver:
    """The scenario's leading system message(s) (see :func:`dct_samples`), then the study's
    rollout (agentic) or its draft reply (draft; see :func:`draft_reply`).

    Args:
        suite: The loaded suite.
        personas: Number of persona labels sharing each prompt (draft).
        descriptions: The persona set's descriptions for the prompted condition (default:
            the built-in OCT set's).
    """
    system = with_system_prompt(_system_for(suite.scenarios, descriptions))
    if suite.scaffold == "agentic":
        by_id = {s.id: s for s in suite.scenarios if isinstance(s, AgenticScenario)}
        return chain(system, dct_agent(suite.harness, by_id))
    return chain(system, draft_reply(personas))


def dct_text(suite: DctSuite, state: TaskState) -> ClassifiedText:
    """What the classifier reads from a ``suite=dct`` sample.

    - ``agentic``: the first non-blank ``email.send`` body, as sent (outcome ``emailed``),
      else nothing (``no_email``). Extras: ``terminated`` (``final``, ``max_steps``,
      ``malformed``; ``""`` if an Inspect limit stopped the sample, flagged
      ``interrupted``), ``turns``, ``tool_calls``, ``malformed_turns``, ``email_to``,
      ``stripped`` (always empty: nothing is extracted).
    - ``draft``: the reply after the study's stripping (``emailed`` if anything is left,
      else ``no_email``). Extras: ``stripped`` (the removed pieces), ``terminated`` None.
    """
    if suite.scaffold == "draft":
        reply = state.output.completion if state.output is not None else ""
        body, removed = strip_draft(suite.harness, reply)
        extra: dict[str, Any] = {
            "terminated": None,
            "turns": state.store_as(Episode).turns,
            "tool_calls": 0,
            "malformed_turns": 0,
            "email_to": None,
            "stripped": removed,
            "interrupted": False,
        }
        outcome = "emailed" if body.strip() else "no_email"
        return ClassifiedText(text=body if body.strip() else None, outcome=outcome, extra=extra)
    episode = state.store_as(DctEpisode)
    extra = {
        "terminated": episode.terminated,
        "turns": episode.steps,
        "tool_calls": episode.tool_calls,
        "malformed_turns": episode.malformed_turns,
        "email_to": episode.email_to,
        "stripped": [],
        "interrupted": episode.terminated == "",
    }
    if episode.email_body is not None:
        return ClassifiedText(text=episode.email_body, outcome="emailed", extra=extra)
    return ClassifiedText(text=None, outcome="no_email", extra=extra)
