"""Extract the email body from a sent body or a drafted reply, recording what was removed.

Models wrap emails in packaging that is not part of the message: a ``Subject:`` line inside
the body, ``To:``/``From:``/``Cc:`` header lines, a "Here is the email:" preamble, a code
fence or a pair of quotes around the whole text. The persona classifier should see the
message itself, so :func:`extract_body` removes that packaging, and only that packaging,
and lists every piece it removed so the log shows exactly what was classified.

Rules (applied repeatedly, in this order, until nothing changes):

1. A first line that is a preamble: it opens with "Here is"/"Here's"/"Below is"/"Please
   find" (optionally after "Sure,"/"Certainly!"/"Of course."/"Okay,"/"Absolutely,"), names
   the email (email, e-mail, draft, body, reply, response, message, version), is at most 20
   words, and ends with a colon.
2. A code fence around the text: text that starts with a fence line (```` ``` ```` with an
   optional language tag) and has a closing fence; the fenced part is kept, and any text
   after the closing fence (typically "Let me know if you want changes") is removed.
3. A pair of quotes around the whole text (``"..."``, ``'...'`` or curly quotes) when the
   quote character does not occur inside.
4. Header lines at the top: ``Subject:``, ``Subject line:``, ``To:``, ``From:``, ``Cc:``,
   ``Bcc:``, ``Date:`` (case-insensitive, optionally in Markdown bold), and a lone
   ``Body:``/``Email body:``/``Email:`` label line.

Nothing else is touched: greetings ("Dear Sam,"), sign-offs and anything in the middle of
the text stay. The result may be empty (a reply that was only packaging); callers decide
what an empty body means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Extraction", "extract_body"]

_PREAMBLE_RE = re.compile(
    r"""^\s*
    (?:(?:sure|certainly|of\ course|okay|ok|absolutely|alright|all\ right)\s*[,!.]?\s*)?
    (?:here\s+is|here's|here’s|below\s+is|please\s+find)\b
    [^\n]*?
    \b(?:e-?mails?|drafts?|body|reply|response|message|version)\b
    [^\n]*:\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_HEADER_RE = re.compile(
    r"^\s*(?:\*\*|__)?\s*(?:subject(?:\s+line)?|to|from|cc|bcc|date)\s*:"
    r"(?:\*\*|__)?(?:[ \t]+\S.*)?\s*$",
    re.IGNORECASE,
)
_LABEL_RE = re.compile(
    r"^\s*(?:\*\*|__)?\s*(?:e-?mail\s+)?(?:body|e-?mail)\s*:\s*(?:\*\*|__)?\s*$",
    re.IGNORECASE,
)
_FENCE_OPEN_RE = re.compile(r"^\s*(`{3,}|~{3,})[\w+-]*[ \t]*\n")
_QUOTE_PAIRS = (('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»"))
_MAX_PREAMBLE_WORDS = 20


@dataclass(frozen=True)
class Extraction:
    """The extracted body and the pieces removed from around it.

    Attributes:
        text: The email body with surrounding whitespace trimmed; may be ``""``.
        stripped: Each removed piece, in the order it was removed, as it appeared in the
            input (a header line, a preamble line, ``"```"`` for a fence, the quote
            character for quotes, trailing text after a closing fence). Empty when the
            input was already a bare body.
    """

    text: str
    stripped: list[str] = field(default_factory=list)


def _strip_preamble(text: str) -> tuple[str, str | None]:
    first, _, rest = text.partition("\n")
    if _PREAMBLE_RE.match(first) and len(first.split()) <= _MAX_PREAMBLE_WORDS:
        return rest.strip(), first.strip()
    return text, None


def _strip_fence(text: str) -> tuple[str, list[str]]:
    opening = _FENCE_OPEN_RE.match(text)
    if opening is None:
        return text, []
    marker = opening.group(1)
    body = text[opening.end() :]
    close = re.search(rf"(?m)^[ \t]*{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$", body)
    if close is None:
        return text, []
    removed = [marker]
    trailing = body[close.end() :].strip()
    if trailing:
        removed.append(trailing)
    return body[: close.start()].strip(), removed


def _strip_quotes(text: str) -> tuple[str, str | None]:
    if len(text) < 3:
        return text, None
    for left, right in _QUOTE_PAIRS:
        if text.startswith(left) and text.endswith(right):
            inner = text[len(left) : -len(right)]
            if left not in inner and right not in inner:
                return inner.strip(), left
    return text, None


def _strip_headers(text: str) -> tuple[str, list[str]]:
    lines = text.split("\n")
    removed: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() and removed:
            i += 1
            continue
        if _HEADER_RE.match(line) or _LABEL_RE.match(line):
            removed.append(line.strip())
            i += 1
            continue
        break
    if not removed:
        return text, []
    return "\n".join(lines[i:]).strip(), removed


def extract_body(text: str | None) -> Extraction:
    """Strip the packaging around an email body and record what was removed.

    Args:
        text: A body passed to ``send_email`` or a model's drafted reply. ``None`` is
            treated as ``""``.

    Returns:
        The :class:`Extraction`. Its ``text`` is the input trimmed of surrounding
        whitespace when nothing matched; it is ``""`` when the input was only packaging
        (for example a lone ``"Subject: Hello"``).

    Examples:
        >>> extract_body("Subject: Budget\\n\\nDear Sam,\\nThanks.").text
        'Dear Sam,\\nThanks.'
        >>> extract_body("Dear Sam,\\nThanks.").stripped
        []
    """
    current = (text or "").replace("\r\n", "\n").strip()
    stripped: list[str] = []
    while True:
        before = current
        current, piece = _strip_preamble(current)
        if piece is not None:
            stripped.append(piece)
        current, pieces = _strip_fence(current)
        stripped.extend(pieces)
        current, quote = _strip_quotes(current)
        if quote is not None:
            stripped.append(quote)
        current, pieces = _strip_headers(current)
        stripped.extend(pieces)
        if current == before:
            return Extraction(text=current, stripped=stripped)
