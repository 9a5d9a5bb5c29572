"""Tool calls left in the text of a reply that came back without parsed calls.

A model behind an OpenAI-compatible server that does not parse tool calls (served with
only the model's chat template, or with a tool parser for another model family), or behind
Inspect's built-in ``hf`` provider when its parser does not match the model's format,
writes its call as text: the reply's ``tool_calls`` is empty and the call sits in the
content. :func:`find_text_tool_calls` finds such calls with the same lenient parser that
``hf-lora`` uses, so an agent loop can tell "the model did not call a tool" from "the
model called a tool that nobody parsed" and, when asked to, run the call anyway.
"""

from __future__ import annotations

from inspect_ai.tool import ToolInfo

from charbench.toolcalls.common import ParsedReply
from charbench.toolcalls.extract import parse_tool_calls

__all__ = ["LLAMA_SPECIAL_TOKENS", "find_text_tool_calls"]

LLAMA_SPECIAL_TOKENS = ("<|python_tag|>", "<|eom_id|>", "<|eot_id|>")
"""Llama 3.1's tool-call tokens; a server that returns them as text leaves them in the reply."""


def find_text_tool_calls(text: str, tools: list[ToolInfo]) -> ParsedReply:
    """The calls to the offered tools written in ``text``, in any format the parser reads.

    Recognised: a fenced JSON block with a name and arguments (```json, ```tool_call or an
    untagged fence), ``<tool_call>...</tool_call>`` blocks (Qwen, Hermes), a bare JSON object
    with ``name`` and ``arguments``/``parameters`` (Llama 3.1), Llama's python-tag form
    (``<|python_tag|>{...}``), OpenAI's nesting ``{"function": {"name", "arguments"}}``, and
    the other spellings and damage that :func:`charbench.toolcalls.parse_tool_calls`
    tolerates.

    Args:
        text: The text of an assistant turn whose provider returned no tool calls.
        tools: The tools offered that turn.

    Returns:
        The parsed reply when at least one call names an offered tool: *all* calls found
        (malformed ones carry ``parse_error``, as with ``hf-lora``) and the text without
        them. Otherwise (no tools, no call, or only JSON that names no offered tool) a reply
        with the whole text as content and no calls. Never raises.
    """
    if not tools or not text:
        return ParsedReply(content=text.strip(), tool_calls=[])
    cleaned = text
    for token in LLAMA_SPECIAL_TOKENS:
        cleaned = cleaned.replace(token, "\n")
    parsed = parse_tool_calls(cleaned, tools)
    offered = {tool.name for tool in tools}
    if not any(call.function in offered for call in parsed.tool_calls):
        return ParsedReply(content=text.strip(), tool_calls=[])
    return parsed
