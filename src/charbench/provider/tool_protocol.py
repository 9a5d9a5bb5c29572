"""Tool-call text protocols for the ``hf-lora`` provider (pure Python, no torch).

Two protocols serve a local model that has no tool-calling API of its own:

* ``json`` (the default): :func:`render_tool_instructions` describes the tools and the
  reply format for the system prompt, and :func:`parse_tool_calls` reads the calls back
  out of the model's reply.
* ``native``: the chat template renders the tools itself (:func:`to_openai_tools`,
  :func:`tool_calls_to_openai`) and :func:`parse_native_tool_calls` reads the family's own
  call format (Llama 3.1 JSON, Qwen ``<tool_call>`` blocks).

Parsing is deliberately lenient where models are sloppy, because a strict parser turns a
persona's formatting habits into missing emails (the failure described in REFERENCE.md
section 6, point 2). It accepts fenced (```json, ```, ```tool_call) and bare JSON anywhere
in the reply, ``<tool_call>`` blocks, several calls per turn (several blocks, several
objects in a block, or a JSON list), raw newlines/tabs/control characters inside strings,
trailing commas, unescaped double quotes inside strings where unambiguous, Python-literal
dicts (``ast.literal_eval``, never ``eval``), unquoted keys, missing closing brackets,
curly double quotes when the block has no straight ones, the key spellings
``arguments``/``args``/``parameters``/``params``/``input``/``action_input`` and
``name``/``function``/``tool``/``tool_name``/``action``, OpenAI's nesting
``{"function": {"name", "arguments"}}``, arguments given as a JSON string, and tool names
that differ in case or in ``-``/``_``/space separators.

What cannot be used becomes a :class:`~inspect_ai.tool.ToolCall` whose ``parse_error``
tells the model precisely what was wrong (invalid JSON with line and column, unknown tool
with the list of tools, missing or mistyped argument with its expected type), so an agent
loop can continue. JSON in prose that is not a tool call stays in the content. The parsers
never raise.

Arguments of a successful call validate against the tool's JSON schema exactly as
Inspect's ``execute_tools`` validates them (``jsonschema`` Draft 7), after these
conservative coercions: a numeric string for an integer/number argument, a number for a
string argument, ``"true"``/``"false"`` for a boolean, a single value for an array
argument (wrapped in a list), a JSON string for an array/object argument, a string that
matches an enum value except for case, and ``null`` for an optional argument (dropped, so
the tool's default applies).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import logging
import math
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema
from inspect_ai.tool import ToolCall, ToolChoice, ToolFunction, ToolInfo
from inspect_ai.util import JSONSchema

__all__ = [
    "ParsedReply",
    "forced_call_prefix",
    "guided_call_fields",
    "guided_call_head",
    "parse_native_tool_calls",
    "parse_tool_calls",
    "render_tool_calls",
    "render_tool_instructions",
    "take_guided_values",
    "to_openai_tools",
    "tool_calls_to_openai",
]

logger = logging.getLogger(__name__)

MAX_ARGUMENT_DEPTH = 100
"""Deepest nesting accepted in arguments (Inspect's own limit for tool-call arguments)."""

INVALID_CALL_NAME = "invalid_tool_call"
"""``ToolCall.function`` of a malformed call whose tool name could not be recovered."""

_NAME_KEYS = ("name", "function", "tool", "tool_name", "function_name", "action")
_ARG_KEYS = ("arguments", "args", "parameters", "params", "input", "action_input", "tool_input")
_META_KEYS = frozenset({"type", "id", "call_id", "index"})
_WRAPPER_KEYS = ("tool_calls", "calls", "function_calls")

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

_FENCE = "```"
_TOKEN_RE = re.compile(r"```|<tool_call>|[{\[]")
_FENCE_TAG_RE = re.compile(r"[ \t]*([A-Za-z][\w.+-]*)?[ \t]*\r?\n?")
_SCAN_RE = re.compile(r"[\\\"'{}\[\]]")
_CALLISH_RE = re.compile(
    r"""["']?\b(name|function|tool|tool_name|function_name|action)\b["']?\s*:\s*["']?([^"'\n,}]{0,80})""",
    re.IGNORECASE,
)
_ARGSISH_RE = re.compile(
    r"""["']\s*(arguments|args|parameters|params|input|action_input)\s*["']\s*:"""
)
_JUNK_RE = re.compile(r"""[\s}\])"',;`]*""")
_INT_RE = re.compile(r"[+-]?\d{1,18}")
_FLOAT_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_SMART_DOUBLE = "\u201c\u201d\u201e\u201f\u2033"
_MAX_BARE_MISSES = 64
_MAX_LITERAL_EVAL_CHARS = 20_000

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
    """

    content: str
    tool_calls: list[ToolCall]


# ---------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------


def render_tool_instructions(tools: list[ToolInfo]) -> str:
    """Describe the tools and the json protocol's reply format for the system prompt.

    Args:
        tools: The tools offered this turn, in the order to list them.

    Returns:
        Plain text (markdown headings) listing each tool with its description and its
        arguments (type, required or optional, default, allowed values, description),
        followed by how to call a tool and how to finish. Deterministic. An empty string
        when ``tools`` is empty.
    """
    if not tools:
        return ""
    lines = ["# Tools", "", "You can use the following tools.", ""]
    for tool in tools:
        lines.append(f"## {tool.name}")
        if tool.description.strip():
            lines.append(tool.description.strip())
        props = tool.parameters.properties
        if props:
            lines.append("Arguments:")
            required = set(tool.parameters.required)
            for pname, schema in props.items():
                lines.append(_describe_param(pname, schema, pname in required))
        else:
            lines.append("Arguments: none.")
        lines.append("")
    example = tools[0]
    example_args = {
        pname: _placeholder(schema)
        for pname, schema in example.parameters.properties.items()
        if pname in example.parameters.required
    }
    example_json = json.dumps({"name": example.name, "arguments": example_args}, ensure_ascii=False)
    lines += [
        "# How to call a tool",
        "",
        "To call a tool, write a JSON object with the tool's name and its arguments in a "
        "```json fenced block, for example:",
        "",
        "```json",
        example_json,
        "```",
        "",
        '- Write exactly one JSON object {"name": ..., "arguments": {...}} per block. To call '
        "several tools in one turn, write one block per call.",
        "- Use valid JSON: strings in double quotes; write a line break inside a string as "
        '\\n and a double quote inside a string as \\".',
        "- The results come back to you in the next message.",
        "- When you are finished and need no more tools, reply in plain text without a tool call.",
    ]
    return "\n".join(lines)


def forced_call_prefix(
    tool_choice: ToolChoice, tools: list[ToolInfo], protocol: Literal["json", "native"],
    family: str = "",
) -> str:
    """The start of a tool call to prefill when ``tool_choice`` requires a call.

    A local model has no API that enforces Inspect's ``tool_choice``, so ``hf-lora`` writes
    the opening of the call itself and the model continues from there: with ``"any"`` the
    model still picks the tool (the prefix stops inside the ``name`` string); with a
    :class:`~inspect_ai.tool.ToolFunction` the name is fixed and the prefix stops where the
    first argument key starts (or closes an empty argument object for a tool without
    arguments). The prefix is part of the reply: parse ``prefix + completion``.

    Args:
        tool_choice: Inspect's tool choice for this turn.
        tools: The tools offered this turn (Inspect keeps only the chosen one for a
            ``ToolFunction``).
        protocol: ``json`` (fenced block) or ``native`` (the family's own format).
        family: The base model's ``model_type`` (native protocol only): ``llama*`` writes
            ``{"name": ..., "parameters": ...}``, ``qwen*`` a ``<tool_call>`` block, any other
            family the json protocol's fenced block.

    Returns:
        The text to append after the generation prompt; ``""`` for ``"auto"``/``"none"``,
        when no tools are offered, or for a ``ToolFunction`` naming a tool not offered.
    """
    if not tools or tool_choice in ("auto", "none"):
        return ""
    fam = family.strip().lower() if protocol == "native" else ""
    if fam.startswith("llama"):
        opening, arg_key = "", "parameters"
    elif fam.startswith("qwen"):
        opening, arg_key = "<tool_call>\n", "arguments"
    else:
        opening, arg_key = f"{_FENCE}json\n", "arguments"
    if isinstance(tool_choice, ToolFunction):
        tool = next((t for t in tools if t.name == tool_choice.name), None)
        if tool is None:
            return ""
        name = json.dumps(tool.name, ensure_ascii=False)
        args_open = '{"' if tool.parameters.properties else "{}}"
        return f'{opening}{{"name": {name}, "{arg_key}": {args_open}'
    return f'{opening}{{"name": "'


def _string_valued(schema: JSONSchema) -> bool:
    """Whether a JSON string is a valid value for ``schema`` (``string`` or a union with it)."""
    if schema.type == "string" or (isinstance(schema.type, list) and "string" in schema.type):
        return not schema.enum
    return any(_string_valued(s) for s in (schema.anyOf or []))


def guided_call_fields(tool: ToolInfo) -> list[str] | None:
    """The arguments a guided call asks the model for, or None if it cannot guide ``tool``.

    A guided call (``hf-lora`` with a named ``tool_choice`` and the json protocol) writes
    the JSON of the call itself and has the model write only the value of each required
    argument, one string at a time, so the call is always well formed.

    Args:
        tool: The forced tool.

    Returns:
        The required argument names in schema order (optional arguments are left out, so
        their defaults apply); ``[]`` for a tool without required arguments; None when a
        required argument does not take a free string (a number, a boolean, an enum, an
        object), in which case the caller falls back to :func:`forced_call_prefix`.
    """
    props = tool.parameters.properties
    required = [name for name in props if name in set(tool.parameters.required)]
    if any(not _string_valued(props[name]) for name in required):
        return None
    return required


def guided_call_head(tool: ToolInfo) -> str:
    """The opening of a guided json-protocol call, up to the argument object's ``{``."""
    return f'{_FENCE}json\n{{"name": {json.dumps(tool.name, ensure_ascii=False)}, "arguments": {{'


def _value_end(text: str, start: int) -> int:
    """Index of the first unescaped double quote in ``text`` from ``start``; -1 if none."""
    i = start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i
        i += 1
    return -1


_JSON_ESCAPE = re.compile(r'\\(["\\/bfnrt]|u[0-9a-fA-F]{4})')


def _json_string_body(raw: str) -> str:
    r"""The model's text of a JSON string value, made valid: a backslash that starts no JSON
    escape is escaped itself (``\h`` becomes ``\\h``), and a trailing lone backslash, which
    would swallow the closing quote, is dropped."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] != "\\":
            out.append(raw[i])
            i += 1
            continue
        escape = _JSON_ESCAPE.match(raw, i)
        if escape is not None:
            out.append(escape.group())
            i = escape.end()
        else:
            if i < len(raw) - 1:
                out.append("\\\\")
            i += 1
    return "".join(out)


def take_guided_values(continuation: str, fields: list[str], i: int) -> tuple[str, int, bool]:
    """What a guided call keeps of one generation that started inside the value of field i.

    Args:
        continuation: the generated text (the open quote of field ``i`` precedes it).
        fields: the guided fields.
        i: the field whose value the continuation starts in.

    Returns:
        ``(kept, next_field, complete)``: the text to keep (closed values and the model's
        own separators, in canonical form); the field to continue with; and whether the
        last kept value was closed (False: the continuation ended inside a value, and
        ``kept`` ends inside it).
    """
    kept = ""
    pos = 0
    while True:
        end = _value_end(continuation, pos)
        if end < 0:
            return kept + _json_string_body(continuation[pos:]), i, False
        kept += _json_string_body(continuation[pos:end]) + '"'
        pos = end + 1
        i += 1
        if i == len(fields):
            return kept, i, True
        sep = re.match(r'\s*,\s*"' + re.escape(fields[i]) + r'"\s*:\s*"', continuation[pos:])
        if sep is None:
            return kept, i, True
        kept += ", " + json.dumps(fields[i]) + ': "'
        pos += sep.end()


def render_tool_calls(calls: list[ToolCall]) -> str:
    """Render calls as the json protocol's fenced blocks (for re-rendering history).

    Args:
        calls: The calls of one assistant turn.

    Returns:
        One ```json block per call, separated by blank lines (empty string for no
        calls). A malformed call renders with the name and (usually empty) arguments it
        was recorded with; its original text is not recoverable from the ``ToolCall``.
    """
    blocks = []
    for call in calls:
        body = json.dumps({"name": call.function, "arguments": call.arguments}, ensure_ascii=False)
        blocks.append(f"{_FENCE}json\n{body}\n{_FENCE}")
    return "\n\n".join(blocks)


def to_openai_tools(tools: list[ToolInfo]) -> list[dict[str, Any]]:
    """Convert tools to the nested OpenAI shape that Hugging Face chat templates expect.

    Args:
        tools: Inspect tool descriptions.

    Returns:
        ``[{"type": "function", "function": {"name", "description", "parameters"}}]`` with
        ``parameters`` the JSON schema (``None`` fields omitted), ready for
        ``tokenizer.apply_chat_template(tools=...)`` (Llama 3.1 dumps each entry whole,
        Qwen 2.5 inside ``<tools>``).
    """
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters.model_dump(exclude_none=True),
            },
        }
        for tool in tools
    ]


def tool_calls_to_openai(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """Convert Inspect tool calls to the nested OpenAI shape for chat templates.

    The Llama 3.1 and Qwen 2.5 templates both render ``tool_call.function.arguments``
    through ``tojson``, so arguments must be a dict: a JSON string would be encoded twice.
    (Llama 3.1's template also refuses more than one call per assistant message; that is
    the caller's concern.)

    Args:
        calls: Inspect tool calls (e.g. ``ChatMessageAssistant.tool_calls``).

    Returns:
        ``[{"id", "type": "function", "function": {"name", "arguments": dict}}]``.
    """
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.function, "arguments": dict(call.arguments)},
        }
        for call in calls
    ]


# ---------------------------------------------------------------------------------------
# Public parsers
# ---------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------


@dataclass
class _Item:
    """A tool call found in the reply, before it gets an id."""

    function: str
    arguments: dict[str, Any]
    error: str | None = None


@dataclass
class _Failure:
    """Why a JSON chunk could not be decoded."""

    message: str


class _Toolbox:
    """The offered tools, indexed for name resolution."""

    def __init__(self, tools: list[ToolInfo]) -> None:
        self.tools = {tool.name: tool for tool in tools}
        norm: dict[str, str | None] = {}
        for name in self.tools:
            key = _norm_name(name)
            norm[key] = None if key in norm else name  # ambiguous after normalising
        self.norm = norm
        self.names = ", ".join(self.tools)
        alternatives = [
            "[-_ .]?".join(re.escape(part) for part in re.split(r"[\s\-_.]+", name) if part)
            for name in sorted(self.tools, key=len, reverse=True)
        ]
        self.mentions = re.compile("|".join(a for a in alternatives if a) or r"(?!)", re.I)
        self.params: dict[str, dict[str, str | None]] = {}
        for tool in tools:
            by_norm: dict[str, str | None] = {}
            for pname in tool.parameters.properties:
                key = _norm_name(pname)
                by_norm[key] = None if key in by_norm else pname
            self.params[tool.name] = by_norm
        self.param_keys = {key for by_norm in self.params.values() for key in by_norm}

    @classmethod
    def of(cls, tools: list[ToolInfo]) -> _Toolbox:
        """The toolbox for ``tools``, reused while the same ToolInfo objects come back."""
        key = tuple(id(tool) for tool in tools)
        cached = _TOOLBOXES.get(key)
        if cached is not None and all(a is b for a, b in zip(cached[0], tools, strict=True)):
            return cached[1]
        box = cls(tools)
        if len(_TOOLBOXES) >= 64:
            _TOOLBOXES.clear()
        _TOOLBOXES[key] = (list(tools), box)
        return box

    def resolve(self, name: str) -> str | None:
        if name in self.tools:
            return name
        key = _norm_name(name)
        if key in self.norm:
            return self.norm[key]
        for prefix in ("functions_", "function_", "tools_", "tool_"):
            if key.startswith(prefix):
                return self.norm.get(key[len(prefix) :])
        return None

    def mentioned(self, text: str) -> bool:
        return bool(self.tools) and self.mentions.search(text) is not None


_TOOLBOXES: dict[tuple[int, ...], tuple[list[ToolInfo], _Toolbox]] = {}


def _norm_name(name: str) -> str:
    name = name.strip().lower()
    if name.endswith("()"):
        name = name[:-2]
    return re.sub(r"[\s\-_.]+", "_", name).strip("_")


def _parse_reply(text: str, tools: list[ToolInfo], protocol: Protocol) -> ParsedReply:
    """The parser proper (may raise on a bug; the public wrappers catch)."""
    if not tools or not text:
        return ParsedReply(content=text.strip(), tool_calls=[])
    box = _Toolbox.of(tools)
    items: list[_Item] = []
    removals: list[tuple[int, int, str]] = []
    n = len(text)
    pos = 0
    bare_misses = 0
    while pos < n:
        match = _TOKEN_RE.search(text, pos)
        if match is None:
            break
        token, start = match.group(), match.start()
        if token == _FENCE:
            tag_match = _FENCE_TAG_RE.match(text, match.end())
            tag = (tag_match.group(1) or "") if tag_match else ""
            body_start = tag_match.end() if tag_match else match.end()
            tag_l = tag.lower()
            if tag_l not in _STRONG_TAGS and tag_l not in _JSON_TAGS:
                close = text.find(_FENCE, body_start)
                pos = n if close < 0 else close + len(_FENCE)
                continue
            body_end, end = _fence_extent(text, body_start)
            strength = "strong" if tag_l in _STRONG_TAGS else "fence"
            found = _parse_block(text[body_start:body_end], strength, box, protocol, tag)
            if found is not None:
                block_items, residual = found
                items += block_items
                removals.append((start, end, residual))
            pos = end
        elif token == "<tool_call>":
            body_start = match.end()
            close = text.find("</tool_call>", body_start)
            nxt = text.find("<tool_call>", body_start)
            if close < 0 or (0 <= nxt < close):
                body_end = n if nxt < 0 else nxt
                end = body_end
            else:
                body_end, end = close, close + len("</tool_call>")
            found = _parse_block(text[body_start:body_end], "strong", box, protocol, "tool_call")
            if found is not None:
                block_items, residual = found
                items += block_items
                removals.append((start, end, residual))
            pos = end
        else:
            if bare_misses >= _MAX_BARE_MISSES or not _bare_start_ok(text, start):
                pos = start + 1
                continue
            extent = _scan_extent(text, start)
            chunk_end = n if extent is None else extent
            chunk = text[start:chunk_end]
            if extent is None and not _looks_like_call(chunk, box):
                bare_misses += 1
                pos = start + 1
                continue
            value, failure = _loads_lenient(chunk)
            if failure is not None:
                if _looks_like_call(chunk, box):
                    items.append(_error_item(chunk, failure, box, protocol))
                    removals.append((start, chunk_end, ""))
                    pos = chunk_end
                else:
                    bare_misses += 1
                    pos = start + 1
                continue
            classified = _classify(value, "bare", box, protocol)
            if classified:
                items += classified
                removals.append((start, chunk_end, ""))
            pos = chunk_end  # a data object's nested objects are not calls either
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    calls = [
        ToolCall(
            id=f"call_{digest}_{i}",
            function=_fix_surrogates(item.function),
            arguments=item.arguments if item.error is None else {},
            parse_error=None if item.error is None else _fix_surrogates(item.error),
        )
        for i, item in enumerate(items)
    ]
    return ParsedReply(content=_splice(text, removals), tool_calls=calls)


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


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i].isspace():
        i += 1
    return i


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
        # a backslash outside a string is just a character


def _looks_like_call(chunk: str, box: _Toolbox) -> bool:
    """Whether text that failed to parse was clearly meant as a tool call."""
    head = chunk[:4000]
    named = _CALLISH_RE.search(head)
    if named is None:
        return False
    return box.mentioned(named.group(2)) or _ARGSISH_RE.search(head) is not None


def _parse_block(
    body: str, strength: str, box: _Toolbox, protocol: Protocol, tag: str
) -> tuple[list[_Item], str] | None:
    """Calls in one fenced or ``<tool_call>`` block, and the text to keep in its place.

    Returns:
        None when the block holds nothing call-like (it then stays in the content).
    """
    items: list[_Item] = []
    residual: list[str] = []
    i, n = 0, len(body)
    while i < n:
        j = min((k for k in (body.find("{", i), body.find("[", i)) if k >= 0), default=-1)
        if j < 0:
            residual.append(body[i:])
            break
        residual.append(body[i:j])
        extent = _scan_extent(body, j)
        chunk_end = n if extent is None else extent
        chunk = body[j:chunk_end]
        value, failure = _loads_lenient(chunk)
        if failure is not None:
            if (
                strength == "strong"
                or _looks_like_call(chunk, box)
                or (strength == "fence" and _CALLISH_RE.search(chunk[:4000]) is not None)
            ):
                items.append(_error_item(chunk, failure, box, protocol))
            else:
                residual.append(chunk)
            i = chunk_end
            continue
        classified = _classify(value, strength, box, protocol)
        if classified is None:
            residual.append(chunk)
        else:
            items += classified
        i = chunk_end
    rest = "".join(residual)
    if _JUNK_RE.fullmatch(rest):
        rest = ""
    if not items:
        if strength == "strong" and rest.strip():
            where = "<tool_call>" if tag == "tool_call" and protocol == "qwen" else f"```{tag}"
            msg = (
                f"The {where} block does not contain a JSON tool call object. "
                + _FORMAT_HINT[protocol]
            )
            name = _guess_name(rest, box)
            return [_Item(function=name, arguments={}, error=msg)], ""
        return None
    return items, rest.strip()


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


# ---------------------------------------------------------------------------------------
# Lenient JSON
# ---------------------------------------------------------------------------------------


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


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _fix_surrogates(text: str) -> str:
    if _SURROGATE_RE.search(text) is not None:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


# ---------------------------------------------------------------------------------------
# From JSON values to calls
# ---------------------------------------------------------------------------------------


def _classify(value: Any, strength: str, box: _Toolbox, protocol: Protocol) -> list[_Item] | None:
    """Turn a decoded value into calls; None when it is not a tool call at all.

    ``strength`` is how clearly the surrounding syntax marks a call: ``strong``
    (``<tool_call>``, ```tool_call), ``fence`` (```json or an untagged fence) or ``bare``.
    """
    if isinstance(value, list):
        found = [_classify(element, strength, box, protocol) for element in value]
        if not any(found):
            return None
        items: list[_Item] = []
        for k, sub in enumerate(found):
            if sub:
                items += sub
            else:
                items.append(
                    _Item(
                        INVALID_CALL_NAME,
                        {},
                        f"Element {k} of the list of tool calls is not a tool call object. "
                        + _FORMAT_HINT[protocol],
                    )
                )
        return items
    if not isinstance(value, dict):
        if strength == "strong":
            return [
                _Item(
                    INVALID_CALL_NAME,
                    {},
                    "The tool call block holds a JSON "
                    f"{_json_type(value)}, not an object. " + _FORMAT_HINT[protocol],
                )
            ]
        return None
    for key in _WRAPPER_KEYS:
        if isinstance(value.get(key), list) and len(value) <= 2:
            return _classify(value[key], "fence" if strength == "bare" else strength, box, protocol)
    nested = value.get("function")
    if isinstance(nested, dict) and isinstance(nested.get("name"), str):
        args_key = next((k for k in _ARG_KEYS if k in nested), None)
        return [
            _build_call(nested["name"], nested.get(args_key) if args_key else None, box, protocol)
        ]
    name_key = _pick_name_key(value, box)
    args_key = next((k for k in _ARG_KEYS if k in value), None)
    if name_key is None:
        if strength == "bare":
            return None
        if args_key is not None or strength == "strong" or _overlaps_params(value, box):
            return [
                _Item(
                    INVALID_CALL_NAME,
                    {},
                    "The tool call has no tool name. Write "
                    '{"name": "<tool>", "arguments": {...}} with <tool> one of: '
                    f"{box.names}.",
                )
            ]
        return None
    raw_name = value[name_key]
    if (
        box.resolve(raw_name) is None
        and args_key is None
        and (strength == "bare" or (strength == "fence" and name_key == "name"))
    ):
        # {"name": "Alice", "email": ...} is data, not a call to a tool called Alice
        return None
    if args_key is not None:
        raw_args = value[args_key]
    else:
        raw_args = {k: v for k, v in value.items() if k != name_key and k not in _META_KEYS}
    return [_build_call(raw_name, raw_args, box, protocol)]


def _pick_name_key(value: dict[str, Any], box: _Toolbox) -> str | None:
    present = [k for k in _NAME_KEYS if isinstance(value.get(k), str) and value[k].strip()]
    for key in present:
        if box.resolve(value[key]) is not None:
            return key
    return present[0] if present else None


def _overlaps_params(value: dict[str, Any], box: _Toolbox) -> bool:
    return any(_norm_name(k) in box.param_keys for k in value)


def _build_call(raw_name: str, raw_args: Any, box: _Toolbox, protocol: Protocol) -> _Item:
    resolved = box.resolve(raw_name)
    if resolved is None:
        shown = _clip(_fix_surrogates(raw_name.strip()), 64)
        return _Item(
            shown or INVALID_CALL_NAME,
            {},
            f"Unknown tool '{shown}'. Available tools: {box.names}. "
            "Call one of these by its exact name.",
        )
    tool = box.tools[resolved]
    props = tool.parameters.properties
    args = raw_args
    if isinstance(args, str):
        stripped = args.strip()
        if not stripped:
            args = {}
        elif stripped[0] in "{[":
            decoded, failure = _loads_lenient(stripped)
            if failure is not None:
                return _Item(
                    resolved,
                    {},
                    f"The arguments of the '{resolved}' call are a string that is not valid "
                    f"JSON. {failure.message} Give the arguments as a JSON object, not as a "
                    "string.",
                )
            args = decoded
        elif len(props) == 1:
            args = {next(iter(props)): args}
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return _Item(
            resolved,
            {},
            f"The arguments of the '{resolved}' call must be a JSON object mapping argument "
            f"names to values, got a {_json_type(args)}. Expected arguments: "
            f"{_signature(tool)}.",
        )
    return _validate_args(tool, args, box.params[tool.name])


def _validate_args(tool: ToolInfo, args: dict[str, Any], by_norm: dict[str, str | None]) -> _Item:
    params = tool.parameters
    props = params.properties
    required = set(params.required)
    extras_allowed = params.additionalProperties is not False
    out: dict[str, Any] = {}
    unexpected: list[str] = []
    for key, value in args.items():
        target = key if key in props else by_norm.get(_norm_name(key))
        if target is None or (target != key and target in args):
            if extras_allowed:
                out[key] = value
            else:
                unexpected.append(key)
            continue
        out[target] = value
    problems: list[str] = []
    for pname in list(out):
        if pname not in props:
            continue
        schema = props[pname]
        value = out[pname]
        if value is None and not _allows_null(schema):
            if pname in required:
                problems.append(
                    f"argument '{pname}' is required and cannot be null "
                    f"(expected {_describe_type(schema)})"
                )
            else:
                del out[pname]
            continue
        out[pname] = _coerce(value, schema)
    missing = [p for p in params.required if p not in out]
    if missing:
        described = ", ".join(
            f"'{p}' ({_describe_type(props[p])})" if p in props else f"'{p}'" for p in missing
        )
        plural = "s" if len(missing) > 1 else ""
        problems.append(f"missing required argument{plural} {described}")
    if unexpected:
        shown = ", ".join(f"'{_clip(_fix_surrogates(k), 40)}'" for k in unexpected[:5])
        plural = "s" if len(unexpected) > 1 else ""
        problems.append(f"unexpected argument{plural} {shown}")
    problems += _schema_problems(tool, out)
    if problems:
        return _Item(
            tool.name,
            {},
            f"Invalid arguments for tool '{tool.name}': {'; '.join(problems)}. "
            f"Expected arguments: {_signature(tool)}.",
        )
    return _Item(tool.name, out)


def _schema_problems(tool: ToolInfo, args: dict[str, Any]) -> list[str]:
    """Validate as Inspect's ``execute_tools`` does (jsonschema Draft 7)."""
    validator = _validator(
        json.dumps(tool.parameters.model_dump(exclude_none=True), sort_keys=True)
    )
    problems: list[str] = []
    for error in sorted(validator.iter_errors(args), key=lambda e: list(map(str, e.absolute_path))):
        path = _path(error.absolute_path)
        if not path and error.validator in ("required", "additionalProperties"):
            continue  # reported by the caller, with the expected types
        where = f"argument '{path}'" if path else "the arguments"
        if error.validator == "type":
            expected = error.schema if isinstance(error.schema, dict) else {}
            problems.append(
                f"{where} must be {_describe_type_dict(expected)}, got "
                f"{_json_type(error.instance)} {_clip(_short_json(error.instance), 40)}"
            )
        elif error.validator == "enum":
            allowed = ", ".join(_short_json(v) for v in error.validator_value)
            problems.append(
                f"{where} must be one of {allowed}, got {_clip(_short_json(error.instance), 40)}"
            )
        else:
            problems.append(f"{where}: {_clip(_fix_surrogates(error.message), 160)}")
        if len(problems) >= 5:
            break
    return problems


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    return jsonschema.Draft7Validator(json.loads(schema_json))


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# ---------------------------------------------------------------------------------------
# Coercion and descriptions
# ---------------------------------------------------------------------------------------


def _types_of(schema: JSONSchema) -> set[str]:
    types: set[str] = set()
    if isinstance(schema.type, str):
        types.add(schema.type)
    elif isinstance(schema.type, list):
        types.update(schema.type)
    for option in schema.anyOf or []:
        types |= _types_of(option)
    return types


def _allows_null(schema: JSONSchema) -> bool:
    types = _types_of(schema)
    return not types or "null" in types or (schema.enum is not None and None in schema.enum)


def _json_matches(value: Any, types: set[str]) -> bool:
    if value is None:
        return "null" in types
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int):
        return bool(types & {"integer", "number"})
    if isinstance(value, float):
        return "number" in types or ("integer" in types and value.is_integer())
    if isinstance(value, str):
        return "string" in types
    if isinstance(value, list):
        return "array" in types
    return "object" in types


def _coerce(value: Any, schema: JSONSchema) -> Any:
    """Apply the module's conservative coercions; unfixable values pass unchanged."""
    if schema.enum and isinstance(value, str) and value not in schema.enum:
        matches = [v for v in schema.enum if isinstance(v, str) and v.lower() == value.lower()]
        if len(matches) == 1:
            return matches[0]
    types = _types_of(schema)
    if not types or _json_matches(value, types):
        return value
    if isinstance(value, str):
        text = value.strip()
        if "integer" in types and _INT_RE.fullmatch(text):
            return int(text)
        if "number" in types and _INT_RE.fullmatch(text):
            return int(text)
        if "number" in types and _FLOAT_RE.fullmatch(text):
            number = float(text)
            if math.isfinite(number):
                return number
        if "boolean" in types and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if text[:1] in "[{" and types & {"array", "object"}:
            decoded, failure = _loads_lenient(text)
            if failure is None and _json_matches(decoded, types & {"array", "object"}):
                return decoded
    if isinstance(value, int | float) and not isinstance(value, bool) and "string" in types:
        return json.dumps(value)
    if "array" in types and not isinstance(value, list | dict):
        item_schema = schema.items
        item = value if item_schema is None else _coerce(value, item_schema)
        item_types = _types_of(item_schema) if item_schema is not None else set()
        if not item_types or _json_matches(item, item_types):
            return [item]
    return value


def _describe_type(schema: JSONSchema) -> str:
    return _describe_type_dict(schema.model_dump(exclude_none=True))


def _describe_type_dict(schema: dict[str, Any]) -> str:
    """Human wording of a JSON schema's type ("array of string", "one of 'a', 'b'")."""
    if isinstance(schema.get("enum"), list):
        return "one of " + ", ".join(_short_json(v) for v in schema["enum"])
    if isinstance(schema.get("anyOf"), list):
        return " or ".join(
            dict.fromkeys(_describe_type_dict(s) for s in schema["anyOf"] if isinstance(s, dict))
        )
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_describe_type_dict(schema['items'])}"
    return str(kind) if kind else "any JSON value"


def _describe_param(name: str, schema: JSONSchema, required: bool) -> str:
    parts = [_describe_type(schema), "required" if required else "optional"]
    if schema.default is not None:
        parts.append(f"default {_short_json(schema.default)}")
    line = f"- {name} ({', '.join(parts)})"
    if schema.description and schema.description.strip():
        line += f": {schema.description.strip()}"
    return line


def _signature(tool: ToolInfo) -> str:
    props = tool.parameters.properties
    if not props:
        return "none"
    required = set(tool.parameters.required)
    return ", ".join(
        f"{p} ({_describe_type(s)}, {'required' if p in required else 'optional'})"
        for p, s in props.items()
    )


def _placeholder(schema: JSONSchema) -> Any:
    if schema.enum:
        return schema.enum[0]
    types = _types_of(schema)
    for kind, value in (
        ("string", "..."),
        ("integer", 0),
        ("number", 0),
        ("boolean", True),
        ("array", []),
        ("object", {}),
    ):
        if kind in types:
            return value
    return "..."


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


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _guess_name(chunk: str, box: _Toolbox) -> str:
    """Best-effort tool name of a call that failed to parse."""
    named = _CALLISH_RE.search(chunk[:4000])
    if named is not None:
        candidate = named.group(2).strip()
        resolved = box.resolve(candidate) if candidate else None
        if resolved is not None:
            return resolved
    mention = box.mentions.search(chunk[:4000]) if box.tools else None
    if mention is not None:
        resolved = box.resolve(mention.group())
        if resolved is not None:
            return resolved
    return INVALID_CALL_NAME


def _error_item(chunk: str, failure: _Failure, box: _Toolbox, protocol: Protocol) -> _Item:
    return _Item(_guess_name(chunk, box), {}, f"{failure.message} {_FORMAT_HINT[protocol]}")
