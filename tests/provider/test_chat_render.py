"""Chat rendering: role probing, system folding, tool turns, nested tool calls, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.tiny_models import build_tokenizer
from inspect_ai.model import (
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageTool,
    ChatMessageUser,
)
from inspect_ai.tool import ToolCall, ToolInfo, ToolParam, ToolParams

from charbench.provider.chat import ChatRenderer, load_chat_template
from charbench.provider.errors import HFLoraError

TOOLS = [
    ToolInfo(
        name="lookup_contact",
        description="Find a colleague's email address.",
        parameters=ToolParams(properties={"name": ToolParam(type="string")}, required=["name"]),
    )
]


def _conversation() -> list:
    call = ToolCall(id="call_1", function="lookup_contact", arguments={"name": "Dana"})
    return [
        ChatMessageSystem(content="You are an operations agent."),
        ChatMessageUser(content="Email Dana."),
        ChatMessageAssistant(content="Looking her up.", tool_calls=[call]),
        ChatMessageTool(content="dana@corp.example", tool_call_id="call_1",
                        function="lookup_contact"),
    ]


def test_gemma_folds_system_and_marks_tool_output() -> None:
    r = ChatRenderer(build_tokenizer("gemma3"), None, "gemma3")
    assert not r.supports_system and not r.supports_tool
    text = r.render(_conversation(), TOOLS)
    assert text.count("<bos>") == 1
    first_user = text.split("<start_of_turn>user\n", 1)[1]
    assert first_user.startswith("You are an operations agent.")
    assert "# Tools" in first_user.split("<end_of_turn>")[0]  # json protocol instructions
    assert first_user.split("<end_of_turn>")[0].rstrip().endswith("Email Dana.")
    assert "[TOOL OUTPUT: lookup_contact]\ndana@corp.example" in text
    # the assistant's call is shown in the protocol's own format
    assert '"name": "lookup_contact"' in text
    assert text.endswith("<start_of_turn>model\n")


def test_llama_keeps_system_and_tool_roles() -> None:
    r = ChatRenderer(build_tokenizer("llama"), None, "llama")
    assert r.supports_system and r.supports_tool
    text = r.render(_conversation(), TOOLS)
    assert "<|start_header_id|>system<|end_header_id|>\n\nYou are an operations agent." in text
    assert "<|start_header_id|>ipython<|end_header_id|>\n\ndana@corp.example" in text
    assert "[TOOL OUTPUT" not in text


def test_raw_completion_is_replayed_verbatim() -> None:
    r = ChatRenderer(build_tokenizer("qwen2"), None, "qwen2")
    raw = 'Sure!\n```json\n{"name": "lookup_contact", "args": {"name": "Dana"}}\n```'
    msgs = _conversation()
    msgs[2] = ChatMessageAssistant(
        content="Sure!",
        tool_calls=[ToolCall(id="c", function="lookup_contact", arguments={"name": "Dana"})],
        metadata={"hf_lora_completion": raw},
    )
    assert raw in r.render(msgs, TOOLS)


def test_native_protocol_uses_nested_tool_calls() -> None:
    r = ChatRenderer(build_tokenizer("qwen2"), None, "qwen2")
    text = r.render(_conversation(), TOOLS, "native")
    assert "<tools>" in text and '"name": "lookup_contact"' in text
    assert '<tool_call>\n{"name": "lookup_contact", "arguments": {"name": "Dana"}}' in text
    assert "<tool_response>\ndana@corp.example" in text
    assert "# Tools\n\nYou can use" not in text  # no json-protocol instructions


def test_tool_error_is_shown_to_the_model() -> None:
    from inspect_ai.tool import ToolCallError

    r = ChatRenderer(build_tokenizer("gemma3"), None, "gemma3")
    msgs = _conversation()
    msgs[3] = ChatMessageTool(content="", tool_call_id="call_1", function="lookup_contact",
                              error=ToolCallError("parsing", "Unknown tool 'lookup'."))
    assert "[TOOL OUTPUT: lookup_contact]\nError: Unknown tool 'lookup'." in r.render(msgs, TOOLS)


def test_chat_template_override(tmp_path: Path) -> None:
    tpl = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}[assistant]"
    f = tmp_path / "t.jinja"
    f.write_text(tpl)
    assert load_chat_template(str(f)) == tpl
    assert load_chat_template(tpl) == tpl
    with pytest.raises(HFLoraError, match="neither a Jinja template nor an existing file"):
        load_chat_template(str(tmp_path / "missing.jinja"))
    r = ChatRenderer(build_tokenizer("llama"), tpl, "llama")
    assert r.render([ChatMessageUser(content="hi")], []) == "[user]hi[assistant]"


def test_no_template_is_a_clear_error() -> None:
    tok = build_tokenizer("llama")
    tok.chat_template = None
    with pytest.raises(HFLoraError, match="-M chat_template="):
        ChatRenderer(tok, None, "llama")


@pytest.mark.slow
def test_inspect_cli_finds_hf_lora(tmp_path: Path, llama_dir: Path,
                                   llama_adapters: dict[str, Path]) -> None:
    task = tmp_path / "tiny_task.py"
    task.write_text(
        "from inspect_ai import Task, task\n"
        "from inspect_ai.dataset import Sample\n"
        "from inspect_ai.solver import generate\n\n"
        "@task\n"
        "def tiny():\n"
        "    return Task(dataset=[Sample(input='Hello!', target='x'),\n"
        "                         Sample(input='Write an email.', target='y')],\n"
        "                solver=generate())\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INSPECT_LOG_DIR": str(tmp_path / "logs")}
    cmd = [
        sys.executable, "-m", "inspect_ai", "eval", "tiny_task.py",
        "--model", f"hf-lora/{llama_dir}", "-M", f"adapter={llama_adapters['a']}",
        "--max-tokens", "5", "--temperature", "0", "--display", "none",
        "--log-format", "json",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    logs = list((tmp_path / "logs").glob("*.json"))
    assert logs, proc.stdout
    log = json.loads(logs[0].read_text())
    assert log["status"] == "success", log.get("error")
    sample = log["samples"][0]
    assert sample["output"]["model"] == f"{llama_dir}+{llama_adapters['a']}"
    usage = sample["output"]["usage"]
    assert usage["input_tokens"] > 5 and 1 <= usage["output_tokens"] <= 5
    events = [e for e in sample["events"] if e["event"] == "model"]
    assert events
    prompt = events[0]["call"]["request"]["prompt"]
    if prompt.startswith("attachment://"):
        prompt = sample["attachments"][prompt.removeprefix("attachment://")]
    assert prompt.count("<|begin_of_text|>") == 1 and "Hello!" in prompt
