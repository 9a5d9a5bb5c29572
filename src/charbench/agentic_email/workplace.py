"""The standing simulated workplace of the charbench scenario suite: reading and checking it.

One fictional organisation, read from ``data/suites/charbench/workplace.yaml``: the current
date and time, the employee the agent works for, the colleague directory, customers and
vendors with their contacts, policies, holidays, meeting rooms, and a little standing
calendar, chat and document content that every scenario shares. The schema is the
:class:`~charbench.agentic_email.models.Workplace` model; this module adds the rules that
span records (unique names and emails, managers who are colleagues, calendars of people who
exist, unique meeting and document ids) and the YAML reading.

Everything here is pure data: no network, no file writes, no model.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from charbench.agentic_email.directory import Directory
from charbench.agentic_email.errors import DataError, WorkplaceError, data_error
from charbench.agentic_email.models import Person, Workplace

__all__ = ["DataError", "Person", "Workplace", "WorkplaceError"]  # re-exported from elsewhere

DATA_DIR = Path(__file__).parent / "data"
"""Directory of the packaged data."""

SUITE_DIR = DATA_DIR / "suites" / "charbench"
"""The charbench scenario suite: ``workplace.yaml`` and ``scenarios/*.yaml``."""

WORKPLACE_FILE = SUITE_DIR / "workplace.yaml"
"""The packaged standing workplace."""


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


def _directory_paths(wp: Workplace) -> Iterator[tuple[str, Person]]:
    """Everyone in :meth:`Workplace.directory` order, with the field path of their entry."""
    yield "user", wp.user
    yield from ((f"people[{i}]", p) for i, p in enumerate(wp.people))
    for key, orgs in (("customers", wp.customers), ("vendors", wp.vendors)):
        for i, org in enumerate(orgs):
            yield from ((f"{key}[{i}].contacts[{j}]", c) for j, c in enumerate(org.contacts))


def first_repeat(ids: Sequence[str], known: Iterable[str] = ()) -> int | None:
    """The index of the first id in ``ids`` that is in ``known`` or earlier in ``ids``."""
    seen = set(known)
    for i, id_ in enumerate(ids):
        if id_ in seen:
            return i
        seen.add(id_)
    return None


def check_workplace(wp: Workplace, file: str | Path) -> None:
    """The rules that span records; raises :class:`WorkplaceError` naming the field."""
    seen: dict[str, str] = {}
    for where, p in _directory_paths(wp):
        for field, key in (("email", p.email), ("name", p.name.lower())):
            if key in seen:
                raise WorkplaceError(
                    file, f"{where}.{field}", f"duplicate name or email {key!r} (also {seen[key]})"
                )
            seen[key] = p.name
    names = {p.name for p in (wp.user, *wp.people)}
    for where, p in [("user", wp.user), *((f"people[{i}]", p) for i, p in enumerate(wp.people))]:
        if p.manager is not None and p.manager not in names:
            raise WorkplaceError(
                file, f"{where}.manager", f"{p.manager!r} is not a colleague in the directory"
            )
    people = Directory(wp.directory(), wp.user)
    for i, e in enumerate(wp.events):
        if people.resolve(e.person) is None:
            raise WorkplaceError(
                file, f"calendar[{i}].person", f"{e.person!r} is not in the directory"
            )
    for key, what, ids in (
        ("calendar", "meeting", [e.id for e in wp.events]),
        ("documents", "document", [d.id for d in wp.documents]),
    ):
        repeat = first_repeat(ids)
        if repeat is not None:
            raise WorkplaceError(
                file, f"{key}[{repeat}].id", f"duplicate {what} id {ids[repeat]!r}"
            )


def parse_workplace(data: Any, file: str | Path = "<string>") -> Workplace:
    """Build and validate a :class:`Workplace` from parsed YAML.

    Raises:
        WorkplaceError: naming the file and field of the first problem found (missing or
            unknown fields, bad dates, duplicate emails, a manager who is not in the
            directory, an event on an unknown person's calendar...).
    """
    try:
        wp = Workplace.model_validate(data)
    except ValidationError as e:
        raise data_error(e, file, WorkplaceError, Workplace) from None
    check_workplace(wp, file)
    return wp


def read_yaml_file(path: str | Path, error: type[DataError]) -> Any:
    """The parsed YAML of a UTF-8 file; ``error`` when it cannot be read or parsed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise error(path, "", f"cannot read the file: {e}") from None
    return load_yaml_text(text, path, error)


def load_workplace_file(path: str | Path) -> Workplace:
    """Load and validate a workplace YAML file (uncached).

    Raises:
        WorkplaceError: the file is missing, not YAML, or fails validation.
    """
    return parse_workplace(read_yaml_file(path, WorkplaceError), path)


@functools.lru_cache(maxsize=1)
def load_workplace() -> Workplace:
    """The packaged standing workplace (``workplace.yaml``), loaded once and cached."""
    return load_workplace_file(WORKPLACE_FILE)
