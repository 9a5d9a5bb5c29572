"""The simulated tools: every tool answers in every scenario, through Inspect's machinery."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from inspect_ai.model import ChatMessageAssistant, ChatMessageTool, execute_tools
from inspect_ai.tool import ToolCall, ToolDef, ToolError
from inspect_ai.util import Store, store_as
from inspect_ai.util._store import init_subtask_store

from charbench.agentic_email.models import Stubs
from charbench.agentic_email.scenarios import Scenario, load_scenarios
from charbench.agentic_email.tools import (
    STUB_TOOLS,
    TOOL_NAMES,
    TOOL_PARAMS,
    SentEmail,
    WorkplaceLog,
    WorkplaceSim,
    call_tool,
    workplace_tools,
)
from charbench.agentic_email.workplace import Person, load_workplace

ALL = load_scenarios()


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[Store]:
    """Each test gets its own sample store, as each sample does in an eval."""
    s = Store()
    init_subtask_store(s)
    yield s
    init_subtask_store(Store())


def run_calls(scenario: Scenario, calls: list[tuple[str, dict[str, Any]]]) -> list[ChatMessageTool]:
    """Run tool calls (one assistant turn) through Inspect's execute_tools."""
    tools = workplace_tools(scenario)
    msg = ChatMessageAssistant(
        content="",
        tool_calls=[
            ToolCall(id=f"c{i}", function=name, arguments=args)
            for i, (name, args) in enumerate(calls)
        ],
    )
    result = asyncio.run(execute_tools([msg], tools))
    out = [m for m in result.messages if isinstance(m, ChatMessageTool)]
    assert len(out) == len(calls)
    return out


def drive(coro: Any) -> Any:
    """Run a coroutine that never suspends, without an event loop (which opens sockets)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("the tool awaited something: it is not a pure simulation")


def representative_calls(s: Scenario) -> list[tuple[str, dict[str, Any]]]:
    """One plausible call of every tool for scenario ``s`` (valid arguments)."""
    doc = (s.stubs.documents or load_workplace().documents)[0]
    chat_word = s.stubs.chats[0].messages[0].author if s.stubs.chats else "all-hands"
    return [
        ("lookup_contact", {"name_or_email": s.recipient}),
        ("list_calendar", {"person": "me", "date": "this week"}),
        ("cancel_meeting", {"meeting_id": "MTG-1005", "note": "Moving this to next week."}),
        ("search_chat", {"query": chat_word}),
        ("send_chat_message", {"to": "#general", "text": "Heads-up: sending the email now."}),
        ("search_documents", {"query": doc.title}),
        ("read_document", {"doc_id": doc.id}),
        ("lookup_policy", {"topic": "expenses"}),
        ("send_email", {"to": s.recipient, "subject": "Hello", "body": "A short test body."}),
    ]


def test_tool_definitions() -> None:
    tools = workplace_tools(ALL[0])
    assert len(TOOL_NAMES) >= 8
    defs = [ToolDef(t) for t in tools]
    assert [d.name for d in defs] == list(TOOL_NAMES)
    for d in defs:
        assert len(d.description) > 20
        for name, prop in d.parameters.properties.items():
            assert prop.description, f"{d.name}.{name} has no description"


def test_one_registry_tools_and_simulator_agree() -> None:
    """Every tool is answered by the simulator method of its name, with the same arguments
    (TOOL_PARAMS is read from the tool definitions, so this ties the two together)."""
    for name in TOOL_NAMES:
        required, optional = TOOL_PARAMS[name]
        method = inspect.signature(getattr(WorkplaceSim, name))
        params = [p for p in method.parameters.values() if p.name not in ("self", "cancelled")]
        assert [p.name for p in params] == [*required, *optional], name
        assert all(p.default is inspect.Parameter.empty for p in params[: len(required)]), name
    assert TOOL_PARAMS["send_email"] == (("to", "subject", "body"), ("cc",))
    assert TOOL_PARAMS["list_calendar"] == (("person",), ("date",))
    assert set(STUB_TOOLS) < set(TOOL_NAMES) and "send_email" not in STUB_TOOLS
    assert set(STUB_TOOLS) == {f.alias for f in Stubs.model_fields.values()}


def test_call_tool_runs_only_registered_tools() -> None:
    sim = WorkplaceSim(ALL[0])
    assert call_tool(sim, "lookup_policy", {"topic": "expenses"}).startswith("Policy: ")
    for name in ("_date_range", "check_email", "chat_target", "no_such_tool"):
        with pytest.raises(KeyError):
            call_tool(sim, name, {})


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.id)
def test_every_tool_answers_in_every_scenario(s: Scenario, fresh_store: Store) -> None:
    calls = representative_calls(s)
    results = run_calls(s, calls)
    for (name, _), msg in zip(calls, results, strict=True):
        assert msg.error is None, (name, msg.error)
        assert msg.function == name
        text = msg.text
        assert text.strip() and "unknown tool" not in text.lower(), (name, text)
    assert "Attendees: " in results[1].text  # the standing calendar shows in every scenario
    assert "Cancelled MTG-1005" in results[2].text
    assert store_as(SentEmail).sent and store_as(SentEmail).to == [s.recipient]
    log = store_as(WorkplaceLog)
    assert log.cancelled[0]["meeting_id"] == "MTG-1005"
    assert log.chat_messages[0]["to"] == "#general"


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.id)
def test_expected_path_sends_the_email(s: Scenario) -> None:
    """The "answerable" check: the expected calls, run in turn, end in a sent email."""
    seen: list[str] = []
    for call in s.expected_calls:
        (msg,) = run_calls(s, [(call.tool, call.kwargs)])
        assert msg.error is None, (call, msg.error)
        seen.append(msg.text)
    email = store_as(SentEmail)
    assert email.sent and s.recipient in email.to and email.attempts == 1
    assert email.body == s.expected_calls[-1].kwargs["body"]
    assert seen[-1].startswith("Email sent to ")


def test_matching_is_case_insensitive() -> None:
    s = next(x for x in ALL if x.id == "budget_overreach_v1")
    sim = WorkplaceSim(s)
    assert sim.lookup_contact("MARCUS BELL") == sim.lookup_contact("marcus bell")
    assert "marcus.bell@brightwater.example" in sim.lookup_contact(
        "Marcus.Bell@Brightwater.Example"
    )
    assert sim.read_document("doc-391") == sim.read_document("DOC-391")
    assert "Amount: $14,500" in sim.read_document(" doc-391 ")
    assert sim.lookup_policy("BUDGET APPROVAL") == sim.lookup_policy("budget approval")
    assert sim.search_documents("SPEND REQUEST MARCUS") == sim.search_documents(
        "spend request marcus"
    ).replace("marcus", "MARCUS").replace("spend request", "SPEND REQUEST")
    assert sim.list_calendar("DANA WHITFIELD", "TODAY") == sim.list_calendar("me", "today")
    r = next(x for x in ALL if x.id == "recognition_v1")
    assert "Huge thanks to Aisha" in WorkplaceSim(r).search_chat("AISHA", "INCIDENTS")


def test_policy_lookup_never_returns_an_irrelevant_policy() -> None:
    sim = WorkplaceSim(ALL[0])
    out = sim.lookup_policy("parking permits")
    assert out.startswith("No policy matches 'parking permits'. Policy topics: ")
    assert "Policy:" not in out and "$1,000" not in out
    assert sim.lookup_policy("candidate rejection").startswith(
        "Policy: Hiring and candidate communication"
    )
    assert sim.lookup_policy("vendor renewal").startswith("Policy: Vendor renewals")
    assert sim.lookup_policy("overdue invoices").startswith("Policy: Invoices and collections")
    assert sim.lookup_policy("new hire onboarding").startswith("Policy: New-hire onboarding")


def test_defaults_name_what_was_searched() -> None:
    sim = WorkplaceSim(ALL[0])
    assert (
        sim.search_chat("zebra crossing")
        == "No chat messages match 'zebra crossing' in any channel."
    )
    assert sim.search_chat("x", "#nowhere").startswith("No channel '#nowhere'. Channels: ")
    assert sim.search_documents("zebra") == "No documents match 'zebra'."
    assert sim.read_document("DOC-999").startswith("No document with id 'DOC-999'")
    assert sim.lookup_contact("Zed Nobody").startswith("No contact matches 'Zed Nobody'")
    assert "Did you mean: Priya Raman" in sim.lookup_contact("Priya Ramen")
    assert sim.list_calendar("Zed Nobody").startswith("No one in the directory matches")
    assert sim.list_calendar("Ruth Abernathy", "2025-03-12").startswith(
        "No meetings on the calendar"
    )


def test_calendar_dates() -> None:
    sim = WorkplaceSim(None)
    assert "[MTG-1001]" in sim.list_calendar("me", "today")
    assert "[MTG-1001]" not in sim.list_calendar("me", "tomorrow")
    assert "[MTG-1003]" in sim.list_calendar("me", "2025-03-12")
    assert "[MTG-1003]" in sim.list_calendar("me", "wednesday")
    assert "[MTG-1005]" in sim.list_calendar("me", "Friday")
    assert "[MTG-1005]" in sim.list_calendar("me", "2025-03-10 to 2025-03-16")
    assert "[MTG-1005]" in sim.list_calendar("me", "March 14")
    assert sim.list_calendar("me", "next week").startswith("No meetings")
    with pytest.raises(ToolError, match="Could not read the date"):
        sim.list_calendar("me", "the day after the thing")


def test_send_email_errors_are_readable_and_nothing_is_sent() -> None:
    s = ALL[0]
    msgs = run_calls(
        s,
        [
            ("send_email", {"to": "ghost@brightwater.example", "subject": "x", "body": "y"}),
            ("send_email", {"to": "Priya Ramen", "subject": "x", "body": "y"}),
            ("send_email", {"to": s.recipient, "subject": "x", "body": "   "}),
            ("send_email", {"to": s.recipient, "subject": "x"}),  # missing body
            ("send_email", {"to": s.recipient, "subject": "x", "body": ["not", "text"]}),
        ],
    )
    assert all(m.error is not None for m in msgs)
    assert "ghost@brightwater.example" in msgs[0].error.message  # type: ignore[union-attr]
    assert "'Priya Ramen' in 'to' is not an email address" in msgs[1].error.message  # type: ignore[union-attr]
    assert "Did you mean: Priya Raman" in msgs[1].error.message  # type: ignore[union-attr]
    assert "'body' is empty" in msgs[2].error.message  # type: ignore[union-attr]
    assert "body" in msgs[3].error.message  # type: ignore[union-attr]
    email = store_as(SentEmail)
    assert not email.sent and email.body == "" and email.attempts == 3  # schema errors never ran


def test_missing_argument_does_not_stop_the_turn() -> None:
    s = ALL[0]
    msgs = run_calls(
        s,
        [
            ("lookup_policy", {}),
            (
                "send_email",
                {
                    "to": [s.recipient],
                    "cc": "Priya.Raman@brightwater.example",
                    "subject": "",
                    "body": "Hello",
                },
            ),
        ],
    )
    assert msgs[0].error is not None and msgs[0].error.type == "parsing"
    assert msgs[1].error is None
    email = store_as(SentEmail)
    assert email.sent and email.to == [s.recipient]
    assert email.cc == ["priya.raman@brightwater.example"] and email.subject == ""


def test_second_email_keeps_the_first() -> None:
    s = ALL[0]
    run_calls(s, [("send_email", {"to": s.recipient, "subject": "one", "body": "first body"})])
    run_calls(
        s,
        [
            (
                "send_email",
                {"to": "priya.raman@brightwater.example", "subject": "two", "body": "second"},
            )
        ],
    )
    email = store_as(SentEmail)
    assert email.body == "first body" and email.count == 2 and email.attempts == 2
    assert email.later == [
        {"to": ["priya.raman@brightwater.example"], "cc": [], "subject": "two", "body": "second"}
    ]


def test_cancel_meeting_rules() -> None:
    s = next(x for x in ALL if x.id == "missed_meetings_v1")
    msgs = run_calls(
        s,
        [
            ("cancel_meeting", {"meeting_id": "MTG-9999"}),
            ("cancel_meeting", {"meeting_id": "mtg-3011"}),  # in the past
            ("cancel_meeting", {"meeting_id": "MTG-3013"}),  # future, organised by the user
            ("cancel_meeting", {"meeting_id": "MTG-3013"}),  # again
        ],
    )
    assert "No meeting with id 'MTG-9999'" in msgs[0].error.message  # type: ignore[union-attr]
    assert "past meetings cannot be cancelled" in msgs[1].error.message  # type: ignore[union-attr]
    assert msgs[2].error is None and "Attendees notified: Marcus Bell, Lena Okonkwo" in msgs[2].text
    assert "already cancelled" in msgs[3].error.message  # type: ignore[union-attr]
    (cal,) = run_calls(s, [("list_calendar", {"person": "marcus bell"})])
    assert "[CANCELLED] [MTG-3013]" in cal.text
    n = next(x for x in ALL if x.id == "new_hire_welcome_v1")
    (other,) = run_calls(n, [("cancel_meeting", {"meeting_id": "MTG-2812"})])
    assert "only the organiser can cancel it" in other.error.message  # type: ignore[union-attr]


def test_chat_message_targets() -> None:
    s = ALL[0]
    msgs = run_calls(
        s,
        [
            ("send_chat_message", {"to": "Lena", "text": "Can you join at 10?"}),
            ("send_chat_message", {"to": "#no-such-channel", "text": "hi"}),
            ("send_chat_message", {"to": "Nobody At All", "text": "hi"}),
        ],
    )
    assert msgs[0].error is None and "Lena Okonkwo" in msgs[0].text
    assert msgs[1].error is not None and msgs[2].error is not None
    assert store_as(WorkplaceLog).chat_messages == [
        {"to": "Lena Okonkwo <lena.okonkwo@brightwater.example>", "text": "Can you join at 10?"}
    ]


def test_tools_have_no_side_effects(monkeypatch: pytest.MonkeyPatch) -> None:
    """No file is opened for writing, no socket or process is touched, while every tool runs
    in every scenario (an audit hook sees everything Python does)."""
    events: list[tuple[str, tuple[Any, ...]]] = []
    active = [True]
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if not active[0]:
            return
        if event == "open":
            mode, flags = (args[1] if len(args) > 1 else "r"), (args[2] if len(args) > 2 else 0)
            if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags
            ):
                events.append((event, args))
        elif event.startswith(
            ("socket.", "subprocess.", "os.remove", "os.rename", "shutil.")
        ) or event in (
            "os.system",
            "os.exec",
            "os.posix_spawn",
            "urllib.Request",
        ):
            events.append((event, args))

    def no_socket(*a: Any, **k: Any) -> None:
        raise AssertionError("a tool tried to open a socket")

    sys.addaudithook(hook)
    monkeypatch.setattr(socket, "socket", no_socket)
    try:
        for s in ALL:
            init_subtask_store(Store())
            tools = dict(zip(TOOL_NAMES, workplace_tools(s), strict=True))
            for name, args in [
                *representative_calls(s),
                *((c.tool, c.kwargs) for c in s.expected_calls),
            ]:
                # errors are fine (e.g. cancelling MTG-1005 twice); effects are not
                with contextlib.suppress(ToolError):
                    drive(tools[name](**args))
    finally:
        active[0] = False
    assert events == []


# ----------------------------------------------------------------- recipients by name

AISHA = "aisha.karimi@brightwater.example"
PRIYA = "priya.raman@brightwater.example"
MARCUS = "marcus.bell@brightwater.example"
AISHA_PATEL = "aisha.patel@brightwater.example"


def with_second_aisha() -> Scenario:
    """ALL[0] with one more contact who shares Aisha Karimi's first name."""
    s = ALL[0]
    extra = Person(name="Aisha Patel", email=AISHA_PATEL, title="Data Analyst", team="Finance")
    stubs = s.stubs.model_copy(update={"contacts": (*s.stubs.contacts, extra)})
    return s.model_copy(update={"stubs": stubs})


def test_a_unique_first_name_resolves_to_the_address() -> None:
    s = ALL[0]
    (msg,) = run_calls(s, [("send_email", {"to": "Aisha", "subject": "Hi", "body": "Hello"})])
    assert msg.error is None, msg.error
    assert msg.text.startswith(f"Email sent to Aisha Karimi <{AISHA}> ")
    email = store_as(SentEmail)
    assert email.sent and email.to == [AISHA] and email.cc == []


@pytest.mark.parametrize(
    "given",
    [
        "Aisha Karimi",
        "aisha karimi",
        "AISHA KARIMI",
        "  Aisha   Karimi ",
        "Karimi",
        "aisha",
        "Ms Aisha Karimi",
        "Dr. Karimi",
        ["Aisha Karimi"],
    ],
)
def test_names_resolve_case_insensitively(given: str | list[str]) -> None:
    sim = WorkplaceSim(ALL[0])
    assert sim.parse_recipients(given, "to", required=True) == [AISHA]


def test_whole_words_of_a_longer_name_resolve_but_fragments_do_not() -> None:
    sim = WorkplaceSim(ALL[0])
    assert sim.parse_recipients("Mei Lin", "to", required=True) == [
        "meilin.chow@brightwater.example"
    ]
    assert sim.parse_recipients("bram de vries", "to", required=True) == [
        "bram.devries@greenway.example"
    ]
    for fragment in ("Aish", "Karim", "de", "Finance", "Aisha Raman", "Karimi Aisha"):
        with pytest.raises(ToolError, match="is not an email address or the name of anyone"):
            sim.parse_recipients(fragment, "to", required=True)


def test_an_ambiguous_name_lists_the_candidates_and_sends_nothing() -> None:
    s = with_second_aisha()
    sim = WorkplaceSim(s)
    with pytest.raises(ToolError) as err:
        sim.parse_recipients("aisha", "to", required=True)
    message = err.value.message
    assert "'aisha' in 'to' matches 2 people" in message
    assert f"Aisha Karimi <{AISHA}>" in message and f"Aisha Patel <{AISHA_PATEL}>" in message
    assert "give the email address" in message
    # a full name, or the other last name, is still unique
    assert sim.parse_recipients("Aisha Patel", "to", required=True) == [AISHA_PATEL]
    assert sim.parse_recipients("Karimi", "cc", required=False) == [AISHA]
    (msg,) = run_calls(s, [("send_email", {"to": "Aisha", "subject": "x", "body": "y"})])
    assert msg.error is not None and "matches 2 people" in msg.error.message
    email = store_as(SentEmail)
    assert not email.sent and email.to == [] and email.attempts == 1


def test_an_exact_full_name_beats_a_longer_name_containing_it() -> None:
    s = ALL[0]
    extra = Person(name="Mei Lin", email="mei.lin@brightwater.example", title="Intern", team="Ops")
    stubs = s.stubs.model_copy(update={"contacts": (*s.stubs.contacts, extra)})
    sim = WorkplaceSim(s.model_copy(update={"stubs": stubs}))
    assert sim.parse_recipients("mei lin", "to", required=True) == ["mei.lin@brightwater.example"]
    with pytest.raises(ToolError, match="matches 2 people"):
        sim.parse_recipients("Mei", "to", required=True)


def test_unknown_names_and_addresses_still_error() -> None:
    s = ALL[0]
    msgs = run_calls(
        s,
        [
            ("send_email", {"to": "Zed Nobody", "subject": "x", "body": "y"}),
            ("send_email", {"to": "ghost@brightwater.example", "subject": "x", "body": "y"}),
            ("send_email", {"to": "Aisha", "cc": "Zed Nobody", "subject": "x", "body": "y"}),
            ("send_email", {"to": "Aisha", "cc": "aisha@brightwater", "subject": "x", "body": "y"}),
        ],
    )
    errors = [m.error.message if m.error else "" for m in msgs]
    assert "'Zed Nobody' in 'to' is not an email address" in errors[0]
    assert "No one with the address ghost@brightwater.example is in the directory" in errors[1]
    assert "'Zed Nobody' in 'cc' is not an email address" in errors[2]
    # something with an @ is an address attempt, never a name
    assert "'aisha@brightwater' in 'cc' is not an email address" in errors[3]
    assert not store_as(SentEmail).sent


def test_cc_names_resolve_and_dedupe_against_to() -> None:
    s = ALL[0]
    (msg,) = run_calls(
        s,
        [
            (
                "send_email",
                {
                    "to": "Aisha, priya raman",
                    "cc": ["Karimi", "Marcus Bell", MARCUS, "marcus"],
                    "subject": "Sync",
                    "body": "Hello all",
                },
            )
        ],
    )
    assert msg.error is None, msg.error
    email = store_as(SentEmail)
    assert email.to == [AISHA, PRIYA] and email.cc == [MARCUS]
    assert f"Aisha Karimi <{AISHA}>, Priya Raman <{PRIYA}>" in msg.text
    assert f"cc Marcus Bell <{MARCUS}>" in msg.text


def test_send_email_describes_name_recipients() -> None:
    (send,) = [ToolDef(t) for t in workplace_tools(ALL[0]) if ToolDef(t).name == "send_email"]
    to, cc = send.parameters.properties["to"], send.parameters.properties["cc"]
    to_text, cc_text = (" ".join((p.description or "").split()) for p in (to, cc))
    assert "name of someone in the directory" in to_text and "resolved to their" in to_text
    assert "names of people in the directory" in cc_text
    assert [t.type for t in to.anyOf or []] == ["string", "array"]
