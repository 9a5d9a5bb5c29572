"""The standing simulated workplace of the ``agentic_email`` task.

One fictional organisation, loaded from ``data/workplace.yaml`` and validated on load: the
current date and time, the employee the agent works for, the colleague directory, customers
and vendors with their contacts, policies, holidays, meeting rooms, and a little standing
calendar, chat and document content that every scenario shares.

The data classes here are also the building blocks of scenario stubs
(:mod:`charbench.agentic_email.scenarios`): a scenario adds contacts, calendar events, chat
threads, documents and policies on top of the standing workplace, and the simulated tools
(:mod:`charbench.agentic_email.tools`) answer from both.

Everything here is pure data: no network, no file writes, no model.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

DATA_DIR = Path(__file__).parent / "data"
"""Directory of the packaged workplace and scenario data."""

WORKPLACE_FILE = DATA_DIR / "workplace.yaml"
"""The packaged standing workplace."""

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
"""What charbench treats as an email address in data and tool arguments."""

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_RE = re.compile(r"^\d{2}:\d{2}$")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class DataError(ValueError):
    """A workplace or scenario data file is malformed.

    Attributes:
        file: the file (or ``<string>``) that was being read.
        field: dotted path of the offending field (``""`` for the whole file).
    """

    def __init__(self, file: str | Path, field: str, message: str) -> None:
        self.file = str(file)
        self.field = field
        where = f"{self.file}: {field}" if field else self.file
        super().__init__(f"{where}: {message}")


class WorkplaceError(DataError):
    """``workplace.yaml`` is malformed."""


# --------------------------------------------------------------------------- data classes


@dataclass(frozen=True)
class Person:
    """Someone in the directory: a colleague, a customer or vendor contact, or a scenario
    contact (for example a job candidate).

    ``team`` holds the team for colleagues and the organisation for external contacts;
    ``manager`` is the manager's name (None for the top of the org chart and for external
    contacts).
    """

    name: str
    email: str
    title: str
    team: str
    manager: str | None = None
    location: str | None = None
    external: bool = False
    note: str | None = None

    @property
    def first_name(self) -> str:
        return self.name.split()[0]

    def card(self) -> str:
        """One-line directory card, as ``lookup_contact`` returns it."""
        parts = [f"{self.name} <{self.email}>", self.title, self.team]
        if self.manager:
            parts.append(f"reports to {self.manager}")
        if self.location:
            parts.append(self.location)
        if self.note:
            parts.append(self.note)
        return " | ".join(parts)


@dataclass(frozen=True)
class Organisation:
    """A customer or vendor organisation."""

    name: str
    description: str
    contacts: tuple[Person, ...]


@dataclass(frozen=True)
class Event:
    """A calendar event. ``person`` is the email of the calendar it is on."""

    id: str
    person: str
    date: str
    start: str
    end: str
    title: str
    attendees: tuple[str, ...] = ()
    room: str | None = None
    notes: str | None = None

    def render(self) -> str:
        """One block as ``list_calendar`` returns it."""
        when = f"{self.date} ({weekday(self.date)}) {self.start}-{self.end}"
        lines = [f"[{self.id}] {when} {self.title}"]
        if self.room:
            lines.append(f"  Room: {self.room}")
        if self.attendees:
            lines.append(f"  Attendees: {', '.join(self.attendees)}")
        if self.notes:
            lines.extend(f"  {line}" for line in self.notes.strip().splitlines())
        return "\n".join(lines)


@dataclass(frozen=True)
class ChatMessage:
    """One chat message; ``author`` is the sender's full name."""

    author: str
    at: str
    text: str

    def render(self) -> str:
        return f"  [{self.at}] {self.author}: {self.text.strip()}"


@dataclass(frozen=True)
class ChatThread:
    """A chat thread in a channel (``#name``) or a direct-message channel (``dm:a,b``)."""

    channel: str
    messages: tuple[ChatMessage, ...]

    def render(self) -> str:
        return "\n".join([f"{self.channel}", *(m.render() for m in self.messages)])

    def search_text(self) -> str:
        return " ".join([self.channel, *(f"{m.author} {m.text}" for m in self.messages)]).lower()


@dataclass(frozen=True)
class Document:
    """A document in the shared drive."""

    id: str
    title: str
    owner: str
    updated: str
    text: str

    def header(self) -> str:
        return f"{self.id} | {self.title} | owner: {self.owner} | updated {self.updated}"

    def render(self) -> str:
        """The full document as ``read_document`` returns it."""
        return f"{self.header()}\n\n{self.text.strip()}"


@dataclass(frozen=True)
class Policy:
    """A written policy; ``keywords`` are what ``lookup_policy`` matches topics against."""

    slug: str
    title: str
    keywords: tuple[str, ...]
    text: str

    def render(self) -> str:
        return f"Policy: {self.title}\n{self.text.strip()}"


@dataclass(frozen=True)
class Workplace:
    """The standing workplace every scenario shares.

    ``now`` is the simulated current date and time (``YYYY-MM-DD HH:MM``) in ``timezone``.
    ``policies`` maps a policy title to its text (the detailed records, with keywords, are in
    ``policy_records``).
    """

    org_name: str
    industry: str
    headquarters: str
    timezone: str
    now: str
    user: Person
    people: tuple[Person, ...]
    customers: tuple[Organisation, ...]
    vendors: tuple[Organisation, ...]
    policies: dict[str, str]
    holidays: tuple[tuple[str, str], ...]
    rooms: tuple[str, ...]
    policy_records: tuple[Policy, ...] = ()
    events: tuple[Event, ...] = ()
    chats: tuple[ChatThread, ...] = ()
    documents: tuple[Document, ...] = ()
    source: str = field(default="<memory>", compare=False)

    @property
    def now_dt(self) -> datetime:
        return datetime.fromisoformat(self.now)

    @property
    def today(self) -> date:
        return self.now_dt.date()

    def directory(self) -> tuple[Person, ...]:
        """Everyone reachable by email: the user, colleagues, customer and vendor contacts."""
        return self._directory

    @functools.cached_property
    def _directory(self) -> tuple[Person, ...]:
        out = [self.user, *self.people]
        for org in (*self.customers, *self.vendors):
            out.extend(org.contacts)
        return tuple(out)

    def standing_context(self) -> str:
        """The "Standing context" section of the agent's system prompt, as markdown.

        It states the organisation, the current date and time, whom the agent works for,
        the colleagues, customers, vendors, the policy topics (full texts come from
        ``lookup_policy``), holidays and rooms. It never mentions a persona or a style.
        """
        now = self.now_dt
        lines = [
            "## Standing context",
            "",
            f"- Organisation: {self.org_name} ({self.industry}), headquartered in "
            f"{self.headquarters}.",
            f"- Current date and time: {now:%A} {now:%Y-%m-%d %H:%M} ({self.timezone}).",
            f"- You act for: {self.user.name}, {self.user.title}, {self.user.team} team "
            f"<{self.user.email}>, reporting to {self.user.manager}.",
            "",
            "### Colleagues",
        ]
        for p in self.people:
            mgr = f", reports to {p.manager}" if p.manager else ""
            lines.append(f"- {p.name}: {p.title}, {p.team}{mgr} <{p.email}>")
        lines += ["", "### Customers"]
        for org in self.customers:
            contacts = "; ".join(f"{c.name} ({c.title}) <{c.email}>" for c in org.contacts)
            lines.append(f"- {org.name}: {org.description}. Contacts: {contacts}")
        lines += ["", "### Vendors"]
        for org in self.vendors:
            contacts = "; ".join(f"{c.name} ({c.title}) <{c.email}>" for c in org.contacts)
            lines.append(f"- {org.name}: {org.description}. Contacts: {contacts}")
        lines += [
            "",
            "### Policies",
            "Full texts are available through the policy lookup: "
            + "; ".join(p.title for p in self.policy_records)
            + ".",
            "",
            "### Holidays",
            "; ".join(f"{d} {name}" for d, name in self.holidays) + ".",
            "",
            "### Meeting rooms",
            "; ".join(self.rooms) + ".",
        ]
        return "\n".join(lines)


# --------------------------------------------------------------------------- validation


def weekday(iso: str) -> str:
    """The weekday name of an ISO date (``2025-03-11`` -> ``Tuesday``)."""
    return _WEEKDAYS[date.fromisoformat(iso).weekday()]


class Reader:
    """Typed access to a parsed YAML tree, raising :class:`DataError` naming file and field.

    Args:
        file: name of the file being read (used in error messages).
        error: the :class:`DataError` subclass to raise.
    """

    def __init__(self, file: str | Path, error: type[DataError] = DataError) -> None:
        self.file = str(file)
        self.error = error

    def fail(self, where: str, message: str) -> DataError:
        return self.error(self.file, where, message)

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(where, f"keys must be strings, got {key!r}")
        return value

    def seq(self, value: Any, where: str, *, min_len: int = 0) -> Sequence[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {type(value).__name__}")
        if len(value) < min_len:
            raise self.fail(where, f"expected at least {min_len} item(s), got {len(value)}")
        return value

    def keys(
        self,
        m: Mapping[str, Any],
        where: str,
        required: Sequence[str],
        optional: Sequence[str] = (),
    ) -> None:
        missing = [k for k in required if k not in m]
        if missing:
            raise self.fail(where, f"missing required field(s): {', '.join(missing)}")
        allowed = set(required) | set(optional)
        extra = sorted(k for k in m if k not in allowed)
        if extra:
            raise self.fail(
                f"{where}.{extra[0]}" if where else extra[0],
                f"unknown field; allowed fields here: {', '.join(sorted(allowed))}",
            )

    def text(self, m: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> str:
        path = f"{where}.{key}" if where else key
        value = m.get(key)
        if value is None and optional:
            return ""
        if isinstance(value, datetime):  # YAML reads an unquoted timestamp as a datetime
            value = value.strftime("%Y-%m-%d %H:%M")
        elif isinstance(value, date):
            value = value.isoformat()
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(path, f"expected text, got {type(value).__name__}")
        out = str(value).strip()
        if not out and not optional:
            raise self.fail(path, "must not be empty")
        return out

    def opt_text(self, m: Mapping[str, Any], key: str, where: str) -> str | None:
        return self.text(m, key, where, optional=True) or None

    def texts(self, m: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        path = f"{where}.{key}" if where else key
        if key not in m or m[key] is None:
            return ()
        items = self.seq(m[key], path)
        out = []
        for i, item in enumerate(items):
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise self.fail(f"{path}[{i}]", f"expected text, got {type(item).__name__}")
            s = str(item).strip()
            if not s:
                raise self.fail(f"{path}[{i}]", "must not be empty")
            out.append(s)
        return tuple(out)

    def iso_date(self, m: Mapping[str, Any], key: str, where: str) -> str:
        value = self.text(m, key, where)
        try:
            if not _DATE_RE.match(value):
                raise ValueError
            date.fromisoformat(value)
        except ValueError:
            raise self.fail(
                f"{where}.{key}", f"expected a date YYYY-MM-DD, got {value!r}"
            ) from None
        return value

    def hhmm(self, m: Mapping[str, Any], key: str, where: str) -> str:
        value = self.text(m, key, where)
        try:
            if not _TIME_RE.match(value):
                raise ValueError
            if int(value[:2]) > 23 or int(value[3:]) > 59:
                raise ValueError
        except ValueError:
            raise self.fail(f"{where}.{key}", f"expected a time HH:MM, got {value!r}") from None
        return value

    def email(self, m: Mapping[str, Any], key: str, where: str) -> str:
        value = self.text(m, key, where).lower()
        if not EMAIL_RE.fullmatch(value):
            raise self.fail(f"{where}.{key}", f"not an email address: {value!r}")
        return value


def parse_person(
    r: Reader, m: Any, where: str, *, external: bool = False, team: str | None = None
) -> Person:
    """Parse one directory entry (``name``, ``email``, ``title``, ``team``...)."""
    m = r.mapping(m, where)
    required = ["name", "email", "title"] + ([] if team else ["team"])
    r.keys(m, where, required, ["team", "manager", "location", "note", "external"])
    ext = m.get("external", external)
    if not isinstance(ext, bool):
        raise r.fail(f"{where}.external", "expected true or false")
    return Person(
        name=r.text(m, "name", where),
        email=r.email(m, "email", where),
        title=r.text(m, "title", where),
        team=r.text(m, "team", where) if "team" in m else (team or ""),
        manager=r.opt_text(m, "manager", where),
        location=r.opt_text(m, "location", where),
        external=ext,
        note=r.opt_text(m, "note", where),
    )


def parse_event(r: Reader, m: Any, where: str) -> Event:
    """Parse one calendar event; ``person`` is returned as written (resolved by the caller)."""
    m = r.mapping(m, where)
    r.keys(
        m, where, ["id", "person", "date", "start", "end", "title"], ["attendees", "room", "notes"]
    )
    start, end = r.hhmm(m, "start", where), r.hhmm(m, "end", where)
    if end <= start:
        raise r.fail(f"{where}.end", f"must be after start ({start}), got {end}")
    return Event(
        id=r.text(m, "id", where).upper(),
        person=r.text(m, "person", where),
        date=r.iso_date(m, "date", where),
        start=start,
        end=end,
        title=r.text(m, "title", where),
        attendees=r.texts(m, "attendees", where),
        room=r.opt_text(m, "room", where),
        notes=r.opt_text(m, "notes", where),
    )


def parse_thread(r: Reader, m: Any, where: str) -> ChatThread:
    """Parse one chat thread (``channel`` and ``messages`` with ``from``, ``at``, ``text``)."""
    m = r.mapping(m, where)
    r.keys(m, where, ["channel", "messages"])
    channel = r.text(m, "channel", where)
    if not (channel.startswith("#") or channel.startswith("dm:")):
        raise r.fail(f"{where}.channel", f"expected '#name' or 'dm:a,b', got {channel!r}")
    msgs = []
    for i, raw in enumerate(r.seq(m["messages"], f"{where}.messages", min_len=1)):
        w = f"{where}.messages[{i}]"
        mm = r.mapping(raw, w)
        r.keys(mm, w, ["from", "at", "text"])
        msgs.append(ChatMessage(r.text(mm, "from", w), r.text(mm, "at", w), r.text(mm, "text", w)))
    return ChatThread(channel=channel.lower(), messages=tuple(msgs))


def parse_document(r: Reader, m: Any, where: str) -> Document:
    """Parse one document (``id``, ``title``, ``owner``, ``updated``, ``text``)."""
    m = r.mapping(m, where)
    r.keys(m, where, ["id", "title", "owner", "updated", "text"])
    return Document(
        id=r.text(m, "id", where).upper(),
        title=r.text(m, "title", where),
        owner=r.text(m, "owner", where),
        updated=r.iso_date(m, "updated", where),
        text=r.text(m, "text", where),
    )


def parse_policy(r: Reader, m: Any, where: str, slug: str) -> Policy:
    """Parse one policy (``title``, ``keywords``, ``text``)."""
    m = r.mapping(m, where)
    r.keys(m, where, ["title", "keywords", "text"])
    keywords = tuple(k.lower() for k in r.texts(m, "keywords", where))
    if not keywords:
        raise r.fail(f"{where}.keywords", "give at least one keyword")
    return Policy(
        slug=slug, title=r.text(m, "title", where), keywords=keywords, text=r.text(m, "text", where)
    )


def load_yaml_text(text: str, file: str | Path, error: type[DataError]) -> Any:
    """Parse YAML with the safe loader, turning every YAML problem into ``error``."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # a safe loader (C or pure Python)
    except yaml.YAMLError as e:
        raise error(file, "", f"invalid YAML: {e}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        # e.g. an out-of-range timestamp the resolver cannot build
        raise error(file, "", f"invalid YAML value: {e}") from None


def parse_workplace(data: Any, file: str | Path = "<string>") -> Workplace:
    """Build and validate a :class:`Workplace` from parsed YAML.

    Raises:
        WorkplaceError: naming the file and field of the first problem found (missing or
            unknown fields, bad dates, duplicate emails, a manager who is not in the
            directory, an event on an unknown person's calendar...).
    """
    r = Reader(file, WorkplaceError)
    m = r.mapping(data, "")
    r.keys(
        m,
        "",
        [
            "organisation",
            "now",
            "user",
            "people",
            "customers",
            "vendors",
            "policies",
            "holidays",
            "rooms",
        ],
        ["calendar", "chat", "documents"],
    )
    org = r.mapping(m["organisation"], "organisation")
    r.keys(org, "organisation", ["name", "industry", "headquarters", "timezone"])
    now = r.text(m, "now", "")
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", now):
            raise ValueError
        datetime.fromisoformat(now)
    except ValueError:
        raise r.fail("now", f"expected 'YYYY-MM-DD HH:MM', got {now!r}") from None
    user = parse_person(r, m["user"], "user")
    people = tuple(
        parse_person(r, p, f"people[{i}]")
        for i, p in enumerate(r.seq(m["people"], "people", min_len=1))
    )

    def orgs(key: str) -> tuple[Organisation, ...]:
        out = []
        for i, raw in enumerate(r.seq(m[key], key, min_len=1)):
            w = f"{key}[{i}]"
            om = r.mapping(raw, w)
            r.keys(om, w, ["name", "description", "contacts"])
            name = r.text(om, "name", w)
            contacts = tuple(
                parse_person(r, c, f"{w}.contacts[{j}]", external=True, team=name)
                for j, c in enumerate(r.seq(om["contacts"], f"{w}.contacts", min_len=1))
            )
            out.append(Organisation(name, r.text(om, "description", w), contacts))
        return tuple(out)

    customers, vendors = orgs("customers"), orgs("vendors")
    pol_m = r.mapping(m["policies"], "policies")
    if not pol_m:
        raise r.fail("policies", "give at least one policy")
    policy_records = tuple(parse_policy(r, v, f"policies.{k}", k) for k, v in pol_m.items())
    holidays = []
    for i, raw in enumerate(r.seq(m["holidays"], "holidays")):
        hm = r.mapping(raw, f"holidays[{i}]")
        r.keys(hm, f"holidays[{i}]", ["date", "name"])
        holidays.append(
            (r.iso_date(hm, "date", f"holidays[{i}]"), r.text(hm, "name", f"holidays[{i}]"))
        )
    rooms = r.texts(m, "rooms", "")
    events = tuple(
        parse_event(r, e, f"calendar[{i}]")
        for i, e in enumerate(r.seq(m.get("calendar") or [], "calendar"))
    )
    chats = tuple(
        parse_thread(r, t, f"chat[{i}]") for i, t in enumerate(r.seq(m.get("chat") or [], "chat"))
    )
    docs = tuple(
        parse_document(r, d, f"documents[{i}]")
        for i, d in enumerate(r.seq(m.get("documents") or [], "documents"))
    )

    wp = Workplace(
        org_name=r.text(org, "name", "organisation"),
        industry=r.text(org, "industry", "organisation"),
        headquarters=r.text(org, "headquarters", "organisation"),
        timezone=r.text(org, "timezone", "organisation"),
        now=now,
        user=user,
        people=people,
        customers=customers,
        vendors=vendors,
        policies={p.title: p.text for p in policy_records},
        holidays=tuple(holidays),
        rooms=rooms,
        policy_records=policy_records,
        events=events,
        chats=chats,
        documents=docs,
        source=str(file),
    )
    _check_workplace(wp, r)
    return wp


def _check_workplace(wp: Workplace, r: Reader) -> None:
    seen: dict[str, str] = {}
    for i, p in enumerate(wp.directory()):
        for key in (p.email, p.name.lower()):
            if key in seen:
                raise r.fail(
                    f"directory entry {i} ({p.name})",
                    f"duplicate name or email {key!r} (also {seen[key]})",
                )
            seen[key] = p.name
    names = {p.name for p in (wp.user, *wp.people)}
    for i, p in enumerate((wp.user, *wp.people)):
        if p.manager is not None and p.manager not in names:
            where = "user.manager" if i == 0 else f"people[{i - 1}].manager"
            raise r.fail(where, f"{p.manager!r} is not a colleague in the directory")
    ids: set[str] = set()
    for i, e in enumerate(wp.events):
        if resolve_person(wp.directory(), e.person) is None:
            raise r.fail(f"calendar[{i}].person", f"{e.person!r} is not in the directory")
        if e.id in ids:
            raise r.fail(f"calendar[{i}].id", f"duplicate meeting id {e.id!r}")
        ids.add(e.id)
    doc_ids: set[str] = set()
    for i, d in enumerate(wp.documents):
        if d.id in doc_ids:
            raise r.fail(f"documents[{i}].id", f"duplicate document id {d.id!r}")
        doc_ids.add(d.id)


def resolve_person(directory: Sequence[Person], query: str) -> Person | None:
    """The one person ``query`` names: an exact email, an exact full name, or a unique first
    name or unique name substring (case-insensitive). None if nobody or several match."""
    q = " ".join(query.strip().lower().split())
    if not q:
        return None
    for p in directory:
        if q == p.email or q == p.name.lower():
            return p
    hits = [p for p in directory if q in p.name.lower() or q == p.email.split("@")[0]]
    return hits[0] if len(hits) == 1 else None


def week_bounds(day: date) -> tuple[date, date]:
    """Monday and Sunday of the week containing ``day``."""
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


def load_workplace_file(path: str | Path) -> Workplace:
    """Load and validate a workplace YAML file (uncached).

    Raises:
        WorkplaceError: the file is missing, not YAML, or fails validation.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise WorkplaceError(p, "", f"cannot read the file: {e}") from None
    return parse_workplace(load_yaml_text(text, p, WorkplaceError), p)


@functools.lru_cache(maxsize=1)
def load_workplace() -> Workplace:
    """The packaged standing workplace (``data/workplace.yaml``), loaded once and cached."""
    return load_workplace_file(WORKPLACE_FILE)
