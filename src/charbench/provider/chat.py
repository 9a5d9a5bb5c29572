"""Rendering Inspect conversations with the model's own chat template.

Role support is detected by *probing* the template (rendering a tiny conversation and
checking that a sentinel appears), never from the model name:

- no system role (Gemma): the system text is folded into the first user turn
  (``"{system}\\n\\n{user}"``);
- no tool role: each tool result becomes a user turn headed ``[TOOL OUTPUT: name]`` and
  consecutive user turns are merged (templates without a tool role usually also demand
  alternating roles).

With the ``json`` tool protocol the tools are described in the system prompt
(:func:`charbench.provider.tool_protocol.render_tool_instructions`) and earlier assistant
turns are rendered with the exact text the model produced (kept in the message metadata
under :data:`RAW_COMPLETION_KEY`), or, for messages from elsewhere, with their tool calls
as the protocol's fenced JSON blocks. With ``native`` the template gets OpenAI-shaped tools
and nested tool calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from inspect_ai.model import (
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageTool,
    ChatMessageUser,
)
from inspect_ai.tool import ToolInfo

from charbench.provider import tool_protocol
from charbench.provider.errors import HFLoraError

RAW_COMPLETION_KEY = "hf_lora_completion"
"""Assistant-message metadata key holding the raw completion text the model produced."""

ToolProtocol = Literal["json", "native"]
_SENTINEL = "zqxprobe"


def load_chat_template(value: str | None) -> str | None:
    """A ``-M chat_template=`` value: a path to a template file, or the template itself."""
    if value is None:
        return None
    text = str(value)
    if "{" not in text and len(text) < 4096:
        path = Path(text).expanduser()
        if path.is_file():
            return path.read_text()
        raise HFLoraError(
            f"hf-lora: -M chat_template={text!r} is neither a Jinja template nor an existing "
            "file; pass the template text or the path of a .jinja file."
        )
    return text


def _text_of(message: ChatMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    parts = []
    for item in message.content:
        kind = getattr(item, "type", "")
        if kind == "text":
            parts.append(item.text)  # type: ignore[union-attr]
        elif kind == "reasoning":
            continue
        else:
            raise HFLoraError(
                f"hf-lora serves text-only chat; a {message.role} message has {kind!r} content."
            )
    return "\n".join(parts)


class ChatRenderer:
    """Turns Inspect messages into the prompt string of one model's chat template.

    Args:
        tokenizer: the base model's tokenizer.
        chat_template: override template (default: the tokenizer's own).
        family: the base model's ``model_type`` (chooses the native tool-call format).

    Raises:
        HFLoraError: neither the tokenizer nor the override has a chat template.
    """

    def __init__(self, tokenizer: Any, chat_template: str | None, family: str) -> None:
        self.tokenizer = tokenizer
        self.template: str | None = chat_template or getattr(tokenizer, "chat_template", None)
        if not self.template:
            raise HFLoraError(
                "hf-lora: the tokenizer has no chat template; pass -M chat_template=<template "
                "or path to a .jinja file>."
            )
        self.family = family
        self.supports_system = self._probe(
            [{"role": "system", "content": _SENTINEL}, {"role": "user", "content": "hi"}]
        )
        self.supports_tool = self._probe(
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "ok"},
                {"role": "tool", "content": _SENTINEL, "tool_call_id": "call_0",
                 "name": "probe"},
            ]
        )

    def _probe(self, messages: list[dict[str, Any]]) -> bool:
        try:
            out = self._apply(messages, None)
        except Exception:
            return False
        return _SENTINEL in out

    def _apply(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        out = self.tokenizer.apply_chat_template(
            messages,
            chat_template=self.template,
            tools=tools,
            tokenize=False,
            add_generation_prompt=True,
        )
        return str(out)

    def to_dicts(
        self,
        messages: list[ChatMessage],
        tools: list[ToolInfo],
        protocol: ToolProtocol = "json",
    ) -> list[dict[str, Any]]:
        """Convert messages to template dicts, adapting roles the template lacks."""
        system_parts = [_text_of(m) for m in messages if isinstance(m, ChatMessageSystem)]
        if tools and protocol == "json":
            system_parts.append(tool_protocol.render_tool_instructions(tools))
        system = "\n\n".join(p for p in system_parts if p)
        out: list[dict[str, Any]] = []
        for m in messages:
            if isinstance(m, ChatMessageSystem):
                continue
            if isinstance(m, ChatMessageUser):
                out.append({"role": "user", "content": _text_of(m)})
            elif isinstance(m, ChatMessageAssistant):
                out.append(self._assistant(m, protocol))
            elif isinstance(m, ChatMessageTool):
                out.append(self._tool(m))
        if system:
            if self.supports_system:
                out.insert(0, {"role": "system", "content": system})
            elif out and out[0]["role"] == "user":
                out[0] = {"role": "user", "content": f"{system}\n\n{out[0]['content']}"}
            else:
                out.insert(0, {"role": "user", "content": system})
        if not self.supports_tool:
            out = _merge_users(out)
        return out

    def _assistant(self, m: ChatMessageAssistant, protocol: ToolProtocol) -> dict[str, Any]:
        raw = (m.metadata or {}).get(RAW_COMPLETION_KEY)
        text = _text_of(m)
        if protocol == "native":
            msg: dict[str, Any] = {"role": "assistant", "content": text}
            if m.tool_calls:
                msg["tool_calls"] = tool_protocol.tool_calls_to_openai(m.tool_calls)
            return msg
        if isinstance(raw, str):
            return {"role": "assistant", "content": raw}
        if m.tool_calls:
            calls = tool_protocol.render_tool_calls(m.tool_calls)
            text = f"{text}\n\n{calls}" if text.strip() else calls
        return {"role": "assistant", "content": text}

    def _tool(self, m: ChatMessageTool) -> dict[str, Any]:
        text = _text_of(m)
        if m.error is not None:
            text = f"Error: {m.error.message}" + (f"\n{text}" if text.strip() else "")
        name = m.function or "tool"
        if self.supports_tool:
            return {"role": "tool", "content": text, "tool_call_id": m.tool_call_id or "",
                    "name": name}
        return {"role": "user", "content": f"[TOOL OUTPUT: {name}]\n{text}"}

    def render(
        self,
        messages: list[ChatMessage],
        tools: list[ToolInfo],
        protocol: ToolProtocol = "json",
    ) -> str:
        """The prompt string (ending with the assistant generation prompt).

        Raises:
            HFLoraError: the template refused the conversation.
        """
        dicts = self.to_dicts(messages, tools, protocol)
        native_tools = tool_protocol.to_openai_tools(tools) if tools and protocol == "native" \
            else None
        try:
            return self._apply(dicts, native_tools)
        except Exception as err:
            raise HFLoraError(
                f"hf-lora: the chat template could not render this conversation "
                f"({type(err).__name__}: {err}). Roles sent: "
                f"{[d['role'] for d in dicts]}."
            ) from err


def _merge_users(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = []
    for m in messages:
        if merged and m["role"] == "user" and merged[-1]["role"] == "user":
            merged[-1] = {"role": "user",
                          "content": f"{merged[-1]['content']}\n\n{m['content']}"}
        else:
            merged.append(dict(m))
    return merged
