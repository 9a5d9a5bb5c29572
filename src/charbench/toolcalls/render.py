"""Rendering tools and tool calls for a local model's prompt: the json protocol's tool
instructions and fenced call blocks, and the nested OpenAI shapes that chat templates expect."""

from __future__ import annotations

import json
from typing import Any

from inspect_ai.tool import ToolCall, ToolInfo

from charbench.toolcalls.common import _FENCE
from charbench.toolcalls.schema import _describe_param, _placeholder


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
