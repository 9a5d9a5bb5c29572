"""Tool-call text protocols (pure Python, no torch): rendering, guided calls, lenient JSON,
extraction and argument checks.

The ``hf-lora`` provider uses them to serve a local model that has no tool-calling API, and
``agentic_email`` uses the same parser to find calls that a server left in the reply text
(:mod:`charbench.toolcalls.text_calls`), so this package imports nothing from
``charbench.provider`` or the tasks.

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
that differ in case or in ``-``/``_``/space separators. One repair goes further and is
reported: a string value left open at a block's *closing* fence (or ``</tool_call>``) is
closed there with its brackets, because the model ended the call itself (a real 0.5B model
wrote ``send_email`` bodies that way, four turns in a row); :attr:`ParsedReply.repaired`
says so, and ``hf-lora`` copies it into the ``ModelCall``. A block that was never closed
(the reply ran out of tokens) is still reported as cut off, never guessed at.

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

from charbench.toolcalls.common import INVALID_CALL_NAME, MAX_ARGUMENT_DEPTH, ParsedReply
from charbench.toolcalls.extract import parse_native_tool_calls, parse_tool_calls
from charbench.toolcalls.guided import (
    forced_call_prefix,
    guided_call_fields,
    guided_call_head,
    take_guided_values,
)
from charbench.toolcalls.render import (
    render_tool_calls,
    render_tool_instructions,
    to_openai_tools,
    tool_calls_to_openai,
)

__all__ = [
    "INVALID_CALL_NAME",
    "MAX_ARGUMENT_DEPTH",
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
