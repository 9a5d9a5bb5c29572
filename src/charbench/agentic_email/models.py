"""The data model of charbench's simulated workplace and its scenarios (a leaf module).

Frozen pydantic models that *are* the file schema: ``workplace.yaml`` validates as a
:class:`Workplace`, each variant of a scenario family file renders to a
:class:`ScenarioTemplate`. Every model forbids unknown fields; dates and times are real
:class:`datetime.date` / :class:`datetime.time` values (written ``YYYY-MM-DD`` and ``HH:MM``
in the files); text fields are stripped, must not be empty, accept numbers and YAML dates as
text (``14500``, an unquoted ``2025-03-14``), and are made safe with
:func:`charbench.textsafe.sanitize` (tool results carry this text into the eval).

The loaders turn pydantic's ``ValidationError`` into a
:class:`~charbench.agentic_email.errors.DataError` naming the file and the field path
(``people[3].email``). Cross-record rules (unique emails, known managers, facts the tools
return) are checked by the loaders, not here.

Imports no other charbench module except the :mod:`charbench.textsafe` leaf.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from charbench.textsafe import sanitize

_T = TypeVar("_T")

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
"""What charbench treats as an email address in data and tool arguments."""


def norm(text: str) -> str:
    """Case-folded text with runs of white space folded to one space."""
    return " ".join(text.casefold().split())


# --------------------------------------------------------------------------- field types


def _kind(value: object) -> str:
    return type(value).__name__


def _fail(error_type: str, message: str, **ctx: object) -> PydanticCustomError:
    return PydanticCustomError(error_type, message, dict(ctx))


def _to_text(value: Any) -> str:
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp as a datetime
        value = value.strftime("%Y-%m-%d %H:%M")
    elif isinstance(value, date):
        value = value.isoformat()
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail("text_type", "expected text, got {kind}", kind=_kind(value))
    return sanitize(str(value).strip())[0]


def _text(value: Any) -> str:
    out = _to_text(value)
    if not out:
        raise _fail("text_empty", "must not be empty")
    return out


def _opt_text(value: Any) -> str | None:
    return (_to_text(value) or None) if value is not None else None


def _list(value: Any) -> list[Any]:
    """A YAML list (``None`` or a missing key is an empty one; sets and strings are not)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail("list_type", "expected a list, got {kind}", kind=_kind(value))
    return value


def _email(value: str) -> str:
    if not EMAIL_RE.fullmatch(value.lower()):
        raise _fail("email", "not an email address: {v}", v=repr(value.lower()))
    return value.lower()


def _parsed(pattern: str, parse: Callable[[str], Any], expected: str) -> BeforeValidator:
    """Text matching ``pattern`` (YAML dates count as their ISO text), parsed by ``parse``."""

    def validate(value: Any) -> Any:
        text = _to_text(value)
        try:
            if re.fullmatch(pattern, text):
                return parse(text)
        except ValueError:
            pass
        raise _fail("format", "expected {what}, got {v}", what=expected, v=repr(text))

    return BeforeValidator(validate)


def _non_empty(message: str) -> AfterValidator:
    def check(items: tuple[str, ...]) -> tuple[str, ...]:
        if not items:
            raise _fail("empty", message)
        return items

    return AfterValidator(check)


Text = Annotated[str, BeforeValidator(_text)]
OptText = Annotated[str | None, BeforeValidator(_opt_text)]
Upper = Annotated[Text, AfterValidator(str.upper)]
Email = Annotated[Text, AfterValidator(_email)]
Day = Annotated[date, _parsed(r"\d{4}-\d{2}-\d{2}", date.fromisoformat, "a date YYYY-MM-DD")]
HHMM = Annotated[time, _parsed(r"\d{2}:\d{2}", time.fromisoformat, "a time HH:MM")]
Texts = Annotated[tuple[Text, ...], BeforeValidator(_list)]


Listed = Annotated[tuple[_T, ...], BeforeValidator(_list)]
"""``Listed[X]``: a tuple of ``X`` read from a YAML list (``None`` is an empty one)."""


def with_defaults(items: Any, **defaults: object) -> Any:
    """``items`` with ``defaults`` filled into each mapping item (other input unchanged)."""
    if not isinstance(items, list):
        return items
    return [{**defaults, **x} if isinstance(x, dict) else x for x in items]


class Record(BaseModel):
    """Base of every model: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- records


class Person(Record):
    """Someone in the directory: a colleague, a customer or vendor contact, or a scenario
    contact (for example a job candidate).

    ``team`` holds the team for colleagues and the organisation for external contacts;
    ``manager`` is the manager's name (None for the top of the org chart and for external
    contacts).
    """

    name: Text
    email: Email
    title: Text
    team: Text
    manager: OptText = None
    location: OptText = None
    external: StrictBool = False
    note: OptText = None

    def card(self) -> str:
        """One-line directory card, as ``lookup_contact`` returns it."""
        parts = [f"{self.name} <{self.email}>", self.title, self.team]
        parts += [p for p in (self.manager and f"reports to {self.manager}",) if p]
        parts += [p for p in (self.location, self.note) if p]
        return " | ".join(parts)


class Organisation(Record):
    """A customer or vendor; its contacts are external and their ``team`` is its name."""

    name: Text
    description: Text
    contacts: Annotated[Listed[Person], Field(min_length=1)]

    @model_validator(mode="before")
    @classmethod
    def _contacts_belong(cls, data: Any) -> Any:
        if isinstance(data, dict) and "name" in data:
            contacts = with_defaults(data.get("contacts"), team=data["name"], external=True)
            return {**data, "contacts": contacts}
        return data


class Event(Record):
    """A calendar event; ``person`` names the calendar it is on (resolved by the loader)."""

    id: Upper
    person: Text
    date: Day
    start: HHMM
    end: HHMM
    title: Text
    attendees: Texts = ()
    room: OptText = None
    notes: OptText = None

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: time, info: ValidationInfo) -> time:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise _fail(
                "order", "must be after start ({s}), got {e}", s=f"{start:%H:%M}", e=f"{end:%H:%M}"
            )
        return end

    def render(self) -> str:
        """One block as ``list_calendar`` returns it."""
        when = f"{self.date.isoformat()} ({self.date:%A}) {self.start:%H:%M}-{self.end:%H:%M}"
        lines = [f"[{self.id}] {when} {self.title}"]
        if self.room:
            lines.append(f"  Room: {self.room}")
        if self.attendees:
            lines.append(f"  Attendees: {', '.join(self.attendees)}")
        if self.notes:
            lines.extend(f"  {line}" for line in self.notes.strip().splitlines())
        return "\n".join(lines)


class ChatMessage(Record):
    """One chat message; ``author`` (``from`` in the files) is the sender's full name."""

    author: Text = Field(alias="from")
    at: Text
    text: Text

    def render(self) -> str:
        return f"  [{self.at}] {self.author}: {self.text.strip()}"


class ChatThread(Record):
    """A chat thread in a channel (``#name``) or a direct-message channel (``dm:a,b``)."""

    channel: Annotated[Text, AfterValidator(str.lower)]
    messages: Annotated[Listed[ChatMessage], Field(min_length=1)]

    @field_validator("channel")
    @classmethod
    def _is_channel(cls, channel: str) -> str:
        if not channel.startswith(("#", "dm:")):
            raise _fail("channel", "expected '#name' or 'dm:a,b', got {c}", c=repr(channel))
        return channel

    def render(self) -> str:
        return "\n".join([f"{self.channel}", *(m.render() for m in self.messages)])

    def search_text(self) -> str:
        return " ".join([self.channel, *(f"{m.author} {m.text}" for m in self.messages)]).lower()


class Document(Record):
    """A document in the shared drive."""

    id: Upper
    title: Text
    owner: Text
    updated: Day
    text: Text

    def header(self) -> str:
        return f"{self.id} | {self.title} | owner: {self.owner} | updated {self.updated}"

    def render(self) -> str:
        """The full document as ``read_document`` returns it."""
        return f"{self.header()}\n\n{self.text.strip()}"


class Policy(Record):
    """A written policy; ``keywords`` (lower case) are what ``lookup_policy`` matches."""

    title: Text
    keywords: Annotated[
        Texts,
        AfterValidator(lambda ks: tuple(k.lower() for k in ks)),
        _non_empty("give at least one keyword"),
    ]
    text: Text

    def render(self) -> str:
        return f"Policy: {self.title}\n{self.text.strip()}"


# --------------------------------------------------------------------------- the workplace


class OrganisationInfo(Record):
    """The organisation the agent works in (``organisation`` in ``workplace.yaml``)."""

    name: Text
    industry: Text
    headquarters: Text
    timezone: Text


class Holiday(Record):
    date: Day
    name: Text


class Workplace(Record):
    """The standing workplace every scenario shares (the schema of ``workplace.yaml``).

    ``now`` is the simulated current date and time in ``organisation.timezone``.
    ``policies`` maps a policy title to its text; the records, with their keywords, are
    :attr:`policy_records` (``policies`` in the file maps a slug to a record).
    """

    organisation: OrganisationInfo
    now: Annotated[
        datetime,
        _parsed(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", datetime.fromisoformat, "'YYYY-MM-DD HH:MM'"),
    ]
    user: Person
    people: Annotated[Listed[Person], Field(min_length=1)]
    customers: Annotated[Listed[Organisation], Field(min_length=1)]
    vendors: Annotated[Listed[Organisation], Field(min_length=1)]
    policy_map: Annotated[dict[str, Policy], Field(alias="policies", min_length=1)]
    holidays: Listed[Holiday]
    rooms: Texts
    events: Listed[Event] = Field(default=(), alias="calendar")
    chats: Listed[ChatThread] = Field(default=(), alias="chat")
    documents: Listed[Document] = ()

    @property
    def org_name(self) -> str:
        return self.organisation.name

    @property
    def policy_records(self) -> tuple[Policy, ...]:
        return tuple(self.policy_map.values())

    @property
    def policies(self) -> dict[str, str]:
        return {p.title: p.text for p in self.policy_map.values()}

    def directory(self) -> tuple[Person, ...]:
        """Everyone reachable by email: the user, colleagues, customer and vendor contacts."""
        return self._directory

    @functools.cached_property
    def _directory(self) -> tuple[Person, ...]:
        orgs = (*self.customers, *self.vendors)
        return (self.user, *self.people, *(c for org in orgs for c in org.contacts))

    def standing_context(self) -> str:
        """The "Standing context" section of the agent's system prompt, as markdown.

        It states the organisation, the current date and time, whom the agent works for,
        the colleagues, customers, vendors, the policy topics (full texts come from
        ``lookup_policy``), holidays and rooms. It never mentions a persona or a style.
        """
        org, now, user = self.organisation, self.now, self.user
        lines = [
            "## Standing context",
            "",
            f"- Organisation: {org.name} ({org.industry}), headquartered in {org.headquarters}.",
            f"- Current date and time: {now:%A} {now:%Y-%m-%d %H:%M} ({org.timezone}).",
            f"- You act for: {user.name}, {user.title}, {user.team} team <{user.email}>, "
            f"reporting to {user.manager}.",
            "",
            "### Colleagues",
        ]
        for p in self.people:
            mgr = f", reports to {p.manager}" if p.manager else ""
            lines.append(f"- {p.name}: {p.title}, {p.team}{mgr} <{p.email}>")
        for heading, orgs in (("Customers", self.customers), ("Vendors", self.vendors)):
            lines += ["", f"### {heading}"]
            for o in orgs:
                contacts = "; ".join(f"{c.name} ({c.title}) <{c.email}>" for c in o.contacts)
                lines.append(f"- {o.name}: {o.description}. Contacts: {contacts}")
        lines += [
            "",
            "### Policies",
            "Full texts are available through the policy lookup: "
            + "; ".join(p.title for p in self.policy_records)
            + ".",
            "",
            "### Holidays",
            "; ".join(f"{h.date.isoformat()} {h.name}" for h in self.holidays) + ".",
            "",
            "### Meeting rooms",
            "; ".join(self.rooms) + ".",
        ]
        return "\n".join(lines)


# --------------------------------------------------------------------------- scenarios

VARIANTS_PER_FAMILY = 5
"""Each scenario family has exactly this many variants, numbered 1 to 5."""


class Stubs(Record):
    """What the simulated tools know in one scenario, on top of the standing workplace;
    written in the files under the name of the tool that serves it."""

    contacts: Listed[Person] = Field(default=(), alias="lookup_contact")
    events: Listed[Event] = Field(default=(), alias="list_calendar")
    chats: Listed[ChatThread] = Field(default=(), alias="search_chat")
    documents: Listed[Document] = Field(default=(), alias="search_documents")
    policies: Listed[Policy] = Field(default=(), alias="lookup_policy")

    @model_validator(mode="before")
    @classmethod
    def _contacts_are_external(cls, data: Any) -> Any:
        if isinstance(data, dict) and "lookup_contact" in data:
            return {**data, "lookup_contact": with_defaults(data["lookup_contact"], external=True)}
        return data


class ExpectedCall(Record):
    """One tool call of a scenario's expected path."""

    tool: Text
    args: dict[str, Text]

    @property
    def kwargs(self) -> dict[str, str]:
        return dict(self.args)


class ScenarioTemplate(Record):
    """A family's ``template`` once a variant's parameters are filled in."""

    request: Text
    recipient: Email
    stubs: Stubs
    facts: Texts
    expected_path: Listed[ExpectedCall]


def _variant_number(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= VARIANTS_PER_FAMILY:
        return value
    raise _fail(
        "variant", "expected an integer 1-{n}, got {v}", n=VARIANTS_PER_FAMILY, v=repr(value)
    )


def _snake_case(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise _fail("family", "expected a lower_snake_case name, got {v}", v=repr(name))
    return name


class Variant(Record):
    variant: Annotated[int, BeforeValidator(_variant_number)]
    params: dict[str, Text]
    persona_hooks: Texts = ()


class FamilyFile(Record):
    """One scenario family file: a template with ``{placeholders}`` and its variants."""

    family: Annotated[Text, AfterValidator(_snake_case)]
    kind: Text
    description: OptText = None
    persona_hooks: Annotated[Texts, _non_empty("give at least one persona hook")]
    template: dict[str, Any]
    variants: Listed[Variant]


class Scenario(Record):
    """One rendered scenario (a family variant).

    Attributes:
        id: ``<family>_v<variant>``, e.g. ``budget_overreach_v3``; the bootstrap cluster.
        family: the family name (also the data file name).
        variant: 1-5.
        kind: the kind of email the situation calls for (declining, praising...).
        request: the user's request to the agent (25-80 words).
        recipient: the expected ``to`` address (a directory contact, lower case).
        facts: short lines the agent could look up; each appears verbatim in a tool
            response along ``expected_calls``.
        persona_hooks: where a persona could show in the email (metadata only).
        expected_path: tool names of the expected calls (2-6, ending in ``send_email``).
        expected_calls: the expected calls with their arguments.
        stubs: the scenario's tool data.
        source: the file it was loaded from.
    """

    id: str
    family: str
    variant: int
    kind: str
    request: str
    recipient: str
    facts: tuple[str, ...]
    persona_hooks: tuple[str, ...]
    expected_path: tuple[str, ...]
    expected_calls: tuple[ExpectedCall, ...]
    stubs: Stubs
    source: str = ""

    @property
    def min_tool_calls(self) -> int:
        """Number of calls on the expected path."""
        return len(self.expected_path)

    def facts_text(self) -> str:
        """The facts as a short bulleted markdown block (for the draft and chat controls).

        The lines are exactly :attr:`facts`, each prefixed with ``"- "``, in order.
        """
        return "\n".join(f"- {f}" for f in self.facts)

    def directory(self, workplace: Workplace) -> tuple[Person, ...]:
        """Everyone reachable in this scenario: the standing directory plus its contacts."""
        return (*workplace.directory(), *self.stubs.contacts)
