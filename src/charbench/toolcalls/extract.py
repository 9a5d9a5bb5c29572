"""Finding tool calls in a reply: fenced blocks, ``<tool_call>`` blocks and bare JSON,
spliced out of the content; the public parsers that never raise."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from inspect_ai.tool import ToolCall, ToolInfo

from charbench.toolcalls.calls import (
    _CALLISH_RE,
    _classify,
    _error_item,
    _guess_name,
    _looks_like_call,
    _Toolbox,
)
from charbench.toolcalls.common import (
    _FENCE,
    _FORMAT_HINT,
    ParsedReply,
    Protocol,
    _fix_surrogates,
    _Item,
    _skip_ws,
)
from charbench.toolcalls.lenient_json import _SMART_DOUBLE, _loads_lenient, close_at_end

logger = logging.getLogger(__name__)

_STRONG_TAGS = frozenset(
    {
        "tool_call",
        "tool-call",
        "toolcall",
        "tool_calls",
        "tool",
        "tools",
        "tool_code",
        "function",
        "function_call",
        "functioncall",
        "call",
    }
)


_JSON_TAGS = frozenset({"", "json", "json5", "jsonc", "javascript", "js"})


_TOKEN_RE = re.compile(r"```|<tool_call>|[{\[]")


_FENCE_TAG_RE = re.compile(r"[ \t]*([A-Za-z][\w.+-]*)?[ \t]*\r?\n?")


_SCAN_RE = re.compile(r"[\\\"'{}\[\]]")


_JUNK_RE = re.compile(r"""[\s}\])"',;`]*""")


_MAX_BARE_MISSES = 64


def parse_tool_calls(text: str, tools: list[ToolInfo]) -> ParsedReply:
    """Parse a reply written under the json protocol.

    Args:
        text: The model's raw reply.
        tools: The tools offered this turn. With no tools nothing is a tool call and
            the reply comes back as content (trimmed).

    Returns:
        The content and the calls (see :class:`ParsedReply`). Never raises: an internal
        failure is logged and the whole reply returned as content.
    """
    return _safe_parse(text, tools, "json")


def parse_native_tool_calls(family: str, text: str, tools: list[ToolInfo]) -> ParsedReply:
    """Parse a reply written in a model family's native tool-call format.

    Args:
        family: The base model's family, e.g. its config ``model_type`` (case-insensitive,
            matched by prefix): ``llama*`` reads Llama 3.1 JSON
            (``{"name": ..., "parameters": {...}}``, optionally after ``<|python_tag|>``),
            ``qwen*`` reads ``<tool_call>...</tool_call>`` blocks. Gemma has no native
            format, and Gemma or any unknown family falls back to the json protocol.
        text: The model's raw reply (special tokens may be present or stripped).
        tools: The tools offered this turn.

    Returns:
        The content and the calls. Every format the json protocol accepts is accepted
        too; only the format reminder in error messages differs. Never raises.
    """
    fam = family.strip().lower() if isinstance(family, str) else ""
    protocol: Protocol = "json"
    if fam.startswith("llama"):
        protocol = "llama"
        for token in ("<|python_tag|>", "<|eom_id|>", "<|eot_id|>"):
            text = text.replace(token, "\n")
    elif fam.startswith("qwen"):
        protocol = "qwen"
    return _safe_parse(text, tools, protocol)


def _safe_parse(text: str, tools: list[ToolInfo], protocol: Protocol) -> ParsedReply:
    try:
        return _parse_reply(text, tools, protocol)
    except Exception:  # never raise into the model provider
        logger.exception("tool-call parser failed; returning the reply as plain content")
        return ParsedReply(content=text.strip() if isinstance(text, str) else "", tool_calls=[])


class _Scan:
    """The state of one pass over a reply: the calls found, the spans to cut, the repairs."""

    def __init__(self, text: str, box: _Toolbox, protocol: Protocol) -> None:
        self.text = text
        self.box = box
        self.protocol = protocol
        self.items: list[_Item] = []
        self.removals: list[tuple[int, int, str]] = []
        self.bare_misses = 0

    def add_block(self, start: int, end: int, found: tuple[list[_Item], str] | None) -> None:
        if found is not None:
            self.items += found[0]
            self.removals.append((start, end, found[1]))

    def reply(self) -> ParsedReply:
        text = self.text
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        calls = [
            ToolCall(
                id=f"call_{digest}_{i}",
                function=_fix_surrogates(item.function),
                arguments=item.arguments if item.error is None else {},
                parse_error=None if item.error is None else _fix_surrogates(item.error),
            )
            for i, item in enumerate(self.items)
        ]
        repaired = [item.repaired for item in self.items if item.repaired]
        return ParsedReply(
            content=_splice(text, self.removals), tool_calls=calls, repaired=repaired
        )


def _parse_reply(text: str, tools: list[ToolInfo], protocol: Protocol) -> ParsedReply:
    """The parser proper (may raise on a bug; the public wrappers catch)."""
    if not tools or not text:
        return ParsedReply(content=text.strip(), tool_calls=[])
    scan = _Scan(text, _Toolbox.of(tools), protocol)
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.search(text, pos)
        if match is None:
            break
        if match.group() == _FENCE:
            pos = _take_fence(scan, match.start(), match.end())
        elif match.group() == "<tool_call>":
            pos = _take_tag(scan, match.start(), match.end())
        else:
            pos = _take_bare(scan, match.start())
    return scan.reply()


def _take_fence(scan: _Scan, start: int, after: int) -> int:
    """Parse the fenced block opening at ``start``; return where scanning continues."""
    text = scan.text
    tag_match = _FENCE_TAG_RE.match(text, after)
    tag = (tag_match.group(1) or "") if tag_match else ""
    body_start = tag_match.end() if tag_match else after
    tag_l = tag.lower()
    if tag_l not in _STRONG_TAGS and tag_l not in _JSON_TAGS:
        close = text.find(_FENCE, body_start)
        return len(text) if close < 0 else close + len(_FENCE)
    body_end, end = _fence_extent(text, body_start)
    strength = "strong" if tag_l in _STRONG_TAGS else "fence"
    block = _Block(text[body_start:body_end], strength, tag, closed=end > body_end)
    scan.add_block(start, end, _parse_block(block, scan.box, scan.protocol))
    return end


def _take_tag(scan: _Scan, start: int, after: int) -> int:
    """Parse the ``<tool_call>`` block opening at ``start``; return where scanning continues."""
    text = scan.text
    close = text.find("</tool_call>", after)
    nxt = text.find("<tool_call>", after)
    if close < 0 or (0 <= nxt < close):
        body_end = len(text) if nxt < 0 else nxt
        end = body_end
    else:
        body_end, end = close, close + len("</tool_call>")
    block = _Block(text[after:body_end], "strong", "tool_call", closed=end > body_end)
    scan.add_block(start, end, _parse_block(block, scan.box, scan.protocol))
    return end


def _take_bare(scan: _Scan, start: int) -> int:
    """Parse a bare JSON candidate opening at ``start``; return where scanning continues."""
    text, box = scan.text, scan.box
    if scan.bare_misses >= _MAX_BARE_MISSES or not _bare_start_ok(text, start):
        return start + 1
    extent = _scan_extent(text, start)
    chunk_end = len(text) if extent is None else extent
    chunk = text[start:chunk_end]
    if extent is None and not _looks_like_call(chunk, box):
        scan.bare_misses += 1
        return start + 1
    value, failure = _loads_lenient(chunk)
    if failure is not None:
        if _looks_like_call(chunk, box):
            scan.items.append(_error_item(chunk, failure, box, scan.protocol))
            scan.removals.append((start, chunk_end, ""))
            return chunk_end
        scan.bare_misses += 1
        return start + 1
    classified = _classify(value, "bare", box, scan.protocol)
    if classified:
        scan.items += classified
        scan.removals.append((start, chunk_end, ""))
    return chunk_end  # a data object's nested objects are not calls either


def _fence_extent(text: str, body_start: int) -> tuple[int, int]:
    """(end of a fenced block's body, end of the block including its closing fence).

    A JSON value that opens the block is skipped string-aware first, so a string value
    containing three backticks does not end the block. An unclosed fence runs to the end.
    """
    n = len(text)
    search_from = body_start
    first = _skip_ws(text, body_start)
    if first < n and text[first] in "{[":
        extent = _scan_extent(text, first)
        if extent is not None:
            search_from = extent
    close = text.find(_FENCE, search_from)
    if close < 0:
        return n, n
    return close, close + len(_FENCE)


def _bare_start_ok(text: str, start: int) -> bool:
    """A bare candidate must open like a call: ``{"``, ``{'``, ``{“`` or ``[{``."""
    j = _skip_ws(text, start + 1)
    if j >= len(text):
        return False
    if text[start] == "[":
        return text[j] == "{"
    return text[j] in "\"'" or text[j] in _SMART_DOUBLE


def _scan_extent(text: str, start: int) -> int | None:
    """Index one past the bracket closing the one at ``text[start]``, or None.

    String-aware for both quote characters (backslash escapes honoured; raw newlines
    allowed inside strings). Mismatched bracket kinds are not checked here.
    """
    depth = 0
    quote = ""
    i = start
    search = _SCAN_RE.search
    while True:
        m = search(text, i)
        if m is None:
            return None
        c = m.group()
        i = m.end()
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i


@dataclass
class _Block:
    """The body of a fenced or ``<tool_call>`` block.

    Attributes:
        body: The text between the opening line and the closing fence or tag.
        strength: ``strong`` (a tool-call tag) or ``fence`` (a json or untagged fence).
        tag: The fence's language tag as written (``tool_call`` for a ``<tool_call>`` block).
        closed: Whether the model closed the block (a closing fence or ``</tool_call>``),
            i.e. it ended the call itself rather than running out of tokens.
    """

    body: str
    strength: str
    tag: str
    closed: bool


def _parse_block(
    block: _Block, box: _Toolbox, protocol: Protocol
) -> tuple[list[_Item], str] | None:
    """Calls in one fenced or ``<tool_call>`` block, and the text to keep in its place.

    Returns:
        None when the block holds nothing call-like (it then stays in the content).
    """
    items: list[_Item] = []
    residual: list[str] = []
    body = block.body
    i, n = 0, len(body)
    while i < n:
        j = min((k for k in (body.find("{", i), body.find("[", i)) if k >= 0), default=-1)
        if j < 0:
            residual.append(body[i:])
            break
        residual.append(body[i:j])
        extent = _scan_extent(body, j)
        chunk_end = n if extent is None else extent
        found = _block_chunk(body[j:chunk_end], block, box, protocol, runs_to_end=extent is None)
        if found is None:
            residual.append(body[j:chunk_end])
        else:
            items += found
        i = chunk_end
    rest = "".join(residual)
    if _JUNK_RE.fullmatch(rest):
        rest = ""
    if not items:
        if block.strength == "strong" and rest.strip():
            return [_no_call_item(block, rest, box, protocol)], ""
        return None
    return items, rest.strip()


def _block_chunk(
    chunk: str, block: _Block, box: _Toolbox, protocol: Protocol, runs_to_end: bool
) -> list[_Item] | None:
    """The calls in one JSON chunk of a block; None when it is not call-like (kept as text).

    A chunk that runs to the end of a *closed* block and fails to decode is retried with
    its open string and brackets closed at the block's end (:func:`close_at_end`): the
    model ended the call with the closing fence but forgot the quote that ends the last
    value. A call recovered so carries a ``repaired`` note.
    """
    value, failure = _loads_lenient(chunk)
    note = None
    if failure is not None and runs_to_end and block.closed:
        closed = close_at_end(chunk)
        if closed is not None:
            value, closed_failure = _loads_lenient(closed[0])
            if closed_failure is None:
                failure, note = None, closed[1]
    if failure is not None:
        if (
            block.strength == "strong"
            or _looks_like_call(chunk, box)
            or (block.strength == "fence" and _CALLISH_RE.search(chunk[:4000]) is not None)
        ):
            return [_error_item(chunk, failure, box, protocol)]
        return None
    classified = _classify(value, block.strength, box, protocol)
    if classified and note is not None:
        for item in classified:
            if item.error is None:
                item.repaired = f"{item.function}: {note} at the end of the block"
    return classified


def _no_call_item(block: _Block, rest: str, box: _Toolbox, protocol: Protocol) -> _Item:
    """The error of a tool-call block that holds no JSON call object."""
    tag = block.tag
    where = "<tool_call>" if tag == "tool_call" and protocol == "qwen" else f"```{tag}"
    msg = f"The {where} block does not contain a JSON tool call object. " + _FORMAT_HINT[protocol]
    return _Item(function=_guess_name(rest, box), arguments={}, error=msg)


def _splice(text: str, removals: list[tuple[int, int, str]]) -> str:
    """Remove the call spans from the text, keeping each block's residual text."""
    if not removals:
        return text.strip()
    pieces: list[str] = []
    last = 0
    for start, end, residual in removals:
        pieces.append(text[last:start])
        if residual:
            pieces.append(residual)
        last = end
    pieces.append(text[last:])
    out = ""
    for piece in pieces:
        if not piece.strip():
            continue
        if not out:
            out = piece
            continue
        left, right = out.rstrip(), piece.lstrip()
        newlines = min(
            max(out[len(left) :].count("\n"), piece[: len(piece) - len(right)].count("\n")), 2
        )
        out = left + ("\n" * newlines if newlines else " ") + right
    return out.strip()
