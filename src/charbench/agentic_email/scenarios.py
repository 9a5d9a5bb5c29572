"""The 50 scenarios of charbench's own suite: 10 families x 5 variants.

Each family lives in ``data/suites/charbench/scenarios/<family>.yaml`` as one *template*
plus five variants that fill its ``{placeholders}`` (names, amounts, teams, stakes). A
rendered scenario has the user's request to the agent, the expected recipient, the stub data
the simulated tools answer from (contacts, calendar events, chat threads, documents,
policies, on top of the standing workplace), the facts a competent agent would have looked
up, where a persona could show, and the 2-6 tool calls a competent agent makes, ending in
``send_email``.

Family file layout (the schema is :class:`~charbench.agentic_email.models.FamilyFile`; a
variant's rendered template is a :class:`~charbench.agentic_email.models.ScenarioTemplate`)::

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
file and the field: schema errors, unknown tools in stubs or paths, a request of the wrong
length, the wrong number of variants, and (:mod:`charbench.agentic_email.facts`) people and
addresses that are not in the directory, duplicate ids, and facts that the expected tool
calls do not actually return.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from charbench.agentic_email.errors import ScenarioError, data_error
from charbench.agentic_email.facts import check_scenario
from charbench.agentic_email.models import (
    VARIANTS_PER_FAMILY,
    FamilyFile,
    Scenario,
    ScenarioTemplate,
    Workplace,
)
from charbench.agentic_email.tools import STUB_TOOLS, TOOL_NAMES, TOOL_PARAMS
from charbench.agentic_email.workplace import (
    SUITE_DIR,
    load_workplace,
    load_yaml_text,
    read_yaml_file,
)
from charbench.personas import DISPLAY_NAMES, PERSONAS

__all__ = ["STUB_TOOLS", "VARIANTS_PER_FAMILY", "Scenario", "ScenarioError"]  # re-exported

SCENARIO_DIR = SUITE_DIR / "scenarios"
"""Directory of the packaged scenario families."""

FAMILIES: tuple[str, ...] = (
    "candidate_rejection", "dependency_slip", "recognition", "proposal_critique",
    "missed_commitment", "vendor_renewal", "overdue_invoice", "new_hire_welcome",
    "budget_overreach", "missed_meetings",
)  # fmt: skip
"""The packaged scenario families, in report order."""

REQUEST_WORDS = (25, 80)
PATH_LENGTH = (2, 6)

MAX_TEMPLATE_NODES = 20_000
"""Most values a rendered template may hold (guards against YAML alias bombs)."""

# Words that would leak a persona or a style instruction into the user's request.
_BANNED_REQUEST_WORDS = frozenset(
    {"persona", "personality", "style", "tone", "character", "roleplay"}
    | {p.lower() for p in PERSONAS}
    | {d.lower() for d in DISPLAY_NAMES.values()}
)
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


# --------------------------------------------------------------------------- rendering


class _Renderer:
    """Fills one variant's ``params`` into a template tree, within a size and depth budget."""

    def __init__(self, params: Mapping[str, str], file: str | Path) -> None:
        self.params, self.file, self.budget = params, file, MAX_TEMPLATE_NODES

    def _fill(self, match: re.Match[str], where: str) -> str:
        token, key = match.group(0), match.group(1)
        if key is None:
            return token[0]  # "{{" -> "{", "}}" -> "}"
        if key not in self.params:
            known = ", ".join(sorted(self.params)) or "none"
            raise ScenarioError(
                self.file,
                where,
                f"placeholder {{{key}}} has no value in this variant's params (params: {known})",
            )
        return self.params[key]

    def render(self, node: Any, where: str, depth: int = 0) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise ScenarioError(
                self.file, where, f"the template has more than {MAX_TEMPLATE_NODES} values"
            )
        if depth > 12:
            raise ScenarioError(self.file, where, "nested too deeply")
        if isinstance(node, str):
            return _PLACEHOLDER.sub(lambda m: self._fill(m, where), node)
        if isinstance(node, Mapping):
            return {k: self.render(v, f"{where}.{k}", depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return [self.render(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(node)]
        return node


# --------------------------------------------------------------------------- parsing


def _validate_family(data: Any, file: str | Path, expected_family: str | None) -> FamilyFile:
    try:
        fam = FamilyFile.model_validate(data)
    except ValidationError as e:
        raise data_error(e, file, ScenarioError, FamilyFile) from None
    if expected_family is not None and fam.family != expected_family:
        raise ScenarioError(
            file, "family", f"{fam.family!r} does not match the file name {expected_family!r}"
        )
    if len(fam.variants) != VARIANTS_PER_FAMILY:
        raise ScenarioError(
            file,
            "variants",
            f"expected exactly {VARIANTS_PER_FAMILY} variants, got {len(fam.variants)}",
        )
    seen: set[int] = set()
    for i, v in enumerate(fam.variants):
        if v.variant in seen:
            raise ScenarioError(
                file,
                f"variants[{i}].variant",
                f"duplicate variant {v.variant} (id {fam.family}_v{v.variant})",
            )
        seen.add(v.variant)
    return fam


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
    fam = _validate_family(data, file, expected_family)
    out: list[Scenario] = []
    for i, v in enumerate(fam.variants):
        rendered = _Renderer(v.params, file).render(fam.template, f"variants[{i}] -> template")
        sid = f"{fam.family}_v{v.variant}"
        template = _validate_template(rendered, file, f"variants[{i}] -> {sid}: template")
        scenario = Scenario(
            id=sid,
            family=fam.family,
            variant=v.variant,
            kind=fam.kind,
            request=template.request,
            recipient=template.recipient,
            facts=template.facts,
            persona_hooks=fam.persona_hooks + v.persona_hooks,
            expected_path=tuple(c.tool for c in template.expected_path),
            expected_calls=template.expected_path,
            stubs=template.stubs,
            source=str(file),
        )
        check_scenario(scenario, wp, file, f"variants[{i}] -> {sid}: template")
        out.append(scenario)
    return sorted(out, key=lambda s: s.variant)


def _check_stub_tools(rendered: Mapping[str, Any], file: str | Path, pre: str) -> None:
    stubs = rendered.get("stubs")
    for key in stubs if isinstance(stubs, Mapping) else ():
        if key not in STUB_TOOLS:
            why = (
                f"tool {key!r} acts on the stubbed data and takes no stubs"
                if key in TOOL_NAMES
                else f"unknown tool {key!r}; tools are {', '.join(TOOL_NAMES)}"
            )
            raise ScenarioError(
                file, f"{pre}.stubs.{key}", f"{why}; stub one of {', '.join(STUB_TOOLS)}"
            )


def _validate_template(rendered: Any, file: str | Path, pre: str) -> ScenarioTemplate:
    if isinstance(rendered, Mapping):
        _check_stub_tools(rendered, file, pre)
    try:
        t = ScenarioTemplate.model_validate(rendered)
    except ValidationError as e:
        raise data_error(e, file, ScenarioError, ScenarioTemplate, pre) from None
    words = len(t.request.split())
    lo, hi = REQUEST_WORDS
    if not lo <= words <= hi:
        raise ScenarioError(
            file, f"{pre}.request", f"has {words} words; a request must have {lo}-{hi}"
        )
    leaked = sorted(set(re.findall(r"[a-z]+", t.request.lower())) & _BANNED_REQUEST_WORDS)
    if leaked:
        raise ScenarioError(
            file,
            f"{pre}.request",
            f"mentions {', '.join(leaked)}: a request must never name a persona or a style",
        )
    if len(t.facts) < 2:
        raise ScenarioError(file, f"{pre}.facts", "give at least 2 facts")
    _check_path(t, file, f"{pre}.expected_path")
    return t


def _check_path(t: ScenarioTemplate, file: str | Path, where: str) -> None:
    calls, (lo, hi) = t.expected_path, PATH_LENGTH
    if not lo <= len(calls) <= hi:
        raise ScenarioError(file, where, f"has {len(calls)} calls; a competent path has {lo}-{hi}")
    for i, call in enumerate(calls):
        if call.tool not in TOOL_PARAMS:
            tools = ", ".join(TOOL_NAMES)
            raise ScenarioError(
                file, f"{where}[{i}].tool", f"unknown tool {call.tool!r}; tools are {tools}"
            )
        required, optional = TOOL_PARAMS[call.tool]
        missing = [k for k in required if k not in call.args]
        if missing:
            raise ScenarioError(
                file, f"{where}[{i}].args", f"missing required argument(s): {', '.join(missing)}"
            )
        extra = sorted(set(call.args) - set(required) - set(optional))
        if extra:
            raise ScenarioError(
                file,
                f"{where}[{i}].args.{extra[0]}",
                f"unknown argument; {call.tool} takes {', '.join((*required, *optional))}",
            )
    last = len(calls) - 1
    if calls[last].tool != "send_email":
        raise ScenarioError(
            file, f"{where}[{last}].tool", "the last expected call must be send_email"
        )
    if any(c.tool == "send_email" for c in calls[:last]):
        raise ScenarioError(file, where, "send_email may only be the last expected call")
    to = [a.strip().lower() for a in re.split(r"[,;]", calls[last].args["to"]) if a.strip()]
    if t.recipient not in to:
        raise ScenarioError(
            file,
            f"{where}[{last}].args.to",
            f"the final email must go to the recipient {t.recipient!r}",
        )


# --------------------------------------------------------------------------- loading


def load_family_file(path: str | Path, workplace: Workplace | None = None) -> list[Scenario]:
    """Load and validate one family file (its ``family`` must equal the file stem).

    Raises:
        ScenarioError: the file cannot be read, is not YAML, or fails validation.
    """
    data = read_yaml_file(path, ScenarioError)
    return parse_family(data, path, workplace, expected_family=Path(path).stem)


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
