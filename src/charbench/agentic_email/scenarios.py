"""The 50 scenarios of the ``agentic_email`` task: 10 families x 5 variants.

Each family lives in ``data/scenarios/<family>.yaml`` as one *template* plus five variants
that fill its ``{placeholders}`` (names, amounts, teams, stakes). A rendered scenario has the
user's request to the agent, the expected recipient, the stub data the simulated tools answer
from (contacts, calendar events, chat threads, documents, policies, on top of the standing
workplace), the facts a competent agent would have looked up, where a persona could show,
and the 2-6 tool calls a competent agent makes, ending in ``send_email``.

Family file layout::

    family: candidate_rejection     # must equal the file name
    kind: declining                 # the kind of email (free text)
    description: ...
    persona_hooks: [...]            # where a persona could show (metadata only)
    template:
      request: "..."                # 25-80 words once rendered; never names a persona/style
      recipient: "{candidate_email}"
      stubs:                        # keyed by the tool that serves them
        lookup_contact: [{name, email, title, team, ...}]      # scenario contacts
        list_calendar: [{id, person, date, start, end, title, attendees, room, notes}]
        search_chat: [{channel, messages: [{from, at, text}]}]
        search_documents: [{id, title, owner, updated, text}]  # also read by read_document
        lookup_policy: [{title, keywords, text}]
      facts: ["..."]                # each must appear verbatim in a tool response on the path
      expected_path: [{tool, args}] # 2-6 calls, the last a send_email to the recipient
    variants:
      - {variant: 1, params: {...}, persona_hooks: [...]}   # exactly variants 1..5

Loading validates everything and raises :class:`ScenarioError` (a ``ValueError``) naming the
file and the field: schema errors, unknown tools in stubs or paths, duplicate ids, contacts
that are not in the directory, a request of the wrong length, the wrong number of variants,
and facts that the expected tool calls do not actually return.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charbench.agentic_email.workplace import (
    DATA_DIR,
    EMAIL_RE,
    ChatThread,
    DataError,
    Document,
    Event,
    Person,
    Policy,
    Reader,
    Workplace,
    load_workplace,
    load_yaml_text,
    parse_document,
    parse_event,
    parse_person,
    parse_thread,
    resolve_person,
)
from charbench.personas import DISPLAY_NAMES, PERSONAS

SCENARIO_DIR = DATA_DIR / "scenarios"
"""Directory of the packaged scenario families."""

FAMILIES: tuple[str, ...] = (
    "candidate_rejection",
    "dependency_slip",
    "recognition",
    "proposal_critique",
    "missed_commitment",
    "vendor_renewal",
    "overdue_invoice",
    "new_hire_welcome",
    "budget_overreach",
    "missed_meetings",
)
"""The packaged scenario families, in report order."""

VARIANTS_PER_FAMILY = 5
REQUEST_WORDS = (25, 80)
PATH_LENGTH = (2, 6)

STUB_TOOLS: tuple[str, ...] = (
    "lookup_contact",
    "list_calendar",
    "search_chat",
    "search_documents",
    "lookup_policy",
)
"""Tools whose answers a scenario can stub (the other tools act on these data)."""

# Words that would leak a persona or a style instruction into the user's request.
_BANNED_REQUEST_WORDS = frozenset(
    {"persona", "personality", "style", "tone", "character", "roleplay"}
    | {p.lower() for p in PERSONAS}
    | {d.lower() for d in DISPLAY_NAMES.values()}
)
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ScenarioError(DataError):
    """A scenario file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class ExpectedCall:
    """One tool call of a scenario's expected path; ``args`` as (name, value) pairs."""

    tool: str
    args: tuple[tuple[str, str], ...]

    @property
    def kwargs(self) -> dict[str, str]:
        return dict(self.args)


@dataclass(frozen=True)
class Stubs:
    """What the simulated tools know in one scenario, on top of the standing workplace."""

    contacts: tuple[Person, ...] = ()
    events: tuple[Event, ...] = ()
    chats: tuple[ChatThread, ...] = ()
    documents: tuple[Document, ...] = ()
    policies: tuple[Policy, ...] = ()


@dataclass(frozen=True)
class Scenario:
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


# --------------------------------------------------------------------------- rendering


def _substitute(text: str, params: Mapping[str, str], r: Reader, where: str) -> str:
    def repl(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "{{":
            return "{"
        if tok == "}}":
            return "}"
        key = m.group(1)
        if key not in params:
            raise r.fail(
                where,
                f"placeholder {{{key}}} has no value in this variant's params "
                f"(params: {', '.join(sorted(params)) or 'none'})",
            )
        return params[key]

    return _PLACEHOLDER.sub(repl, text)


MAX_TEMPLATE_NODES = 20_000
"""Most values a rendered template may hold (guards against YAML alias bombs)."""


def _render(
    node: Any, params: Mapping[str, str], r: Reader, where: str, budget: list[int], depth: int = 0
) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise r.fail(where, f"the template has more than {MAX_TEMPLATE_NODES} values")
    if depth > 12:
        raise r.fail(where, "nested too deeply")
    if isinstance(node, str):
        return _substitute(node, params, r, where)
    if isinstance(node, Mapping):
        return {
            k: _render(v, params, r, f"{where}.{k}", budget, depth + 1) for k, v in node.items()
        }
    if isinstance(node, list):
        return [
            _render(v, params, r, f"{where}[{i}]", budget, depth + 1) for i, v in enumerate(node)
        ]
    return node


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


# --------------------------------------------------------------------------- parsing


def parse_family(
    data: Any,
    file: str | Path = "<string>",
    workplace: Workplace | None = None,
    *,
    expected_family: str | None = None,
) -> list[Scenario]:
    """Validate one parsed family file and render its five scenarios.

    Args:
        data: the parsed YAML (a mapping).
        file: file name for error messages.
        workplace: the standing workplace (default: the packaged one).
        expected_family: if given, the ``family`` field must equal it (the file stem).

    Raises:
        ScenarioError: naming file and field for the first problem found.
    """
    wp = workplace or load_workplace()
    r = Reader(file, ScenarioError)
    m = r.mapping(data, "")
    r.keys(m, "", ["family", "kind", "persona_hooks", "template", "variants"], ["description"])
    family = r.text(m, "family", "")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", family):
        raise r.fail("family", f"expected a lower_snake_case name, got {family!r}")
    if expected_family is not None and family != expected_family:
        raise r.fail("family", f"{family!r} does not match the file name {expected_family!r}")
    kind = r.text(m, "kind", "")
    hooks = r.texts(m, "persona_hooks", "")
    if not hooks:
        raise r.fail("persona_hooks", "give at least one persona hook")
    template = r.mapping(m["template"], "template")
    r.keys(template, "template", ["request", "recipient", "stubs", "facts", "expected_path"])
    variants = r.seq(m["variants"], "variants")
    if len(variants) != VARIANTS_PER_FAMILY:
        raise r.fail(
            "variants", f"expected exactly {VARIANTS_PER_FAMILY} variants, got {len(variants)}"
        )
    out: list[Scenario] = []
    seen: set[int] = set()
    for i, raw in enumerate(variants):
        w = f"variants[{i}]"
        vm = r.mapping(raw, w)
        r.keys(vm, w, ["variant", "params"], ["persona_hooks"])
        num = vm["variant"]
        if isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= VARIANTS_PER_FAMILY:
            raise r.fail(
                f"{w}.variant", f"expected an integer 1-{VARIANTS_PER_FAMILY}, got {num!r}"
            )
        if num in seen:
            raise r.fail(f"{w}.variant", f"duplicate variant {num} (id {family}_v{num})")
        seen.add(num)
        pm = r.mapping(vm["params"], f"{w}.params")
        params = {k: r.text(pm, k, f"{w}.params") for k in pm}
        rendered = r.mapping(
            _render(dict(template), params, r, f"{w} -> template", [MAX_TEMPLATE_NODES]), "template"
        )
        extra_hooks = r.texts(vm, "persona_hooks", w)
        out.append(_build(rendered, family, num, kind, hooks + extra_hooks, wp, r, f"{w} -> "))
    return sorted(out, key=lambda s: s.variant)


def _build(
    t: Mapping[str, Any],
    family: str,
    variant: int,
    kind: str,
    hooks: tuple[str, ...],
    wp: Workplace,
    r: Reader,
    pre: str,
) -> Scenario:
    sid = f"{family}_v{variant}"
    pre = f"{pre}{sid}: template"
    request = r.text(t, "request", pre)
    words = len(request.split())
    lo, hi = REQUEST_WORDS
    if not lo <= words <= hi:
        raise r.fail(f"{pre}.request", f"has {words} words; a request must have {lo}-{hi}")
    leaked = sorted({w for w in re.findall(r"[a-z]+", request.lower())} & _BANNED_REQUEST_WORDS)
    if leaked:
        raise r.fail(
            f"{pre}.request",
            f"mentions {', '.join(leaked)}: a request must never name a persona or a style",
        )
    stubs = _parse_stubs(t["stubs"], wp, r, f"{pre}.stubs")
    directory = (*wp.directory(), *stubs.contacts)
    emails = {p.email for p in directory}
    recipient = r.email(t, "recipient", pre)
    if recipient not in emails:
        raise r.fail(
            f"{pre}.recipient",
            f"{recipient!r} is not in the directory "
            "(colleagues, customer/vendor contacts, or this "
            "scenario's lookup_contact stubs)",
        )
    _check_references(stubs, directory, wp, r, f"{pre}.stubs")
    facts = r.texts(t, "facts", pre)
    if len(facts) < 2:
        raise r.fail(f"{pre}.facts", "give at least 2 facts")
    calls = _parse_path(t["expected_path"], recipient, r, f"{pre}.expected_path")
    for where, text in [
        (f"{pre}.request", request),
        *((f"{pre}.facts[{i}]", f) for i, f in enumerate(facts)),
        *((f"{pre}.expected_path[{i}].args", str(c.args)) for i, c in enumerate(calls)),
    ]:
        for addr in EMAIL_RE.findall(text):
            if addr.lower() not in emails:
                raise r.fail(where, f"references {addr!r}, which is not in the directory")
    scenario = Scenario(
        id=sid,
        family=family,
        variant=variant,
        kind=kind,
        request=request,
        recipient=recipient,
        facts=facts,
        persona_hooks=hooks,
        expected_path=tuple(c.tool for c in calls),
        expected_calls=calls,
        stubs=stubs,
        source=r.file,
    )
    _check_facts(scenario, wp, r, pre)
    return scenario


def _parse_stubs(raw: Any, wp: Workplace, r: Reader, where: str) -> Stubs:
    from charbench.agentic_email.tools import TOOL_NAMES

    m = r.mapping(raw, where)
    for key in m:
        if key not in TOOL_NAMES:
            raise r.fail(
                f"{where}.{key}", f"unknown tool {key!r}; tools are {', '.join(TOOL_NAMES)}"
            )
        if key not in STUB_TOOLS:
            raise r.fail(
                f"{where}.{key}",
                f"tool {key!r} acts on the stubbed data and takes "
                f"no stubs; stub one of {', '.join(STUB_TOOLS)}",
            )

    def items(key: str) -> list[tuple[str, Any]]:
        value = m.get(key)
        if value is None:
            return []
        return [(f"{where}.{key}[{i}]", x) for i, x in enumerate(r.seq(value, f"{where}.{key}"))]

    contacts = tuple(parse_person(r, x, w, external=True) for w, x in items("lookup_contact"))
    events = tuple(parse_event(r, x, w) for w, x in items("list_calendar"))
    chats = tuple(parse_thread(r, x, w) for w, x in items("search_chat"))
    docs = tuple(parse_document(r, x, w) for w, x in items("search_documents"))
    policies = []
    for i, (w, x) in enumerate(items("lookup_policy")):
        from charbench.agentic_email.workplace import parse_policy

        policies.append(parse_policy(r, x, w, f"scenario-{i}"))
    return Stubs(contacts, events, chats, docs, tuple(policies))


def _check_references(
    stubs: Stubs, directory: Sequence[Person], wp: Workplace, r: Reader, where: str
) -> None:
    known: dict[str, str] = {}
    for p in wp.directory():
        known[p.email] = p.name
        known[p.name.lower()] = p.name
    for i, p in enumerate(stubs.contacts):
        for key in (p.email, p.name.lower()):
            if key in known:
                raise r.fail(
                    f"{where}.lookup_contact[{i}]",
                    f"{key!r} is already in the directory ({known[key]})",
                )
            known[key] = p.name

    def must_resolve(name: str, field: str) -> None:
        if resolve_person(directory, name) is None:
            raise r.fail(
                field,
                f"{name!r} is not a (unique) contact in the directory; use a "
                "full name or email, or add them under lookup_contact",
            )

    ids = {e.id for e in wp.events}
    for i, e in enumerate(stubs.events):
        w = f"{where}.list_calendar[{i}]"
        must_resolve(e.person, f"{w}.person")
        for j, a in enumerate(e.attendees):
            must_resolve(a, f"{w}.attendees[{j}]")
        if e.id in ids:
            raise r.fail(f"{w}.id", f"duplicate meeting id {e.id!r}")
        ids.add(e.id)
    for i, t in enumerate(stubs.chats):
        for j, msg in enumerate(t.messages):
            must_resolve(msg.author, f"{where}.search_chat[{i}].messages[{j}].from")
    doc_ids = {d.id for d in wp.documents}
    for i, d in enumerate(stubs.documents):
        must_resolve(d.owner, f"{where}.search_documents[{i}].owner")
        if d.id in doc_ids:
            raise r.fail(f"{where}.search_documents[{i}].id", f"duplicate document id {d.id!r}")
        doc_ids.add(d.id)
    texts: list[tuple[str, str]] = []
    texts += [(f"{where}.list_calendar[{i}]", e.render()) for i, e in enumerate(stubs.events)]
    texts += [(f"{where}.search_chat[{i}]", t.render()) for i, t in enumerate(stubs.chats)]
    texts += [(f"{where}.search_documents[{i}]", d.render()) for i, d in enumerate(stubs.documents)]
    texts += [(f"{where}.lookup_policy[{i}]", p.render()) for i, p in enumerate(stubs.policies)]
    emails = {p.email for p in directory}
    for w, text in texts:
        for addr in EMAIL_RE.findall(text):
            if addr.lower() not in emails:
                raise r.fail(w, f"references {addr!r}, which is not in the directory")


def _parse_path(raw: Any, recipient: str, r: Reader, where: str) -> tuple[ExpectedCall, ...]:
    from charbench.agentic_email.tools import TOOL_NAMES, TOOL_PARAMS

    lo, hi = PATH_LENGTH
    items = r.seq(raw, where)
    if not lo <= len(items) <= hi:
        raise r.fail(where, f"has {len(items)} calls; a competent path has {lo}-{hi}")
    calls = []
    for i, x in enumerate(items):
        w = f"{where}[{i}]"
        cm = r.mapping(x, w)
        r.keys(cm, w, ["tool", "args"])
        name = r.text(cm, "tool", w)
        if name not in TOOL_NAMES:
            raise r.fail(f"{w}.tool", f"unknown tool {name!r}; tools are {', '.join(TOOL_NAMES)}")
        am = r.mapping(cm["args"], f"{w}.args")
        required, optional = TOOL_PARAMS[name]
        r.keys(am, f"{w}.args", required, optional)
        args = tuple((k, r.text(am, k, f"{w}.args")) for k in am)
        calls.append(ExpectedCall(name, args))
    last = calls[-1]
    if last.tool != "send_email":
        raise r.fail(f"{where}[{len(calls) - 1}].tool", "the last expected call must be send_email")
    to = [a.strip().lower() for a in re.split(r"[,;]", last.kwargs["to"]) if a.strip()]
    if recipient not in to:
        raise r.fail(
            f"{where}[{len(calls) - 1}].args.to",
            f"the final email must go to the recipient {recipient!r}",
        )
    if any(c.tool == "send_email" for c in calls[:-1]):
        raise r.fail(where, "send_email may only be the last expected call")
    return tuple(calls)


def _check_facts(scenario: Scenario, wp: Workplace, r: Reader, pre: str) -> None:
    from inspect_ai.tool import ToolError

    from charbench.agentic_email.tools import WorkplaceSim

    sim = WorkplaceSim(scenario, wp)
    seen = []
    for i, call in enumerate(scenario.expected_calls[:-1]):
        try:
            seen.append(_norm(sim.call(call.tool, call.kwargs)))
        except ToolError as e:  # a tool error on the expected path is a data error
            raise r.fail(f"{pre}.expected_path[{i}]", f"{call.tool} fails: {e}") from None
    corpus = "\n".join(seen)
    for i, fact in enumerate(scenario.facts):
        if _norm(fact) not in corpus:
            raise r.fail(
                f"{pre}.facts[{i}]",
                f"{fact!r} is not returned verbatim by any call on the expected path; "
                "facts must be what the tools show",
            )


# --------------------------------------------------------------------------- loading


def load_family_file(path: str | Path, workplace: Workplace | None = None) -> list[Scenario]:
    """Load and validate one family file (its ``family`` must equal the file stem).

    Raises:
        ScenarioError: the file cannot be read, is not YAML, or fails validation.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(p, "", f"cannot read the file: {e}") from None
    return parse_family_text(text, p, workplace, expected_family=p.stem)


def parse_family_text(
    text: str,
    file: str | Path = "<string>",
    workplace: Workplace | None = None,
    *,
    expected_family: str | None = None,
) -> list[Scenario]:
    """Parse YAML text of one family file and validate it (see :func:`parse_family`)."""
    data = load_yaml_text(text, file, ScenarioError)
    return parse_family(data, file, workplace, expected_family=expected_family)


def load_directory(
    directory: str | Path, workplace: Workplace | None = None
) -> tuple[Scenario, ...]:
    """Load every ``*.yaml`` family in ``directory`` (uncached), checking ids are unique.

    Families in :data:`FAMILIES` come first in that order, others by file name.

    Raises:
        ScenarioError: no family files, or any file fails validation, or an id repeats.
    """
    d = Path(directory)
    files = sorted(d.glob("*.yaml")) if d.is_dir() else []
    if not files:
        raise ScenarioError(d, "", "no scenario family files (*.yaml) found")
    order = {f: i for i, f in enumerate(FAMILIES)}
    files.sort(key=lambda f: (order.get(f.stem, len(order)), f.stem))
    seen: dict[str, str] = {}
    out: list[Scenario] = []
    for f in files:
        for s in load_family_file(f, workplace):
            if s.id in seen:
                raise ScenarioError(
                    f, "family", f"duplicate scenario id {s.id!r} (also in {seen[s.id]})"
                )
            seen[s.id] = str(f)
            out.append(s)
    return tuple(out)


@functools.lru_cache(maxsize=4)
def _cached(directory: str) -> tuple[Scenario, ...]:
    return load_directory(directory)


def load_scenarios(
    select: str | Sequence[str] | None = None,
    *,
    directory: str | Path | None = None,
    workplace: Workplace | None = None,
) -> list[Scenario]:
    """Load, validate and select scenarios.

    Args:
        select: ``None``, ``""`` or ``"all"`` for every scenario; otherwise scenario ids
            (``budget_overreach_v3``) and/or family names (``recognition``), as a
            comma-separated string or a list (Inspect passes ``-T scenarios=a,b`` as a
            list). Case-insensitive; duplicates are dropped; the result keeps the canonical
            order (family order, then variant).
        directory: family files to read (default: the packaged ``data/scenarios``).
        workplace: the standing workplace (default: the packaged one). Loads with the
            default workplace are cached per directory.

    Returns:
        The selected scenarios.

    Raises:
        ScenarioError: a data file is invalid (names file and field).
        ValueError: an unknown id or family in ``select`` (lists the valid ones).
    """
    d = str(Path(directory) if directory is not None else SCENARIO_DIR)
    pool = _cached(d) if workplace is None else load_directory(d, workplace)
    tokens = _select_tokens(select)
    if not tokens:
        return list(pool)
    ids = {s.id for s in pool}
    families = list(dict.fromkeys(s.family for s in pool))
    unknown = [t for t in tokens if t not in ids and t not in families]
    if unknown:
        raise ValueError(
            f"unknown scenario(s) or family(ies): {', '.join(map(repr, unknown))}. Valid "
            f"families: {', '.join(families)}; valid ids are <family>_v1 .. "
            f"<family>_v{VARIANTS_PER_FAMILY} (e.g. {pool[0].id}), or 'all'"
        )
    chosen = set(tokens)
    return [s for s in pool if s.id in chosen or s.family in chosen]


def _select_tokens(select: str | Sequence[str] | None) -> list[str]:
    if select is None:
        return []
    raw: Iterable[Any] = [select] if isinstance(select, str) else select
    tokens: list[str] = []
    for item in raw:
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise ValueError(f"scenario selection items must be text, got {item!r}")
        tokens += [t.strip().lower() for t in str(item).split(",") if t.strip()]
    if any(t == "all" for t in tokens):
        return []
    return list(dict.fromkeys(tokens))
