"""The simulated tools of the ``agentic_email`` task.

Nine Inspect tools (:data:`TOOL_NAMES`) answer deterministically from one scenario's stubs
and the standing workplace, in that order, then from sensible defaults (an empty result or a
"not found" that names what was searched). Every tool works in every scenario; none ever
reaches the network or the file system. Matching is case-insensitive on normalised
arguments, by keyword where that is what a search tool would do.

Actions leave their trace only in the sample's store: ``send_email`` in :class:`SentEmail`
(the scorer reads the body from there), ``send_chat_message`` and ``cancel_meeting`` in
:class:`WorkplaceLog`.

Invalid input (an empty required argument, an address that is not in the directory, a
recipient name that matches no one or several people, a meeting id that does not exist, a
date that cannot be read) raises :class:`inspect_ai.tool.ToolError`: the model sees the
message and the loop goes on. Missing or mistyped arguments are caught earlier by
Inspect's schema validation, which also reports back to the model.

The logic lives in :class:`WorkplaceSim`, a pure synchronous object that the scenario
loader also uses to check that each scenario's facts are really what its tools return.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from datetime import date as date_cls
from typing import TYPE_CHECKING, Any

from dateutil import parser as date_parser
from inspect_ai.tool import Tool, ToolError, tool
from inspect_ai.util import StoreModel, store_as
from pydantic import Field

from charbench.agentic_email.workplace import (
    EMAIL_RE,
    ChatThread,
    Document,
    Event,
    Person,
    Policy,
    Workplace,
    load_workplace,
    week_bounds,
)

if TYPE_CHECKING:
    from charbench.agentic_email.scenarios import Scenario

TOOL_NAMES: tuple[str, ...] = (
    "lookup_contact",
    "list_calendar",
    "cancel_meeting",
    "search_chat",
    "send_chat_message",
    "search_documents",
    "read_document",
    "lookup_policy",
    "send_email",
)
"""Names of the tools :func:`workplace_tools` returns, in that order."""

TOOL_PARAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "lookup_contact": (("name_or_email",), ()),
    "list_calendar": (("person",), ("date",)),
    "cancel_meeting": (("meeting_id",), ("note",)),
    "search_chat": (("query",), ("channel",)),
    "send_chat_message": (("to", "text"), ()),
    "search_documents": (("query",), ()),
    "read_document": (("doc_id",), ()),
    "lookup_policy": (("topic",), ()),
    "send_email": (("to", "subject", "body"), ("cc",)),
}
"""(required, optional) argument names of each tool."""

CALENDAR_WINDOW_DAYS = 14
"""``list_calendar`` without a date shows this many days either side of today."""

MAX_RESULTS = 5
"""Most items a search returns."""

_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "in",
        "into",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "the",
        "to",
        "with",
        "about",
        "any",
        "all",
        "this",
        "that",
        "these",
        "those",
        "was",
        "were",
        "will",
        "what",
        "when",
        "where",
        "which",
        "who",
        "how",
        "i",
        "we",
        "you",
        "please",
        "find",
        "show",
        "get",
    }
)


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


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


def _need(value: Any, name: str) -> str:
    """A required text argument, stripped; a readable ToolError when blank or not text."""
    if value is None or not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ToolError(f"'{name}' must be text, got {type(value).__name__}.")
    text = str(value).strip()
    if not text:
        raise ToolError(f"'{name}' is empty; give a value.")
    return text


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def _tokens(text: str) -> list[str]:
    out = []
    for t in re.findall(r"[a-z0-9$][a-z0-9$.,'-]*[a-z0-9]|[a-z0-9]", text.casefold()):
        t = t.replace("'s", "").strip(".,'-")
        if t and t not in _STOPWORDS and (len(t) > 1 or t.isdigit()):
            out.append(t)
    return list(dict.fromkeys(out))


@functools.lru_cache(maxsize=65536)
def _stem(token: str) -> str:
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 3 and token.endswith("s") and not token.endswith("ss"):
        return token[:-1]
    return token


def _score(tokens: Sequence[str], text: str) -> int:
    return sum(1 for t in tokens if _stem(t) in text)


_TITLES = frozenset(
    {"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "professor", "sir", "dame", "madam"}
)
"""Courtesy titles dropped from the front of a name given as a recipient."""

_PARTICLES = frozenset(
    {"de", "van", "von", "der", "den", "da", "di", "du", "la", "le", "del", "della", "dos"}
    | {"das", "bin", "ibn", "al", "el", "st", "mac", "mc", "ter", "ten", "y"}
)
"""Name particles: a recipient given only as these ("de") names no one."""


def _name_words(text: str) -> tuple[str, ...]:
    """The words of a person's name: case- and accent-folded, punctuation dropped
    (hyphenated and apostrophe'd words stay whole)."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).casefold()
    return tuple(re.findall(r"[^\W_]+(?:['\u2019-][^\W_]+)*", plain))


def _query_name_words(text: str) -> tuple[str, ...]:
    """:func:`_name_words` of a name given as a recipient, leading titles ("Ms", "Dr.")
    dropped."""
    words = _name_words(text)
    while len(words) > 1 and words[0] in _TITLES:
        words = words[1:]
    return words


@functools.lru_cache(maxsize=4096)
def _person_name_words(p: Person) -> tuple[str, ...]:
    return _name_words(p.name)


def _names(words: Sequence[str], p: Person) -> bool:
    """Whether ``words`` are whole consecutive words of ``p``'s name: the full name, the
    first or last name, or a run such as "Mei Lin" of "Mei Lin Chow"."""
    name, n = _person_name_words(p), len(words)
    return n > 0 and any(name[i : i + n] == tuple(words) for i in range(len(name) - n + 1))


@functools.lru_cache(maxsize=4096)
def _person_hay(p: Person) -> str:
    return _norm(f"{p.name} {p.email} {p.title} {p.team}")


@functools.lru_cache(maxsize=1024)
def _policy_index(p: Policy) -> tuple[tuple[tuple[str, str], ...], str]:
    return tuple((k, _stem(k)) for k in p.keywords), p.title.casefold()


class WorkplaceSim:
    """The simulated workplace of one scenario (pure: no store, no I/O).

    Args:
        scenario: the scenario whose stubs come first; None for the standing workplace only.
        workplace: the standing workplace (default: the packaged one).
    """

    def __init__(self, scenario: Scenario | None, workplace: Workplace | None = None) -> None:
        self.workplace = wp = workplace or load_workplace()
        self.scenario = scenario
        stubs = scenario.stubs if scenario is not None else None
        self.people: tuple[Person, ...] = (*wp.directory(), *(stubs.contacts if stubs else ()))
        self.events: tuple[Event, ...] = (*(stubs.events if stubs else ()), *wp.events)
        self.chats: tuple[ChatThread, ...] = (*(stubs.chats if stubs else ()), *wp.chats)
        self.documents: tuple[Document, ...] = (*(stubs.documents if stubs else ()), *wp.documents)
        self.policies: tuple[Policy, ...] = (*(stubs.policies if stubs else ()), *wp.policy_records)
        self.now = wp.now_dt
        self._by_email = {p.email: p for p in self.people}
        self._exact: dict[str, Person] = {}
        for p in self.people:
            self._exact.setdefault(p.email, p)
            self._exact.setdefault(p.name.casefold(), p)
        self._hay = [(p, _person_hay(p)) for p in self.people]
        self._event_people_cache: dict[str, set[str]] | None = None

    @property
    def _event_people(self) -> dict[str, set[str]]:
        """Emails of the owner and attendees of every event (built on first use)."""
        if self._event_people_cache is None:
            self._event_people_cache = {
                e.id: {
                    p.email
                    for p in (self.find_person(e.person), *map(self.find_person, e.attendees))
                    if p
                }
                for e in self.events
            }
        return self._event_people_cache

    # ----------------------------------------------------------------- people

    def find_people(self, query: str) -> list[Person]:
        """People matching ``query``: an exact email or name first, else every person whose
        name, email, title or team/organisation contains all of the query's words."""
        q = _norm(query).strip("<>\"' ")
        if not q:
            return []
        if q in ("me", "myself", "my", "i"):
            return [self.workplace.user]
        if q in self._exact:
            return [self._exact[q]]
        emails = [e.lower() for e in EMAIL_RE.findall(q)]
        if emails:
            return [self._by_email[e] for e in emails if e in self._by_email]
        words = q.replace(",", " ").split()
        return [p for p, hay in self._hay if all(w in hay for w in words)]

    def find_person(self, query: str) -> Person | None:
        """The single person ``query`` names, or None (nobody, or ambiguous)."""
        hits = self.find_people(query)
        if len(hits) == 1:
            return hits[0]
        name_hits = [p for p in hits if _norm(query) in p.name.casefold()]
        return name_hits[0] if len(name_hits) == 1 else None

    def people_named(self, name: str) -> list[Person]:
        """The people whose name ``name`` plausibly is, as an address book resolves it:
        their full name, first or last name, or a run of whole words of the full name
        (case- and accent-insensitive, courtesy titles such as "Ms" or "Dr." ignored).
        Someone whose full name it is exactly wins over partial matches. Anything with an
        ``@`` is an address, not a name, and names no one."""
        if "@" in name:
            return []
        words = _query_name_words(name)
        if all(w in _PARTICLES or w in _TITLES for w in words):
            return []
        hits = [p for p in self.people if _names(words, p)]
        exact = [p for p in hits if _person_name_words(p) == words]
        return exact or hits

    def _suggest(self, query: str) -> str:
        names = [p.name for p in self.people] + [p.email for p in self.people]
        close = difflib.get_close_matches(query.strip(), names, n=3, cutoff=0.6)
        return f" Did you mean: {', '.join(close)}?" if close else ""

    def lookup_contact(self, name_or_email: str) -> str:
        q = _need(name_or_email, "name_or_email")
        hits = self.find_people(q)
        if not hits:
            return (
                f"No contact matches '{q}' in the directory of {len(self.people)} people."
                f"{self._suggest(q)}"
            )
        shown = hits[:8]
        more = f"\n({len(hits) - len(shown)} more; narrow the search)" if len(hits) > 8 else ""
        return "\n".join(p.card() for p in shown) + more

    # ----------------------------------------------------------------- calendar

    def _date_range(self, spec: str | None) -> tuple[date, date, str]:
        today = self.now.date()
        s = _norm(spec or "")
        if s in ("", "any", "all", "upcoming", "recent"):
            lo = today - timedelta(days=CALENDAR_WINDOW_DAYS)
            hi = today + timedelta(days=CALENDAR_WINDOW_DAYS)
            return lo, hi, f"{lo.isoformat()} to {hi.isoformat()}"
        rel = {"today": 0, "tomorrow": 1, "yesterday": -1}
        if s in rel:
            d = today + timedelta(days=rel[s])
            return d, d, f"{d.isoformat()} ({d:%A})"
        weeks = {"this week": 0, "last week": -1, "previous week": -1, "next week": 1}
        if s in weeks:
            mon, sun = week_bounds(today + timedelta(weeks=weeks[s]))
            return mon, sun, f"{mon.isoformat()} to {sun.isoformat()}"
        days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        m = re.fullmatch(r"(last |next |this )?([a-z]+)", s)
        if m and m.group(2) in days:
            shift = {"last ": -1, "next ": 1}.get(m.group(1) or "", 0)
            mon, _ = week_bounds(today + timedelta(weeks=shift))
            d = mon + timedelta(days=days.index(m.group(2)))
            return d, d, f"{d.isoformat()} ({d:%A})"
        parts = re.split(r"\s+(?:to|until|through|-)\s+|\.\.", s)
        if len(parts) == 2:
            lo, hi = self._parse_day(parts[0], spec), self._parse_day(parts[1], spec)
            if hi < lo:
                lo, hi = hi, lo
            return lo, hi, f"{lo.isoformat()} to {hi.isoformat()}"
        d = self._parse_day(s, spec)
        return d, d, f"{d.isoformat()} ({d:%A})"

    def _parse_day(self, s: str, spec: str | None) -> date:
        try:
            parsed: datetime = date_parser.parse(s, default=self.now)
            return parsed.date()
        except (ValueError, OverflowError):
            raise ToolError(
                f"Could not read the date {spec!r}. Use YYYY-MM-DD, 'today', 'tomorrow', "
                "'yesterday', a weekday ('friday', 'last monday'), 'this week', 'last week', "
                "'next week', or leave it out for the two weeks around today."
            ) from None

    def list_calendar(
        self, person: str, date: str | None = None, cancelled: Iterable[str] = ()
    ) -> str:
        q = _need(person, "person")
        hits = self.find_people(q)
        if not hits:
            return (
                f"No one in the directory matches '{q}', so there is no calendar to show."
                f"{self._suggest(q)}"
            )
        if len(hits) > 1 and self.find_person(q) is None:
            return (
                f"'{q}' matches several people: "
                f"{'; '.join(f'{p.name} <{p.email}>' for p in hits[:8])}. Name one."
            )
        who = self.find_person(q) or hits[0]
        lo, hi, label = self._date_range(date)
        gone = {c.upper() for c in cancelled}
        rows = sorted(
            (
                e
                for e in self.events
                if who.email in self._event_people.get(e.id, set())
                and lo <= date_cls.fromisoformat(e.date) <= hi
            ),
            key=lambda e: (e.date, e.start),
        )
        if not rows:
            return f"No meetings on the calendar of {who.name} <{who.email}> for {label}."
        blocks = [("[CANCELLED] " if e.id in gone else "") + e.render() for e in rows]
        return f"Calendar of {who.name} <{who.email}>, {label}:\n" + "\n".join(blocks)

    def cancel_meeting(
        self, meeting_id: str, note: str | None = None, cancelled: Iterable[str] = ()
    ) -> str:
        mid = _need(meeting_id, "meeting_id").strip("[]()\"' ").upper()
        event = next((e for e in self.events if e.id == mid), None)
        if event is None:
            ids = ", ".join(e.id for e in self.events[:3])
            raise ToolError(
                f"No meeting with id '{meeting_id}'. Meeting ids look like {ids}; "
                "list_calendar shows them."
            )
        if mid in {c.upper() for c in cancelled}:
            raise ToolError(f"{mid} ({event.title}) is already cancelled.")
        user = self.workplace.user
        owner = self.find_person(event.person)
        if owner is None or owner.email != user.email:
            who = owner.name if owner else event.person
            raise ToolError(
                f"{mid} ({event.title}) is organised by {who}; only the organiser "
                f"can cancel it. Ask {who} instead."
            )
        start = datetime.fromisoformat(f"{event.date} {event.start}")
        if start <= self.now:
            raise ToolError(
                f"{mid} ({event.title}) already started on {event.date} at "
                f"{event.start}; past meetings cannot be cancelled."
            )
        others = [a for a in event.attendees if _norm(a) != _norm(user.name)]
        told = f" Attendees notified: {', '.join(others)}." if others else ""
        with_note = f" Note sent: {note.strip()!r}." if note and note.strip() else ""
        return (
            f"Cancelled {mid} '{event.title}' on {event.date} ({weekday_of(event.date)}) "
            f"{event.start}-{event.end}.{told}{with_note}"
        )

    # ----------------------------------------------------------------- chat

    def _channel(self, channel: str | None) -> str | None:
        if channel is None or not str(channel).strip():
            return None
        c = _norm(str(channel))
        if not c.startswith("#") and not c.startswith("dm:"):
            c = "#" + c
        return c

    def channels(self) -> list[str]:
        return list(dict.fromkeys(t.channel for t in self.chats))

    def search_chat(self, query: str, channel: str | None = None) -> str:
        q = _need(query, "query")
        ch = self._channel(channel)
        threads = list(self.chats)
        if ch is not None:
            threads = [t for t in threads if t.channel == ch or ch.lstrip("#") in t.channel]
            if not threads:
                return (
                    f"No channel '{channel}'. Channels: {', '.join(self.channels())}. "
                    "Leave the channel out to search all of them."
                )
        toks = _tokens(q)
        scored = [(_score(toks, t.search_text()), i, t) for i, t in enumerate(threads)]
        hits = sorted((x for x in scored if x[0] > 0), key=lambda x: (-x[0], x[1]))[:3]
        where = f"in {ch}" if ch else "in any channel"
        if not hits:
            return f"No chat messages match '{q}' {where}."
        return f"{len(hits)} thread(s) matching '{q}' {where}:\n\n" + "\n\n".join(
            t.render() for _, _, t in hits
        )

    def chat_target(self, to: str) -> str:
        t = _need(to, "to")
        ch = self._channel(t) if t.strip().startswith("#") else None
        if ch is not None:
            if ch in self.channels() or ch in ("#general", "#kudos"):
                return ch
            raise ToolError(f"No channel '{t}'. Channels: {', '.join(self.channels())}.")
        who = self.find_person(t)
        if who is None:
            raise ToolError(
                f"Cannot message '{t}': give one person's name or email, or a "
                f"channel such as #general.{self._suggest(t)}"
            )
        return f"{who.name} <{who.email}>"

    def send_chat_message(self, to: str, text: str) -> str:
        target = self.chat_target(to)
        _need(text, "text")
        return f"Chat message delivered to {target} at {self.now:%Y-%m-%d %H:%M}."

    # ----------------------------------------------------------------- documents

    def search_documents(self, query: str) -> str:
        q = _need(query, "query")
        toks = _tokens(q)
        scored = []
        for i, d in enumerate(self.documents):
            s = 2 * _score(toks, d.title.casefold()) + _score(
                toks, f"{d.id} {d.owner} {d.text}".casefold()
            )
            if s > 0 or d.id.casefold() == _norm(q):
                scored.append((s, i, d))
        hits = sorted(scored, key=lambda x: (-x[0], x[1]))[:MAX_RESULTS]
        if not hits:
            return f"No documents match '{q}'."
        lines = []
        for _, _, d in hits:
            first = d.text.strip().splitlines()[0]
            snippet = first if len(first) <= 120 else first[:117] + "..."
            lines.append(f"- {d.header()}\n  {snippet}")
        return (
            f"{len(hits)} document(s) matching '{q}' (read_document shows the full text):\n"
            + "\n".join(lines)
        )

    def read_document(self, doc_id: str) -> str:
        q = _need(doc_id, "doc_id").strip("[]()\"' ")
        key = q.upper().replace(" ", "")
        for d in self.documents:
            if d.id == key or _norm(d.title) == _norm(q):
                return d.render()
        return (
            f"No document with id '{q}'. Document ids look like "
            f"{self.documents[0].id if self.documents else 'DOC-100'}; search_documents "
            "finds them."
        )

    # ----------------------------------------------------------------- policies

    def lookup_policy(self, topic: str) -> str:
        q = _need(topic, "topic")
        nq = " " + " ".join(_tokens(q)) + " "
        toks = _tokens(q)
        scored = []
        for i, p in enumerate(self.policies):
            keys, title = _policy_index(p)
            s = 2 * sum(1 for k, ks in keys if f" {k} " in nq or f" {ks} " in nq)
            s += _score(toks, title)
            if s > 0:
                scored.append((s, i, p))
        if not scored:
            topics = "; ".join(dict.fromkeys(p.title for p in self.policies))
            return f"No policy matches '{q}'. Policy topics: {topics}."
        scored.sort(key=lambda x: (-x[0], x[1]))
        best = [p for s, _, p in scored if s == scored[0][0]][:2]
        return "\n\n".join(p.render() for p in best)

    # ----------------------------------------------------------------- email

    def parse_recipients(
        self, value: str | Sequence[str] | None, name: str, required: bool
    ) -> list[str]:
        """Directory addresses in ``value`` (a string with commas/semicolons, or a list).

        An item without an address that names exactly one person in the directory (see
        :meth:`people_named`) stands for that person's address, as in a mail client's
        address book.

        Raises:
            ToolError: a blank required value, a name that matches no one or several people
                (listing them), or an address that is not in the directory (with
                suggestions).
        """
        if value is None:
            items: list[str] = []
        elif isinstance(value, str):
            items = [x for x in re.split(r"[,;\n]", value) if x.strip()]
        elif isinstance(value, list | tuple):
            items = []
            for v in value:
                if not isinstance(v, str):
                    raise ToolError(
                        f"'{name}' must contain email addresses as text, got {type(v).__name__}."
                    )
                items += [x for x in re.split(r"[,;\n]", v) if x.strip()]
        else:
            raise ToolError(f"'{name}' must be an email address or a list of them.")
        if not items and required:
            raise ToolError(f"'{name}' is empty; give at least one email address.")
        out: list[str] = []
        for item in items:
            found = EMAIL_RE.findall(item)
            if not found:
                found = [self._resolve_name(item, name)]
            for addr in (a.lower() for a in found):
                if addr not in self._by_email:
                    raise ToolError(
                        f"No one with the address {addr} is in the directory; "
                        f"nothing was sent.{self._suggest(addr)} "
                        "lookup_contact finds addresses."
                    )
                if addr not in out:
                    out.append(addr)
        return out

    def _resolve_name(self, item: str, field: str) -> str:
        """The address of the one person ``item`` (no address in it) names in ``field``.

        Raises:
            ToolError: nobody by that name (with suggestions), or several people.
        """
        q = item.strip()
        hits = self.people_named(q)
        if len(hits) == 1:
            return hits[0].email
        if hits:
            shown = ", ".join(f"{p.name} <{p.email}>" for p in hits[:8])
            more = f" and {len(hits) - 8} more" if len(hits) > 8 else ""
            raise ToolError(
                f"'{q}' in '{field}' matches {len(hits)} people in the directory: "
                f"{shown}{more}. Nothing was sent; give the email address of the one you mean."
            )
        who = self.find_person(q)
        hint = f" Did you mean {who.email}?" if who else self._suggest(q)
        raise ToolError(
            f"'{q}' in '{field}' is not an email address or the name of anyone in the "
            f"directory.{hint}"
        )

    def check_email(
        self,
        to: str | Sequence[str],
        subject: str,
        body: str,
        cc: str | Sequence[str] | None = None,
    ) -> tuple[list[str], list[str], str, str]:
        """Validate an email; returns (to, cc, subject, body). Raises ToolError."""
        to_list = self.parse_recipients(to, "to", required=True)
        cc_list = [a for a in self.parse_recipients(cc, "cc", required=False) if a not in to_list]
        if subject is not None and not isinstance(subject, str):
            raise ToolError(f"'subject' must be text, got {type(subject).__name__}.")
        body_text = _need(body, "body") if isinstance(body, str) else _need(None, "body")
        return to_list, cc_list, (subject or "").strip(), body_text

    def send_email(
        self,
        to: str | Sequence[str],
        subject: str,
        body: str,
        cc: str | Sequence[str] | None = None,
    ) -> str:
        to_list, cc_list, subj, text = self.check_email(to, subject, body, cc)
        names = ", ".join(f"{self._by_email[a].name} <{a}>" for a in to_list)
        ccs = ", ".join(f"{self._by_email[a].name} <{a}>" for a in cc_list)
        ccs = f", cc {ccs}" if cc_list else ""
        return (
            f"Email sent to {names}{ccs} with subject '{subj or '(no subject)'}' "
            f"({len(text.split())} words) at {self.now:%Y-%m-%d %H:%M}."
        )

    # ----------------------------------------------------------------- dispatch

    def call(self, name: str, args: Mapping[str, Any]) -> str:
        """Run tool ``name`` with ``args`` without touching any store (for checks/tests).

        Raises:
            ToolError: as the tool would.
            KeyError: ``name`` is not a tool.
        """
        fn = {
            "lookup_contact": self.lookup_contact,
            "list_calendar": self.list_calendar,
            "cancel_meeting": self.cancel_meeting,
            "search_chat": self.search_chat,
            "send_chat_message": self.send_chat_message,
            "search_documents": self.search_documents,
            "read_document": self.read_document,
            "lookup_policy": self.lookup_policy,
            "send_email": self.send_email,
        }[name]
        result: str = fn(**args)  # type: ignore[operator]
        return result


def weekday_of(iso: str) -> str:
    """Weekday name of an ISO date."""
    return _WEEKDAYS[date_cls.fromisoformat(iso).weekday()]


# --------------------------------------------------------------------------- Inspect tools


@tool(name="lookup_contact")
def _lookup_contact(sim: WorkplaceSim) -> Tool:
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


@tool(name="list_calendar")
def _list_calendar(sim: WorkplaceSim) -> Tool:
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


@tool(name="cancel_meeting")
def _cancel_meeting(sim: WorkplaceSim) -> Tool:
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
        mid = meeting_id.strip("[]()\"' ").upper()
        log.cancelled = [*log.cancelled, {"meeting_id": mid, "note": (note or "").strip()}]
        return result

    return execute


@tool(name="search_chat")
def _search_chat(sim: WorkplaceSim) -> Tool:
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


@tool(name="send_chat_message")
def _send_chat_message(sim: WorkplaceSim) -> Tool:
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


@tool(name="search_documents")
def _search_documents(sim: WorkplaceSim) -> Tool:
    async def execute(query: str) -> str:
        """Search the shared drive by keywords in document titles, owners and text.

        Args:
            query: Keywords, e.g. a project, a person's name, a vendor or an invoice number.

        Returns:
            Up to 5 matching documents with id, title, owner, last update and first line.
        """
        return sim.search_documents(query)

    return execute


@tool(name="read_document")
def _read_document(sim: WorkplaceSim) -> Tool:
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


@tool(name="lookup_policy")
def _lookup_policy(sim: WorkplaceSim) -> Tool:
    async def execute(topic: str) -> str:
        """Look up the company policy on a topic (expenses, hiring, vendors, feedback...).

        Args:
            topic: The subject in a few words, e.g. "budget approval" or "candidate rejection".

        Returns:
            The best-matching policy text, or the list of policy topics when none matches.
        """
        return sim.lookup_policy(topic)

    return execute


@tool(name="send_email")
def _send_email(sim: WorkplaceSim) -> Tool:
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
        result = sim.send_email(to, subject, body, cc)
        to_list, cc_list, subj, text = sim.check_email(to, subject, body, cc)
        if not email.sent:
            email.to, email.cc, email.subject, email.body = to_list, cc_list, subj, text
            email.sent = True
        else:
            email.later = [
                *email.later,
                {"to": to_list, "cc": cc_list, "subject": subj, "body": text},
            ]
        email.count = email.count + 1
        return result

    return execute


_FACTORIES = {
    "lookup_contact": _lookup_contact,
    "list_calendar": _list_calendar,
    "cancel_meeting": _cancel_meeting,
    "search_chat": _search_chat,
    "send_chat_message": _send_chat_message,
    "search_documents": _search_documents,
    "read_document": _read_document,
    "lookup_policy": _lookup_policy,
    "send_email": _send_email,
}


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
    return [_FACTORIES[name](sim) for name in TOOL_NAMES]
