"""Test fixture in the layout of the study's draft scoring script (charbench's own text)."""

import re

_HEADER_RE = re.compile(r"^[\s*]*(?:Subject|To|Cc)\s*:[^\n]*\n+", flags=re.IGNORECASE)
_PREAMBLE_RE = re.compile(
    r"^\s*(?:(?:```[^\n]*\n)|(?:Draft follows[^\n]*\n+))", flags=re.IGNORECASE
)
_TRAILING_FENCE_RE = re.compile(r"\n?```[^\n]*\s*$")
