"""hf-lora renders a suite=dct conversation exactly as the study's harness did.

The study passed its message dicts (tool results already turned into ``[TOOL OUTPUT]``
user turns) to the tokenizer's chat template. With no tools offered, hf-lora's renderer
must give the same prompt string: no merged turns, no rewritten assistant text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fixtures.tiny_models import build_tokenizer
from inspect_ai.model import ChatMessage, ChatMessageAssistant, ChatMessageUser

from charbench.agentic_email.dct.formats import load_agentic_scenarios
from charbench.agentic_email.dct.suite import opening_messages
from charbench.provider.chat import ChatRenderer

REPLIES = ['```tool_call\n{"tool": "email.send", "args": {}}\n```', "  prose with spaces  \n"]


def _conversation(study_root: Path) -> tuple[list[ChatMessage], list[dict[str, Any]]]:
    scenario = load_agentic_scenarios(study_root)[1]  # opening: system, user, assistant, tool
    messages = opening_messages(scenario.turns)
    study = [
        {"role": "user", "content": "[TOOL OUTPUT]\n" + t.content}
        if t.role == "tool" else {"role": t.role, "content": t.content}
        for t in scenario.turns
    ]
    for text in REPLIES:
        messages += [
            ChatMessageAssistant(content=text),
            ChatMessageUser(content='[TOOL OUTPUT]\n{"ok": 1}'),
        ]
        study += [
            {"role": "assistant", "content": text},
            {"role": "user", "content": '[TOOL OUTPUT]\n{"ok": 1}'},
        ]
    return messages, study


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma3"])
def test_rendered_prompt_equals_the_studys(family: str, study_root: Path) -> None:
    tokenizer = build_tokenizer(family)
    renderer = ChatRenderer(tokenizer, None, family)
    messages, study = _conversation(study_root)
    if not renderer.supports_system:
        # a template without a system role (this one raises on it): the system text goes
        # first in the first user turn, as Gemma 3's own template does with a system turn
        first_user = next(i for i, m in enumerate(study) if m["role"] == "user")
        study[first_user] = {
            "role": "user", "content": f"{study[0]['content']}\n\n{study[first_user]['content']}"
        }
        study = study[1:]
    want = tokenizer.apply_chat_template(study, tokenize=False, add_generation_prompt=True)
    assert renderer.render(messages, []) == want
