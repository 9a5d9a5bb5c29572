"""The simulated workplace of one scenario: what each tool answers (pure, synchronous).

:class:`WorkplaceSim` answers deterministically from one scenario's stubs and the standing
workplace, in that order, then from sensible defaults (an empty result or a "not found"
that names what was searched). It never reaches the network, the file system or a store;
the Inspect tools of :mod:`charbench.agentic_email.tools` are thin wrappers that record
actions in the sample's store, and the scenario loader runs the same methods to check that
each scenario's facts are what its tools return. Each tool of the registry is a method of
the same name here.

Matching is case-insensitive on normalised arguments, by keyword where that is what a
search tool would do. Invalid input (an empty required argument, an address that is not in
the directory, a recipient name that matches no one or several people, a meeting id that
does not exist, a date that cannot be read) raises :class:`inspect_ai.tool.ToolError`: the
model sees the message and the loop goes on.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from dateutil import parser as date_parser
from inspect_ai.tool import ToolError

from charbench.agentic_email.directory import Directory
from charbench.agentic_email.models import EMAIL_RE, Person, Policy, Scenario, Workplace, norm
from charbench.agentic_email.workplace import load_workplace

CALENDAR_WINDOW_DAYS = 14
"""``list_calendar`` without a date shows this many days either side of today."""

MAX_RESULTS = 5
"""Most items a search returns."""

_STOPWORDS = frozenset(
    (
        "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is",
        "it", "me", "my", "of", "on", "or", "our", "the", "to", "with", "about", "any", "all",
        "this", "that", "these", "those", "was", "were", "will", "what", "when", "where",
        "which", "who", "how", "i", "we", "you", "please", "find", "show", "get",
    )
)  # fmt: skip
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DATE_HELP = (
    "Use YYYY-MM-DD, 'today', 'tomorrow', 'yesterday', a weekday ('friday', 'last monday'), "
    "'this week', 'last week', 'next week', or leave it out for the two weeks around today."
)


def need(value: Any, name: str) -> str:
    """A required text argument, stripped; a readable ToolError when blank or not text."""
    if value is None or not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ToolError(f"'{name}' must be text, got {type(value).__name__}.")
    text = str(value).strip()
    if not text:
        raise ToolError(f"'{name}' is empty; give a value.")
    return text


def meeting_key(meeting_id: str) -> str:
    """A meeting id as the calendar stores it (``" [mtg-1005]"`` -> ``"MTG-1005"``)."""
    return need(meeting_id, "meeting_id").strip("[]()\"' ").upper()


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


@functools.lru_cache(maxsize=1024)
def _policy_index(p: Policy) -> tuple[tuple[tuple[str, str], ...], str]:
    return tuple((k, _stem(k)) for k in p.keywords), p.title.casefold()


def _week_of(day: date) -> date:
    """Monday of the week containing ``day``."""
    return day - timedelta(days=day.weekday())


def _one_day(d: date) -> tuple[date, date, str]:
    return d, d, f"{d.isoformat()} ({d:%A})"


def _span(lo: date, hi: date) -> tuple[date, date, str]:
    return lo, hi, f"{lo.isoformat()} to {hi.isoformat()}"


class OutgoingEmail(NamedTuple):
    """A checked email: directory addresses (``cc`` without those in ``to``), the subject
    (possibly empty) and the non-empty body, all stripped."""

    to: list[str]
    cc: list[str]
    subject: str
    body: str


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
        self.people = Directory((*wp.directory(), *(stubs.contacts if stubs else ())), wp.user)
        self.events = (*(stubs.events if stubs else ()), *wp.events)
        self.chats = (*(stubs.chats if stubs else ()), *wp.chats)
        self.documents = (*(stubs.documents if stubs else ()), *wp.documents)
        self.policies = (*(stubs.policies if stubs else ()), *wp.policy_records)
        self.now = wp.now

    @functools.cached_property
    def _event_people(self) -> dict[str, set[str]]:
        """Emails of the owner and attendees of every event (built on first use)."""
        resolve = self.people.resolve
        return {
            e.id: {p.email for p in (resolve(e.person), *map(resolve, e.attendees)) if p}
            for e in self.events
        }

    # ----------------------------------------------------------------- people

    def _search(self, value: str, field: str, nobody: str) -> tuple[str, list[Person], str]:
        """The query in ``value``, the people it finds, and (when none) the ``nobody``
        message, ``{q}`` filled in, with suggestions."""
        q = need(value, field)
        hits = self.people.search(q)
        return q, hits, "" if hits else nobody.format(q=q) + self.people.suggest(q)

    def lookup_contact(self, name_or_email: str) -> str:
        nobody = f"No contact matches '{{q}}' in the directory of {len(self.people.people)} people."
        _, hits, missing = self._search(name_or_email, "name_or_email", nobody)
        if missing:
            return missing
        shown = hits[:8]
        more = f"\n({len(hits) - len(shown)} more; narrow the search)" if len(hits) > 8 else ""
        return "\n".join(p.card() for p in shown) + more

    # ----------------------------------------------------------------- calendar

    def _date_range(self, spec: str | None) -> tuple[date, date, str]:
        today = self.now.date()
        s = norm(spec or "")
        if s in ("", "any", "all", "upcoming", "recent"):
            window = timedelta(days=CALENDAR_WINDOW_DAYS)
            return _span(today - window, today + window)
        rel = {"today": 0, "tomorrow": 1, "yesterday": -1}
        if s in rel:
            return _one_day(today + timedelta(days=rel[s]))
        weeks = {"this week": 0, "last week": -1, "previous week": -1, "next week": 1}
        if s in weeks:
            monday = _week_of(today + timedelta(weeks=weeks[s]))
            return _span(monday, monday + timedelta(days=6))
        m = re.fullmatch(r"(last |next |this )?([a-z]+)", s)
        if m and m.group(2) in _DAYS:
            shift = {"last ": -1, "next ": 1}.get(m.group(1) or "", 0)
            monday = _week_of(today + timedelta(weeks=shift))
            return _one_day(monday + timedelta(days=_DAYS.index(m.group(2))))
        parts = re.split(r"\s+(?:to|until|through|-)\s+|\.\.", s)
        if len(parts) == 2:
            lo, hi = self._parse_day(parts[0], spec), self._parse_day(parts[1], spec)
            return _span(*sorted((lo, hi)))
        return _one_day(self._parse_day(s, spec))

    def _parse_day(self, s: str, spec: str | None) -> date:
        try:
            parsed: datetime = date_parser.parse(s, default=self.now)
            return parsed.date()
        except (ValueError, OverflowError):
            raise ToolError(f"Could not read the date {spec!r}. {_DATE_HELP}") from None

    def list_calendar(
        self, person: str, date: str | None = None, cancelled: Iterable[str] = ()
    ) -> str:
        nobody = "No one in the directory matches '{q}', so there is no calendar to show."
        q, hits, missing = self._search(person, "person", nobody)
        if missing:
            return missing
        who = self.people.resolve(q)
        if who is None and len(hits) > 1:
            return (
                f"'{q}' matches several people: "
                f"{'; '.join(f'{p.name} <{p.email}>' for p in hits[:8])}. Name one."
            )
        who = who or hits[0]
        lo, hi, label = self._date_range(date)
        gone = {c.upper() for c in cancelled}
        mine = (e for e in self.events if who.email in self._event_people.get(e.id, set()))
        rows = sorted((e for e in mine if lo <= e.date <= hi), key=lambda e: (e.date, e.start))
        if not rows:
            return f"No meetings on the calendar of {who.name} <{who.email}> for {label}."
        blocks = [("[CANCELLED] " if e.id in gone else "") + e.render() for e in rows]
        return f"Calendar of {who.name} <{who.email}>, {label}:\n" + "\n".join(blocks)

    def cancel_meeting(
        self, meeting_id: str, note: str | None = None, cancelled: Iterable[str] = ()
    ) -> str:
        mid = meeting_key(meeting_id)
        event = next((e for e in self.events if e.id == mid), None)
        if event is None:
            ids = ", ".join(e.id for e in self.events[:3])
            raise ToolError(
                f"No meeting with id '{meeting_id}'. Meeting ids look like {ids}; "
                "list_calendar shows them."
            )
        what, day = f"{mid} ({event.title})", event.date.isoformat()
        if mid in {c.upper() for c in cancelled}:
            raise ToolError(f"{what} is already cancelled.")
        user = self.workplace.user
        owner = self.people.resolve(event.person)
        if owner is None or owner.email != user.email:
            who = owner.name if owner else event.person
            raise ToolError(
                f"{what} is organised by {who}; only the organiser can cancel it. "
                f"Ask {who} instead."
            )
        if datetime.combine(event.date, event.start) <= self.now:
            raise ToolError(
                f"{what} already started on {day} at {event.start:%H:%M}; past meetings "
                "cannot be cancelled."
            )
        others = [a for a in event.attendees if norm(a) != norm(user.name)]
        told = f" Attendees notified: {', '.join(others)}." if others else ""
        with_note = f" Note sent: {note.strip()!r}." if note and note.strip() else ""
        return (
            f"Cancelled {mid} '{event.title}' on {day} ({event.date:%A}) "
            f"{event.start:%H:%M}-{event.end:%H:%M}.{told}{with_note}"
        )

    # ----------------------------------------------------------------- chat

    def _channel(self, channel: str | None) -> str | None:
        if channel is None or not str(channel).strip():
            return None
        c = norm(str(channel))
        return c if c.startswith(("#", "dm:")) else "#" + c

    def channels(self) -> list[str]:
        return list(dict.fromkeys(t.channel for t in self.chats))

    def search_chat(self, query: str, channel: str | None = None) -> str:
        q = need(query, "query")
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
        """The channel or the ``Name <email>`` a chat message to ``to`` goes to."""
        t = need(to, "to")
        ch = self._channel(t) if t.strip().startswith("#") else None
        if ch is not None:
            if ch in self.channels() or ch in ("#general", "#kudos"):
                return ch
            raise ToolError(f"No channel '{t}'. Channels: {', '.join(self.channels())}.")
        who = self.people.resolve(t)
        if who is None:
            raise ToolError(
                f"Cannot message '{t}': give one person's name or email, or a "
                f"channel such as #general.{self.people.suggest(t)}"
            )
        return f"{who.name} <{who.email}>"

    def send_chat_message(self, to: str, text: str) -> str:
        target = self.chat_target(to)
        need(text, "text")
        return f"Chat message delivered to {target} at {self.now:%Y-%m-%d %H:%M}."

    # ----------------------------------------------------------------- documents

    def search_documents(self, query: str) -> str:
        q = need(query, "query")
        toks = _tokens(q)
        scored = []
        for i, d in enumerate(self.documents):
            s = 2 * _score(toks, d.title.casefold()) + _score(
                toks, f"{d.id} {d.owner} {d.text}".casefold()
            )
            if s > 0 or d.id.casefold() == norm(q):
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
        q = need(doc_id, "doc_id").strip("[]()\"' ")
        key = q.upper().replace(" ", "")
        for d in self.documents:
            if d.id == key or norm(d.title) == norm(q):
                return d.render()
        return (
            f"No document with id '{q}'. Document ids look like "
            f"{self.documents[0].id if self.documents else 'DOC-100'}; search_documents "
            "finds them."
        )

    # ----------------------------------------------------------------- policies

    def lookup_policy(self, topic: str) -> str:
        q = need(topic, "topic")
        toks = _tokens(q)
        nq = " " + " ".join(toks) + " "
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
        :meth:`Directory.named`) stands for that person's address, as in a mail client's
        address book.

        Raises:
            ToolError: a blank required value, a name that matches no one or several people
                (listing them), or an address that is not in the directory (with
                suggestions).
        """
        if value is not None and not isinstance(value, str | list | tuple):
            raise ToolError(f"'{name}' must be an email address or a list of them.")
        values = [value] if isinstance(value, str) else list(value or [])
        items: list[str] = []
        for v in values:
            if not isinstance(v, str):
                raise ToolError(
                    f"'{name}' must contain email addresses as text, got {type(v).__name__}."
                )
            items += [x for x in re.split(r"[,;\n]", v) if x.strip()]
        if not items and required:
            raise ToolError(f"'{name}' is empty; give at least one email address.")
        out: list[str] = []
        for item in items:
            found: list[str] = EMAIL_RE.findall(item) or [self._address(item, name)]
            for addr in (a.lower() for a in found):
                if addr not in self.people.by_email:
                    raise ToolError(
                        f"No one with the address {addr} is in the directory; "
                        f"nothing was sent.{self.people.suggest(addr)} "
                        "lookup_contact finds addresses."
                    )
                if addr not in out:
                    out.append(addr)
        return out

    def _address(self, item: str, field: str) -> str:
        """The address of the one person ``item`` (no address in it) names in ``field``.

        Raises:
            ToolError: nobody by that name (with suggestions), or several people.
        """
        q = item.strip()
        hits = self.people.named(q)
        if len(hits) == 1:
            return hits[0].email
        if hits:
            shown = ", ".join(f"{p.name} <{p.email}>" for p in hits[:8])
            more = f" and {len(hits) - 8} more" if len(hits) > 8 else ""
            raise ToolError(
                f"'{q}' in '{field}' matches {len(hits)} people in the directory: "
                f"{shown}{more}. Nothing was sent; give the email address of the one you mean."
            )
        who = self.people.resolve(q)
        hint = f" Did you mean {who.email}?" if who else self.people.suggest(q)
        raise ToolError(
            f"'{q}' in '{field}' is not an email address or the name of anyone in the "
            f"directory.{hint}"
        )

    def check_email(
        self, to: str | Sequence[str], subject: str, body: str, cc: str | Sequence[str] | None
    ) -> OutgoingEmail:
        """The email ``send_email`` would send. Raises ToolError (nothing is sent)."""
        to_list = self.parse_recipients(to, "to", required=True)
        cc_list = [a for a in self.parse_recipients(cc, "cc", required=False) if a not in to_list]
        if subject is not None and not isinstance(subject, str):
            raise ToolError(f"'subject' must be text, got {type(subject).__name__}.")
        body_text = need(body if isinstance(body, str) else None, "body")
        return OutgoingEmail(to_list, cc_list, (subject or "").strip(), body_text)

    def confirm_email(self, email: OutgoingEmail) -> str:
        """What ``send_email`` answers once ``email`` is sent."""
        names = ", ".join(f"{self.people.by_email[a].name} <{a}>" for a in email.to)
        ccs = ", ".join(f"{self.people.by_email[a].name} <{a}>" for a in email.cc)
        ccs = f", cc {ccs}" if email.cc else ""
        return (
            f"Email sent to {names}{ccs} with subject '{email.subject or '(no subject)'}' "
            f"({len(email.body.split())} words) at {self.now:%Y-%m-%d %H:%M}."
        )

    def send_email(
        self,
        to: str | Sequence[str],
        subject: str,
        body: str,
        cc: str | Sequence[str] | None = None,
    ) -> str:
        return self.confirm_email(self.check_email(to, subject, body, cc))
