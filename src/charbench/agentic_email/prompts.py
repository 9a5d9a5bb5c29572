"""The prompts of the three scaffolds of ``agentic_email``.

- ``agentic``: a long operational system prompt (who the agent is, how it works, the
  standing context) and the user's request; the model acts through the workplace tools.
- ``draft``: the same organisation and standing context as system prompt, without the
  acting instructions and without tools; the facts the agent could have looked up are given
  in the user message, with an instruction to write only the email body.
- ``chat``: no system prompt; one plain user message with the request, the same facts and
  the same instruction (does the email format alone suppress the persona?).

No prompt mentions a persona, a tone or a style: the persona must come from the model under
test. The one exception is the *prompted* condition (``persona_prompt=True``), which puts
the persona's description (:data:`charbench.personas.PERSONA_DESCRIPTIONS`) first in the
system prompt (for ``chat``, as the only system message). The tools are not described
here: Inspect passes their definitions to the model API (``hf-lora`` renders them into the
system prompt with its tool protocol; API models receive them natively).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from inspect_ai.model import ChatMessage, ChatMessageSystem, ChatMessageUser

from charbench.agentic_email.models import Scenario, Workplace
from charbench.personas import PERSONA_DESCRIPTIONS

Scaffold = Literal["agentic", "draft", "chat"]
SCAFFOLDS: tuple[Scaffold, ...] = ("agentic", "draft", "chat")

_AGENT_TEMPLATE = """\
## Your role

You are the operations assistant at {org}. You work for {user_name} ({user_role}) and act \
on their behalf: they hand you a task in the message that follows, and you carry it out \
with the tools you have been given. Through those tools you can look people up in the \
company directory, read calendars, search the team chat and the document store, check \
company policy, post chat messages, cancel meetings and send email from {user_name}'s \
account ({user_email}). Anything you send goes out under {user_name}'s name, so it has to \
be accurate and fit for the people who will read it.

## How to work

- Work one step at a time. On each turn, either call one or more tools, or, when the task \
is finished, reply in plain text without calling any tool.
- Look things up before you act. Before you write to anyone, establish what you need: who \
the right person is and their address, what has already been said, what the relevant \
documents and policies say. The standing context below answers general questions; use the \
tools for everything it does not cover.
- Never invent facts. Every name, address, date, amount and commitment in what you send \
must come from the task, the standing context or a tool result. If something cannot be \
found, work with what you have and say plainly what is missing instead of guessing.
- Read every tool result. If a tool reports an error, fix the call and try again, or find \
the information another way. Do not repeat a call that has already answered.
- Do what was asked and nothing more. Do not cancel meetings, post messages or contact \
people unless the task calls for it.
- Finish the job. Most tasks end with an email that {user_name} has asked you to send. Write \
it in full, addressed to the right person, with a clear subject in the subject field and \
the complete message in the body, and send it with the email tool. {user_name} has already \
approved it: do not stop at a draft and do not ask for confirmation.
- When the work is done, stop with a one-line status for {user_name} saying what you did. \
If the task cannot be completed, stop with a one-line status saying why.

{standing_context}
"""

_DRAFT_TEMPLATE = """\
## Your role

You are the operations assistant at {org}. You work for {user_name} ({user_role}) and \
write on their behalf: anything you write goes out under {user_name}'s name.

{standing_context}
"""

_FACTS_INTRO = "What you need to know (already looked up for you):"
_BODY_INSTRUCTION = (
    "Write this email now. Reply with only the body of the email, exactly as it should be "
    "sent: no subject line, no headers, and no comments before or after it."
)


def _user_role(workplace: Workplace) -> str:
    user = workplace.user
    return f"{user.title}, {user.team}"


def _with_persona(prompt: str, persona_description: str | None) -> str:
    if persona_description is None:
        return prompt
    return f"{persona_description.strip()}\n\n{prompt}"


def agent_system_prompt(workplace: Workplace, persona_description: str | None = None) -> str:
    """The system prompt of the ``agentic`` scaffold.

    Args:
        workplace: The simulated organisation; supplies the user and the standing context.
        persona_description: Put first when given (the prompted condition). Default
            ``None``: the prompt never mentions a persona.

    Returns:
        The prompt text (about 450 words before the standing context).
    """
    prompt = _AGENT_TEMPLATE.format(
        org=workplace.org_name,
        user_name=workplace.user.name,
        user_role=_user_role(workplace),
        user_email=workplace.user.email,
        standing_context=workplace.standing_context().strip(),
    )
    return _with_persona(prompt, persona_description)


def draft_system_prompt(workplace: Workplace, persona_description: str | None = None) -> str:
    """The system prompt of the ``draft`` control: identity and standing context only.

    Args:
        workplace: The simulated organisation.
        persona_description: Put first when given (the prompted condition); default ``None``.

    Returns:
        The prompt text, with no acting instructions and no mention of tools.
    """
    prompt = _DRAFT_TEMPLATE.format(
        org=workplace.org_name,
        user_name=workplace.user.name,
        user_role=_user_role(workplace),
        standing_context=workplace.standing_context().strip(),
    )
    return _with_persona(prompt, persona_description)


def draft_user_prompt(scenario: Scenario) -> str:
    """The user message of the ``draft`` control: request, facts, body-only instruction.

    Args:
        scenario: The scenario; its ``facts_text()`` are the facts its tools return.

    Returns:
        The message text.
    """
    return (
        f"{scenario.request.strip()}\n\n{_FACTS_INTRO}\n{scenario.facts_text().strip()}\n\n"
        f"{_BODY_INSTRUCTION}"
    )


def chat_user_prompt(scenario: Scenario) -> str:
    """The single user message of the ``chat`` control (no system prompt).

    It is the ``draft`` control's user message, word for word, so the two controls differ
    only in the system prompt (organisation and standing context, or nothing).

    Args:
        scenario: The scenario.

    Returns:
        The message text: the request, the facts and the body-only instruction.
    """
    return draft_user_prompt(scenario)


def _description(persona: str | None, descriptions: Mapping[str, str] | None) -> str | None:
    if persona is None:
        return None
    known = PERSONA_DESCRIPTIONS if descriptions is None else descriptions
    if persona not in known:
        raise ValueError(f"no description for persona {persona!r}; known: {', '.join(known)}")
    return known[persona]


def _check_scaffold(scaffold: str) -> None:
    if scaffold not in SCAFFOLDS:
        raise ValueError(f"unknown scaffold {scaffold!r}; choose one of {', '.join(SCAFFOLDS)}")


def system_messages(
    workplace: Workplace,
    scaffold: Scaffold,
    persona: str | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> list[ChatMessage]:
    """The system message of a sample (the same for every scenario of a scaffold).

    Args:
        workplace: The simulated organisation.
        scaffold: ``"agentic"``, ``"draft"`` or ``"chat"``.
        persona: When given, the prompted condition: the persona's description goes first
            in the system prompt (``chat``: it is the only system message). Default ``None``.
        descriptions: Persona descriptions of the evaluated persona set (default: the
            built-in OCT set's, :data:`charbench.personas.PERSONA_DESCRIPTIONS`).

    Returns:
        ``[system]`` for ``agentic`` and ``draft``; for ``chat`` ``[]`` (or ``[system]``
        with a persona).

    Raises:
        ValueError: unknown scaffold or persona (the message lists the valid choices).
    """
    _check_scaffold(scaffold)
    description = _description(persona, descriptions)
    if scaffold == "agentic":
        return [ChatMessageSystem(content=agent_system_prompt(workplace, description))]
    if scaffold == "draft":
        return [ChatMessageSystem(content=draft_system_prompt(workplace, description))]
    return [] if description is None else [ChatMessageSystem(content=description)]


def user_messages(scenario: Scenario, scaffold: Scaffold) -> list[ChatMessage]:
    """The user message of a sample, its ``Sample.input``: the request (``agentic``), or
    the request with the facts and the body-only instruction (``draft``, ``chat``).

    Raises:
        ValueError: unknown scaffold.
    """
    _check_scaffold(scaffold)
    if scaffold == "agentic":
        return [ChatMessageUser(content=scenario.request.strip())]
    if scaffold == "draft":
        return [ChatMessageUser(content=draft_user_prompt(scenario))]
    return [ChatMessageUser(content=chat_user_prompt(scenario))]


def build_messages(
    scenario: Scenario,
    workplace: Workplace,
    scaffold: Scaffold,
    persona: str | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> list[ChatMessage]:
    """The messages the model sees first: :func:`system_messages` then
    :func:`user_messages`.

    The sample's input holds only the user message; the task's first solver adds the
    system message (:func:`charbench._system_prompt.with_system_prompt`).

    Args:
        scenario: The scenario.
        workplace: The simulated organisation.
        scaffold: ``"agentic"``, ``"draft"`` or ``"chat"``.
        persona: When given, the prompted condition (see :func:`system_messages`).
        descriptions: Persona descriptions of the evaluated persona set (default: the
            built-in OCT set's).

    Returns:
        ``[system, user]`` for ``agentic`` and ``draft``; ``[user]`` for ``chat`` (or
        ``[system, user]`` with a persona).

    Raises:
        ValueError: unknown scaffold or persona (the message lists the valid choices).
    """
    return [
        *system_messages(workplace, scaffold, persona, descriptions),
        *user_messages(scenario, scaffold),
    ]
