"""From decoded JSON values to tool calls: name resolution against the offered tools, the
key spellings models use, and the error a malformed call carries back to the model."""

from __future__ import annotations

import re
from typing import Any

from inspect_ai.tool import ToolInfo

from charbench.toolcalls.arguments import _validate_args
from charbench.toolcalls.common import (
    _FORMAT_HINT,
    INVALID_CALL_NAME,
    Protocol,
    _clip,
    _fix_surrogates,
    _Item,
    _json_type,
    _norm_name,
)
from charbench.toolcalls.lenient_json import _Failure, _loads_lenient
from charbench.toolcalls.schema import _signature

_NAME_KEYS = ("name", "function", "tool", "tool_name", "function_name", "action")


_ARG_KEYS = ("arguments", "args", "parameters", "params", "input", "action_input", "tool_input")


_META_KEYS = frozenset({"type", "id", "call_id", "index"})


_WRAPPER_KEYS = ("tool_calls", "calls", "function_calls")


_CALLISH_RE = re.compile(
    r"""["']?\b(name|function|tool|tool_name|function_name|action)\b["']?\s*:\s*["']?([^"'\n,}]{0,80})""",
    re.IGNORECASE,
)


_ARGSISH_RE = re.compile(
    r"""["']\s*(arguments|args|parameters|params|input|action_input)\s*["']\s*:"""
)


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


def _classify(value: Any, strength: str, box: _Toolbox, protocol: Protocol) -> list[_Item] | None:
    """Turn a decoded value into calls; None when it is not a tool call at all.

    ``strength`` is how clearly the surrounding syntax marks a call: ``strong``
    (``<tool_call>``, ```tool_call), ``fence`` (```json or an untagged fence) or ``bare``.
    """
    if isinstance(value, list):
        return _classify_list(value, strength, box, protocol)
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


def _classify_list(
    value: list[Any], strength: str, box: _Toolbox, protocol: Protocol
) -> list[_Item] | None:
    """The calls of a JSON list of calls; an element that is no call becomes an error."""
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


def _looks_like_call(chunk: str, box: _Toolbox) -> bool:
    """Whether text that failed to parse was clearly meant as a tool call."""
    head = chunk[:4000]
    named = _CALLISH_RE.search(head)
    if named is None:
        return False
    return box.mentioned(named.group(2)) or _ARGSISH_RE.search(head) is not None


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
