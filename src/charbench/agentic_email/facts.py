"""The checks of a rendered scenario against the workplace its tools simulate.

A scenario is only sound if the simulated workplace backs it up: the recipient and every
person its stubs mention are in the directory (resolved exactly as the tools resolve them),
every address it writes belongs to someone, its meeting and document ids do not clash with
the standing ones, and each of its *facts* is returned verbatim by a tool call on its
expected path (so the draft and chat controls, which are given the facts, see what the agent
could have looked up). :func:`check_scenario` raises :class:`ScenarioError` naming the file
and the field of the first problem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from inspect_ai.tool import ToolError

from charbench.agentic_email.directory import Directory
from charbench.agentic_email.errors import ScenarioError
from charbench.agentic_email.models import (
    EMAIL_RE,
    ChatThread,
    Document,
    Event,
    Person,
    Policy,
    Scenario,
    Stubs,
    Workplace,
    norm,
)
from charbench.agentic_email.simulator import WorkplaceSim
from charbench.agentic_email.tools import call_tool
from charbench.agentic_email.workplace import first_repeat

_T = TypeVar("_T")
_Fail = Callable[[str, str], ScenarioError]
"""Builds the error of one scenario's field."""


def _check_contacts(stubs: Stubs, wp: Workplace, fail: _Fail) -> None:
    known: dict[str, str] = {}
    for p in wp.directory():
        known[p.email] = known[p.name.lower()] = p.name
    for i, p in enumerate(stubs.contacts):
        for key in (p.email, p.name.lower()):
            if key in known:
                raise fail(
                    f"stubs.lookup_contact[{i}]",
                    f"{key!r} is already in the directory ({known[key]})",
                )
            known[key] = p.name


def _indexed(key: str, items: Sequence[_T], text: Callable[[_T], str]) -> Iterator[tuple[str, str]]:
    return ((f"{key}[{i}]", text(x)) for i, x in enumerate(items))


def _people_named(stubs: Stubs) -> Iterator[tuple[str, str]]:
    """(field, name) of every person the stubs name: event owners and attendees, chat
    authors, document owners."""
    for i, e in enumerate(stubs.events):
        yield f"stubs.list_calendar[{i}].person", e.person
        yield from _indexed(f"stubs.list_calendar[{i}].attendees", e.attendees, str)
    for i, t in enumerate(stubs.chats):
        for j, m in enumerate(t.messages):
            yield f"stubs.search_chat[{i}].messages[{j}].from", m.author
    for i, d in enumerate(stubs.documents):
        yield f"stubs.search_documents[{i}].owner", d.owner


def _texts(s: Scenario) -> Iterator[tuple[str, str]]:
    """(field, text) of everything in a scenario that may carry an email address."""
    yield "request", s.request
    yield from _indexed("facts", s.facts, str)
    yield from _indexed("expected_path", s.expected_calls, lambda c: str(c.args))
    yield from _indexed("stubs.list_calendar", s.stubs.events, Event.render)
    yield from _indexed("stubs.search_chat", s.stubs.chats, ChatThread.render)
    yield from _indexed("stubs.search_documents", s.stubs.documents, Document.render)
    yield from _indexed("stubs.lookup_policy", s.stubs.policies, Policy.render)


def _check_ids(s: Scenario, wp: Workplace, fail: _Fail) -> None:
    events, docs = s.stubs.events, s.stubs.documents
    for key, what, own, standing in (
        ("list_calendar", "meeting", [e.id for e in events], [e.id for e in wp.events]),
        ("search_documents", "document", [d.id for d in docs], [d.id for d in wp.documents]),
    ):
        i = first_repeat(own, standing)
        if i is not None:
            raise fail(f"stubs.{key}[{i}].id", f"duplicate {what} id {own[i]!r}")


def _check_facts(s: Scenario, wp: Workplace, fail: _Fail) -> None:
    sim = WorkplaceSim(s, wp)
    seen = []
    for i, call in enumerate(s.expected_calls[:-1]):
        try:
            seen.append(norm(call_tool(sim, call.tool, call.kwargs)))
        except ToolError as e:  # a tool error on the expected path is a data error
            raise fail(f"expected_path[{i}]", f"{call.tool} fails: {e}") from None
    corpus = "\n".join(seen)
    for i, fact in enumerate(s.facts):
        if norm(fact) not in corpus:
            raise fail(
                f"facts[{i}]",
                f"{fact!r} is not returned verbatim by any call on the expected path; "
                "facts must be what the tools show",
            )


def check_scenario(s: Scenario, wp: Workplace, file: str | Path, prefix: str) -> None:
    """Check a rendered scenario against the workplace (see the module docstring).

    Args:
        s: the scenario.
        wp: the standing workplace its tools add to.
        file: the family file, for the error.
        prefix: where the scenario's template is in the file (``variants[2] -> x_v3:
            template``); error fields are ``prefix.field``.

    Raises:
        ScenarioError: the first problem found.
    """

    def fail(field: str, message: str) -> ScenarioError:
        return ScenarioError(file, f"{prefix}.{field}", message)

    directory: Sequence[Person] = s.directory(wp)
    emails = {p.email for p in directory}
    if s.recipient not in emails:
        raise fail(
            "recipient",
            f"{s.recipient!r} is not in the directory (colleagues, customer/vendor contacts, "
            "or this scenario's lookup_contact stubs)",
        )
    _check_contacts(s.stubs, wp, fail)
    people = Directory(directory, wp.user)
    for field, name in _people_named(s.stubs):
        if people.resolve(name) is None:
            raise fail(
                field,
                f"{name!r} is not a (unique) contact in the directory; use a full name or "
                "email, or add them under lookup_contact",
            )
    _check_ids(s, wp, fail)
    for field, text in _texts(s):
        for addr in EMAIL_RE.findall(text):
            if addr.lower() not in emails:
                raise fail(field, f"references {addr!r}, which is not in the directory")
    _check_facts(s, wp, fail)
