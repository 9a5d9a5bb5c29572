"""The simulated tools of the ``agentic_email`` task: one registry of Inspect tools.

Nine Inspect tools answer from :class:`~charbench.agentic_email.simulator.WorkplaceSim`, the
pure simulator of one scenario, through thin wrappers. Each tool is defined once, below, by
a factory registered with :func:`_workplace_tool`; its name is the factory's name and the
name of the simulator method that answers it. Everything else is derived from that one
registry: :data:`TOOL_NAMES` (the order :func:`workplace_tools` returns them in),
:data:`TOOL_PARAMS` (read from the tools' Inspect definitions, i.e. their signatures) and
:func:`call_tool` (a store-free call, for checks and tests).

Actions leave their trace only in the sample's store: ``send_email`` in :class:`SentEmail`
(the scorer reads the body from there), ``send_chat_message`` and ``cancel_meeting`` in
:class:`WorkplaceLog`. Invalid input raises :class:`inspect_ai.tool.ToolError` (the model
sees the message and the loop goes on); missing or mistyped arguments are caught earlier by
Inspect's schema validation, which also reports back to the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from inspect_ai.tool import Tool, ToolDef, tool
from inspect_ai.util import StoreModel, store_as
from pydantic import Field

from charbench.agentic_email.models import Scenario, Stubs, Workplace
from charbench.agentic_email.simulator import WorkplaceSim, meeting_key


class SentEmail(StoreModel):
    """The email sent in this sample (the sample store, one per sample).

    The first successful ``send_email`` fills ``to``, ``cc``, ``subject`` and ``body`` and
    sets ``sent``; later successful sends only increase ``count`` and are kept in ``later``.
    ``attempts`` counts every ``send_email`` call, failed ones included.
    """

    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    subject: str = ""
    body: str = ""
    sent: bool = False
    attempts: int = 0
    count: int = 0
    later: list[dict[str, Any]] = Field(default_factory=list)


class WorkplaceLog(StoreModel):
    """Other actions taken in this sample: chat messages sent and meetings cancelled."""

    chat_messages: list[dict[str, str]] = Field(default_factory=list)
    cancelled: list[dict[str, str]] = Field(default_factory=list)


ToolFactory = Callable[[WorkplaceSim], Tool]
_REGISTRY: dict[str, ToolFactory] = {}


def _workplace_tool(factory: ToolFactory) -> ToolFactory:
    """Register ``factory`` as the Inspect tool named after it (and after its sim method)."""
    registered: ToolFactory = tool(name=factory.__name__)(factory)
    _REGISTRY[factory.__name__] = registered
    return registered


# --------------------------------------------------------------------------- the tools


@_workplace_tool
def lookup_contact(sim: WorkplaceSim) -> Tool:
    async def execute(name_or_email: str) -> str:
        """Look someone up in the company directory (colleagues, customer and vendor contacts).

        Args:
            name_or_email: A full or partial name, an email address, a job title, a team or
                a customer/vendor company name (case-insensitive).

        Returns:
            One line per match: name <email> | title | team or company | manager.
        """
        return sim.lookup_contact(name_or_email)

    return execute


@_workplace_tool
def list_calendar(sim: WorkplaceSim) -> Tool:
    async def execute(person: str, date: str | None = None) -> str:
        """List the meetings on a person's calendar, with meeting ids, attendees and notes.

        Args:
            person: Whose calendar: a name or email address ("me" for the person you act for).
            date: Optional day or range: YYYY-MM-DD, "today", "tomorrow", "yesterday", a
                weekday ("friday", "last monday"), "this week", "last week", "next week", or
                "YYYY-MM-DD to YYYY-MM-DD". Leave it out for the two weeks around today.

        Returns:
            The meetings in that period, oldest first, or a note that there are none.
        """
        log = store_as(WorkplaceLog)
        return sim.list_calendar(person, date, [c["meeting_id"] for c in log.cancelled])

    return execute


@_workplace_tool
def cancel_meeting(sim: WorkplaceSim) -> Tool:
    async def execute(meeting_id: str, note: str | None = None) -> str:
        """Cancel a future meeting organised by the person you act for; attendees are notified.

        Args:
            meeting_id: The meeting id shown by list_calendar, e.g. "MTG-1005".
            note: Optional short note sent to the attendees with the cancellation.

        Returns:
            A confirmation naming the meeting and the attendees notified.
        """
        log = store_as(WorkplaceLog)
        done = [c["meeting_id"] for c in log.cancelled]
        result = sim.cancel_meeting(meeting_id, note, done)
        entry = {"meeting_id": meeting_key(meeting_id), "note": (note or "").strip()}
        log.cancelled = [*log.cancelled, entry]
        return result

    return execute


@_workplace_tool
def search_chat(sim: WorkplaceSim) -> Tool:
    async def execute(query: str, channel: str | None = None) -> str:
        """Search the team chat history by keywords (names, topics, numbers).

        Args:
            query: Keywords to look for in messages, authors and channel names.
            channel: Optional channel to search only, e.g. "#ops" (the # may be left out).

        Returns:
            Up to 3 matching threads with every message's time and author.
        """
        return sim.search_chat(query, channel)

    return execute


@_workplace_tool
def send_chat_message(sim: WorkplaceSim) -> Tool:
    async def execute(to: str, text: str) -> str:
        """Send a chat message to a person or a channel.

        Args:
            to: A person's name or email address, or a channel such as "#general".
            text: The message.

        Returns:
            A delivery confirmation.
        """
        result = sim.send_chat_message(to, text)
        log = store_as(WorkplaceLog)
        log.chat_messages = [*log.chat_messages, {"to": sim.chat_target(to), "text": text}]
        return result

    return execute


@_workplace_tool
def search_documents(sim: WorkplaceSim) -> Tool:
    async def execute(query: str) -> str:
        """Search the shared drive by keywords in document titles, owners and text.

        Args:
            query: Keywords, e.g. a project, a person's name, a vendor or an invoice number.

        Returns:
            Up to 5 matching documents with id, title, owner, last update and first line.
        """
        return sim.search_documents(query)

    return execute


@_workplace_tool
def read_document(sim: WorkplaceSim) -> Tool:
    async def execute(doc_id: str) -> str:
        """Read a document from the shared drive in full.

        Args:
            doc_id: The document id from search_documents, e.g. "DOC-101" (an exact title
                also works).

        Returns:
            The document's header and full text.
        """
        return sim.read_document(doc_id)

    return execute


@_workplace_tool
def lookup_policy(sim: WorkplaceSim) -> Tool:
    async def execute(topic: str) -> str:
        """Look up the company policy on a topic (expenses, hiring, vendors, feedback...).

        Args:
            topic: The subject in a few words, e.g. "budget approval" or "candidate rejection".

        Returns:
            The best-matching policy text, or the list of policy topics when none matches.
        """
        return sim.lookup_policy(topic)

    return execute


@_workplace_tool
def send_email(sim: WorkplaceSim) -> Tool:
    async def execute(
        to: str | list[str], subject: str, body: str, cc: str | list[str] | None = None
    ) -> str:
        """Send an email from the account of the person you act for.

        Args:
            to: Recipient(s): one email address, several separated by commas, or a list.
                Every address must be in the company directory. The name of someone in the
                directory (e.g. "Priya Raman") is also accepted and resolved to their
                address when it names exactly one person.
            subject: The subject line.
            body: The full text of the email.
            cc: Optional recipient(s) to copy, in the same form as `to` (addresses, or
                names of people in the directory).

        Returns:
            A confirmation with the recipients and subject.
        """
        email = store_as(SentEmail)
        email.attempts = email.attempts + 1
        sent = sim.check_email(to, subject, body, cc)
        if email.sent:
            email.later = [*email.later, sent._asdict()]
        else:
            email.to, email.cc, email.subject, email.body = sent
            email.sent = True
        email.count = email.count + 1
        return sim.confirm_email(sent)

    return execute


# --------------------------------------------------------------------------- derived


def _params(factory: ToolFactory) -> tuple[tuple[str, ...], tuple[str, ...]]:
    # the factories only close over the simulator, so an uninitialised one is enough to
    # read a tool's definition
    definition = ToolDef(factory(WorkplaceSim.__new__(WorkplaceSim)))
    required = tuple(definition.parameters.required)
    return required, tuple(k for k in definition.parameters.properties if k not in required)


TOOL_NAMES: tuple[str, ...] = tuple(_REGISTRY)
"""Names of the tools :func:`workplace_tools` returns, in that order."""

TOOL_PARAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    name: _params(factory) for name, factory in _REGISTRY.items()
}
"""(required, optional) argument names of each tool, from its Inspect definition."""

STUB_TOOLS: tuple[str, ...] = tuple(
    str(f.alias) for f in Stubs.model_fields.values() if f.alias in _REGISTRY
)
"""Tools whose answers a scenario can stub (the other tools act on these data)."""


def call_tool(sim: WorkplaceSim, name: str, args: Mapping[str, Any]) -> str:
    """Run tool ``name`` on ``sim`` with ``args`` without touching any store.

    Raises:
        ToolError: as the tool would.
        KeyError: ``name`` is not a tool.
    """
    if name not in _REGISTRY:
        raise KeyError(name)
    method: Callable[..., str] = getattr(sim, name)
    return method(**args)


def workplace_tools(scenario: Scenario, workplace: Workplace | None = None) -> list[Tool]:
    """The simulated tools for one scenario, in :data:`TOOL_NAMES` order.

    Args:
        scenario: the scenario whose stubs the tools answer from first.
        workplace: the standing workplace (default: the packaged one).

    Returns:
        Inspect tools; give them to ``generate``/``execute_tools``. They keep no state of
        their own: actions are recorded in the current sample's store.
    """
    sim = WorkplaceSim(scenario, workplace)
    return [factory(sim) for factory in _REGISTRY.values()]
