"""Text that every part of an eval can write, log and tokenize (a leaf module).

Some strings cannot pass through an eval: a lone UTF-16 surrogate (``"\\ud800"``, legal in a
Python ``str`` and in JSON, not encodable as UTF-8) breaks Inspect's log writer, and a NUL
or another C0 control character breaks tokenizers and viewers. Text is made safe where it
*enters* charbench: prompts read from files or datasets, scenario data, tool results and
model completions. :func:`sanitize` replaces each such character with U+FFFD and returns
how many it replaced, so the caller can record the count in the sample's metadata
(``metadata["sanitized"]``) instead of hiding the change.

What counts as unsafe: lone surrogates (U+D800-U+DFFF), the C0 controls U+0000-U+001F
except tab, line feed and carriage return, DEL (U+007F), and the noncharacters U+FFFE and
U+FFFF. Everything else, other scripts, emoji and combining marks included, passes through
unchanged. The function is pure and idempotent: ``sanitize(sanitize(s)[0]) == (s', 0)``.
"""

from __future__ import annotations

import re

__all__ = ["REPLACEMENT", "sanitize", "sanitize_all"]

REPLACEMENT = "\ufffd"

_UNSAFE = re.compile("[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f\\ud800-\\udfff\\ufffe\\uffff]")


def sanitize(text: str) -> tuple[str, int]:
    """Return ``text`` with every unsafe character replaced by U+FFFD, and the count.

    Args:
        text: any Python string.

    Returns:
        ``(safe_text, replaced)``; ``safe_text is text`` when nothing was replaced.
    """
    safe, n = _UNSAFE.subn(REPLACEMENT, text)
    return (text, 0) if n == 0 else (safe, n)


def sanitize_all(texts: list[str]) -> tuple[list[str], int]:
    """:func:`sanitize` each string; returns the safe strings and the total replaced."""
    out: list[str] = []
    total = 0
    for t in texts:
        safe, n = sanitize(t)
        out.append(safe)
        total += n
    return out, total
