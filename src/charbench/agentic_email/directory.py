"""The one person resolver of the workplace: who a name, an address or a search names.

:class:`Directory` answers every "who is this?" of the data checks (an event's owner, a chat
author) and of the tools (a calendar's owner, a recipient, a contact search), so what the
checks accept is what the tools resolve: :meth:`~Directory.search` (a directory search),
:meth:`~Directory.resolve` (the one person meant, or None), :meth:`~Directory.named` (the
people a recipient *name* means, as a mail client's address book reads it).
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from collections.abc import Sequence

from charbench.agentic_email.models import EMAIL_RE, Person, norm

_SELF = frozenset({"me", "myself", "my", "i"})
"""Queries that mean the person the agent acts for."""

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
    """The words of a name: case- and accent-folded, punctuation dropped (hyphenated and
    apostrophe'd words stay whole)."""
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).casefold()
    return tuple(re.findall(r"[^\W_]+(?:['\u2019-][^\W_]+)*", plain))


@functools.lru_cache(maxsize=4096)
def _person_words(p: Person) -> tuple[str, ...]:
    return _name_words(p.name)


@functools.lru_cache(maxsize=4096)
def _haystack(p: Person) -> str:
    return norm(f"{p.name} {p.email} {p.title} {p.team}")


class Directory:
    """The people reachable in one scenario (or the standing workplace).

    Args:
        people: everyone, in directory order (the first of two equal names or emails wins).
        user: the person the agent acts for ("me").
    """

    def __init__(self, people: Sequence[Person], user: Person) -> None:
        self.people = tuple(people)
        self.user = user
        self.by_email = {p.email: p for p in self.people}
        self._exact: dict[str, Person] = {}
        for p in self.people:
            self._exact.setdefault(p.email, p)
            self._exact.setdefault(p.name.casefold(), p)

    def search(self, query: str) -> list[Person]:
        """People matching ``query``: "me", an exact email or name first, else the addresses
        in it, else every person whose name, email, title or team/organisation contains all
        of the query's words."""
        q = norm(query).strip("<>\"' ")
        if not q:
            return []
        if q in _SELF:
            return [self.user]
        if q in self._exact:
            return [self._exact[q]]
        emails = [e.lower() for e in EMAIL_RE.findall(q)]
        if emails:
            return [self.by_email[e] for e in emails if e in self.by_email]
        words = q.replace(",", " ").split()
        return [p for p in self.people if all(w in _haystack(p) for w in words)]

    def resolve(self, query: str) -> Person | None:
        """The single person ``query`` names (see :meth:`search`), or None: nobody, or
        several people none of whom is singled out by having the query in their name."""
        hits = self.search(query)
        if len(hits) == 1:
            return hits[0]
        name_hits = [p for p in hits if norm(query) in p.name.casefold()]
        return name_hits[0] if len(name_hits) == 1 else None

    def named(self, name: str) -> list[Person]:
        """The people whose name ``name`` plausibly is, as an address book resolves it:
        their full name, first or last name, or a run of whole words of the full name
        (case- and accent-insensitive, courtesy titles such as "Ms" or "Dr." ignored).
        Someone whose full name it is exactly wins over partial matches. Anything with an
        ``@`` is an address, not a name, and names no one."""
        if "@" in name:
            return []
        words = _name_words(name)
        while len(words) > 1 and words[0] in _TITLES:
            words = words[1:]
        if all(w in _PARTICLES or w in _TITLES for w in words):
            return []
        n = len(words)
        hits = [
            p
            for p in self.people
            if any(_person_words(p)[i : i + n] == words for i in range(len(_person_words(p))))
        ]
        exact = [p for p in hits if _person_words(p) == words]
        return exact or hits

    def suggest(self, query: str) -> str:
        """ " Did you mean: ...?" with up to three close names or addresses, or ``""``."""
        names = [p.name for p in self.people] + [p.email for p in self.people]
        close = difflib.get_close_matches(query.strip(), names, n=3, cutoff=0.6)
        return f" Did you mean: {', '.join(close)}?" if close else ""
