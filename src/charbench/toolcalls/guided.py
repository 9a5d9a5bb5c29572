"""Required tool calls for a local model: the prefilled opening of a call (``tool_choice``
``any`` or a named tool) and the guided call, whose JSON the provider writes while the model
writes each required string value."""

from __future__ import annotations

import json
import re
from typing import Literal

from inspect_ai.tool import ToolChoice, ToolFunction, ToolInfo
from inspect_ai.util import JSONSchema

from charbench.toolcalls.common import _FENCE


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
