"""Shared vocabulary of the tool-call protocols: the parsed reply, the protocols and their
format hints, limits, and small text helpers used by every other module of the package."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from inspect_ai.tool import ToolCall


@dataclass
class _Item:
    """A tool call found in the reply, before it gets an id (``repaired``: what the parser
    had to repair to read it, or None)."""

    function: str
    arguments: dict[str, Any]
    error: str | None = None
    repaired: str | None = None


MAX_ARGUMENT_DEPTH = 100
"""Deepest nesting accepted in arguments (Inspect's own limit for tool-call arguments)."""


INVALID_CALL_NAME = "invalid_tool_call"
"""``ToolCall.function`` of a malformed call whose tool name could not be recovered."""


_FENCE = "```"


Protocol = Literal["json", "llama", "qwen"]


_FORMAT_HINT: dict[Protocol, str] = {
    "json": (
        'Emit exactly one JSON object {"name": ..., "arguments": {...}} per ```json block, '
        "with every string in double quotes and any double quote inside a string escaped "
        'as \\".'
    ),
    "llama": (
        'Reply with one JSON object {"name": ..., "parameters": {...}}, with every string '
        'in double quotes and any double quote inside a string escaped as \\".'
    ),
    "qwen": (
        'Emit exactly one JSON object {"name": ..., "arguments": {...}} per '
        "<tool_call></tool_call> block, with every string in double quotes and any double "
        'quote inside a string escaped as \\".'
    ),
}


@dataclass
class ParsedReply:
    """A model reply split into text and tool calls.

    Attributes:
        content: The reply text with the tool-call JSON and blocks removed (trimmed).
            Text that a call block carried besides its JSON (e.g. a comment inside the
            fence) is kept in its place.
        tool_calls: The calls in the order they appear. Malformed ones have
            ``parse_error`` set (function name best-effort, else
            ``"invalid_tool_call"``; arguments ``{}``). Ids are ``call_<hash>_<i>``:
            deterministic for a given reply text and unique within it.
        repaired: One note per call that was read only after a repair beyond the usual
            leniency (today: a string value left open at the block's closing fence, closed
            there with its brackets), e.g. ``"send_email: closed an unterminated string and
            2 brackets at the end of the block"``. Empty when nothing was repaired. The
            provider records it in the ``ModelCall`` so a reader can see the call was
            recovered, not written as sent.
    """

    content: str
    tool_calls: list[ToolCall]
    repaired: list[str] = field(default_factory=list)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _short_json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _fix_surrogates(text: str) -> str:
    if _SURROGATE_RE.search(text) is not None:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _norm_name(name: str) -> str:
    name = name.strip().lower()
    if name.endswith("()"):
        name = name[:-2]
    return re.sub(r"[\s\-_.]+", "_", name).strip("_")


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i].isspace():
        i += 1
    return i
