"""Lenient JSON: decode one JSON (or Python-literal) value as a model wrote it, repairing
common damage, and describe what could not be repaired with line and column."""

from __future__ import annotations

import ast
import json
import math
import re
import warnings
from dataclasses import dataclass
from typing import Any

from charbench.toolcalls.common import MAX_ARGUMENT_DEPTH, _clip, _fix_surrogates, _skip_ws

_SMART_DOUBLE = "\u201c\u201d\u201e\u201f\u2033"


_MAX_LITERAL_EVAL_CHARS = 20_000


@dataclass
class _Failure:
    """Why a JSON chunk could not be decoded."""

    message: str


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _finite_float(s: str) -> float:
    value = float(s)
    if not math.isfinite(value):
        raise ValueError(f"the number {s[:40]} is out of range")
    return value


def _json_loads(s: str) -> Any:
    return json.loads(s, strict=False, parse_constant=_reject_constant, parse_float=_finite_float)


def _loads_lenient(chunk: str) -> tuple[Any, _Failure | None]:
    """Decode one JSON (or Python-literal) value, repairing common damage.

    Attempts, in order: JSON allowing raw control characters in strings; the repaired
    text (see :func:`_repair`); the same with curly double quotes straightened when the
    chunk has no straight double quote; ``ast.literal_eval``. Reports the first attempt's
    error, whose line and column refer to the text as the model wrote it.
    """
    try:
        return _sanitize(_json_loads(chunk))
    except RecursionError:
        return None, _Failure(f"the JSON is nested deeper than {MAX_ARGUMENT_DEPTH} levels")
    except ValueError as ex:
        first: ValueError = ex
    variants = [chunk]
    if '"' not in chunk and any(q in chunk for q in _SMART_DOUBLE):
        variants.append(re.sub(f"[{_SMART_DOUBLE}]", '"', chunk))
    for variant in variants:
        repaired = _repair(variant)
        if repaired is None:
            continue
        try:
            return _sanitize(_json_loads(repaired))
        except (ValueError, RecursionError):
            continue
    if len(chunk) <= _MAX_LITERAL_EVAL_CHARS:
        try:
            with warnings.catch_warnings():  # e.g. SyntaxWarning: invalid decimal literal
                warnings.simplefilter("ignore")
                literal = ast.literal_eval(chunk.strip())
        except Exception:  # SyntaxError, ValueError, MemoryError, RecursionError, ...
            literal = None
        if isinstance(literal, dict | list):
            value, failure = _sanitize(literal)
            if failure is None:
                return value, None
    return None, _Failure(_describe_json_error(chunk, first))


def _describe_json_error(chunk: str, ex: ValueError) -> str:
    if not isinstance(ex, json.JSONDecodeError):
        return f"Invalid JSON in tool call: {_clip(str(ex), 120)}."
    where = f"line {ex.lineno}, column {ex.colno}"
    if ex.msg.startswith("Unterminated string"):
        return (
            f"The tool call JSON is cut off: the string starting at {where} is never closed "
            "(a closing double quote is missing, or the reply reached its length limit)."
        )
    if ex.pos >= len(chunk.rstrip()):
        return (
            f"The tool call JSON ends before it is complete ({ex.msg.lower()} at {where}); "
            "close every string, object and list."
        )
    before = chunk[max(0, ex.pos - 30) : ex.pos].replace("\n", "\\n")
    after = chunk[ex.pos : ex.pos + 20].replace("\n", "\\n")
    return (
        f"Invalid JSON in tool call at {where}: {ex.msg} (at the >>> mark: '{before}>>>{after}')."
    )


def _repair(s: str) -> str | None:
    """Rewrite sloppy JSON into strict JSON, string-aware, in one pass.

    Escapes raw control characters inside strings, turns single-quoted strings into
    double-quoted ones, escapes a double quote inside a string when what follows it
    cannot follow a closing quote (so ``"say "hi" now"`` survives), maps Python's
    ``True``/``False``/``None``, quotes bare object keys, drops trailing commas and
    unmatched closing brackets, and closes brackets left open at the end.

    Returns:
        None when a string is left unterminated (a truncated reply is not guessed at).
    """
    out: list[str] = []
    stack: list[str] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c in "\"'":
            end, text = _read_string(s, i)
            if end < 0:
                return None
            out.append(json.dumps(text, ensure_ascii=False))
            i = end
            continue
        if c in "{[":
            stack.append("}" if c == "{" else "]")
            out.append(c)
        elif c in "}]":
            if not stack or stack[-1] != c:
                i += 1  # stray or mismatched closer: drop it
                continue
            stack.pop()
            _drop_trailing_comma(out)
            out.append(c)
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (s[j].isalnum() or s[j] == "_"):
                j += 1
            word = s[i:j]
            k = _skip_ws(s, j)
            if stack and stack[-1] == "}" and k < n and s[k] == ":" and _expects_key(out):
                out.append(json.dumps(word))
            else:
                out.append({"True": "true", "False": "false", "None": "null"}.get(word, word))
            i = j
            continue
        else:
            out.append(c)
        i += 1
    if stack:
        _drop_trailing_comma(out)
        tail = "".join(out).rstrip()
        if tail.endswith((":", ",")):
            return None
        out.extend(reversed(stack))
    return "".join(out)


def _expects_key(out: list[str]) -> bool:
    for piece in reversed(out):
        stripped = piece.strip()
        if stripped:
            return stripped[-1] in "{,"
    return False


def _drop_trailing_comma(out: list[str]) -> None:
    k = len(out) - 1
    while k >= 0 and not out[k].strip():
        k -= 1
    if k >= 0 and out[k] == ",":
        del out[k]


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\"}


def _read_string(s: str, i: int) -> tuple[int, str]:
    """Read the string literal opening at ``s[i]``; return (index after it, its value).

    A quote equal to the opening one closes the string only when the next
    non-whitespace character could follow a string (``, : } ]``, another quote or the
    end); otherwise it is taken as a literal quote. Returns (-1, "") if never closed.
    """
    quote = s[i]
    n = len(s)
    buf: list[str] = []
    j = i + 1
    while j < n:
        d = s[j]
        if d == "\\" and j + 1 < n:
            e = s[j + 1]
            if e == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", s[j + 2 : j + 6]):
                buf.append(chr(int(s[j + 2 : j + 6], 16)))
                j += 6
                continue
            if e in "\"'":
                buf.append(e)
            elif e in _ESCAPES:
                buf.append(_ESCAPES[e])
            else:
                buf.append("\\" + e)
            j += 2
            continue
        if d == quote:
            k = _skip_ws(s, j + 1)
            if k >= n or s[k] in ",:}]\"'":
                return j + 1, _fix_surrogates("".join(buf))
            buf.append(d)
            j += 1
            continue
        buf.append(d)
        j += 1
    return -1, ""


def _sanitize(value: Any) -> tuple[Any, _Failure | None]:
    """Make a decoded value JSON-compatible, or say why it cannot be.

    Tuples become lists, lone surrogates become U+FFFD; non-string keys, non-finite
    floats, sets, bytes and the like are refused, as is nesting deeper than
    :data:`MAX_ARGUMENT_DEPTH`.
    """
    if _depth(value) > MAX_ARGUMENT_DEPTH:
        return None, _Failure(
            f"Tool call arguments are nested deeper than {MAX_ARGUMENT_DEPTH} levels."
        )
    try:
        return _clean(value), None
    except _NotJSON as ex:
        return None, _Failure(f"The tool call contains a value that is not JSON: {ex}.")


class _NotJSON(ValueError):
    pass


def _depth(value: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, dict | list | tuple):
            deepest = max(deepest, d)
            if d > MAX_ARGUMENT_DEPTH:
                return d
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, d + 1) for child in children)
    return deepest


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _fix_surrogates(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJSON(f"the number {value} is not finite")
        return value
    if isinstance(value, dict):
        cleaned: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotJSON(f"the key {_clip(repr(key), 40)} is not a string")
            cleaned[_fix_surrogates(key)] = _clean(item)
        return cleaned
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    raise _NotJSON(f"{type(value).__name__} values are not allowed")


def close_at_end(chunk: str) -> tuple[str, str] | None:
    """Close a string left open at the end of ``chunk``, and then its open brackets.

    For a call block the model closed (the closing fence or ``</tool_call>``) whose last
    string value never got its closing quote: trailing whitespace (the line break before
    the fence) and a dangling backslash are dropped, a ``"`` is added, and the brackets
    still open are closed. Only strings opened with a double quote are closed.

    Args:
        chunk: The JSON text from its opening bracket to the end of the block.

    Returns:
        ``(closed_text, note)`` with the note saying what was added, or None when the
        chunk does not end inside a double-quoted string.
    """
    body = chunk.rstrip()
    stack: list[str] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c in "\"'":
            end, _ = _read_string(body, i)
            if end < 0:
                if c != '"' or i == 0:
                    return None
                text = body[:n - 1] if body.endswith("\\") and not body.endswith("\\\\") else body
                closers = "".join(reversed(stack))
                plural = "s" if len(closers) != 1 else ""
                note = f"closed an unterminated string and {len(closers)} bracket{plural}"
                return text + '"' + closers, note
            i = end
            continue
        if c in "{[":
            stack.append("}" if c == "{" else "]")
        elif c in "}]" and stack and stack[-1] == c:
            stack.pop()
        i += 1
    return None
