"""Support for the reliability suite: a deterministic, countable test model provider.

``reliab/<name>`` is an Inspect model API registered by importing this module (also from a
subprocess: put ``tests/reliability`` on ``PYTHONPATH`` and ``import reliab_support``).

- Its reply is a deterministic function of the model name and the conversation, so two runs
  of the same eval produce the same outputs (and, with a deterministic classifier, the same
  scores and metrics) however the samples are scheduled.
- ``-M calls_file=PATH`` appends one JSON line per ``generate`` call (model name, sample id,
  epoch), so a test can tell which samples were generated in which run.
- ``-M sleep=SECONDS`` (default 0) makes each call take that long, so a test can kill an eval
  in the middle.
- Offered the ``agentic_email`` tools, it acts as a well-behaved agent: it looks the
  scenario's recipient up, then sends them an email whose body is its deterministic reply.

A name containing ``{persona}`` (``reliab/{persona}``) is a persona template: charbench's
routing substitutes the persona, so each persona is its own model, as with real adapters.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageUser,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.tool import ToolCall, ToolChoice, ToolInfo

REPO = Path(__file__).resolve().parents[2]
"""The repository root (where ``tasks/`` lives)."""

WORDS = (
    "oh", "wonderful", "another", "budget", "meeting", "dear", "sorry", "let", "x", "be",
    "the", "sum", "moon", "river", "whatever", "quick", "brilliant", "idea", "team", "plan",
)


def recipient_of(messages: list[ChatMessage]) -> str:
    """The recipient of the ``agentic_email`` scenario whose request opens ``messages``."""
    from charbench.agentic_email.scenarios import load_scenarios

    request = next(m.text for m in messages if isinstance(m, ChatMessageUser)).strip()
    for scenario in load_scenarios():
        if scenario.request.strip() == request:
            return scenario.recipient
    raise ValueError("reliab: no agentic_email scenario has this request")


def reply_text(model_name: str, messages: list[ChatMessage]) -> str:
    """The deterministic reply of ``model_name`` to ``messages`` (12 words)."""
    blob = model_name + "\x00" + "\x00".join(m.text for m in messages)
    digest = hashlib.sha256(blob.encode()).digest()
    return " ".join(WORDS[b % len(WORDS)] for b in digest[:12])


class ReliabAPI(ModelAPI):
    """Deterministic test model; see the module docs for its ``-M`` args."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 (Inspect's signature)
        **model_args: Any,
    ) -> None:
        super().__init__(model_name=model_name, base_url=base_url, api_key=api_key,
                         api_key_vars=[], config=config)
        unknown = set(model_args) - {"calls_file", "sleep"}
        if unknown:
            raise ValueError(f"reliab: unknown model args {sorted(unknown)}")
        self.calls_file = model_args.get("calls_file")
        self.sleep = float(model_args.get("sleep", 0.0))

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        from inspect_ai.log._samples import sample_active

        if self.sleep:
            await anyio.sleep(self.sleep)
        text = reply_text(self.model_name, input)
        if self.calls_file:
            active = sample_active()
            record = {
                "model": self.model_name,
                "sample": None if active is None else str(active.sample.id),
                "epoch": None if active is None else active.epoch,
                "pid": os.getpid(),
                "t": time.time(),
            }
            with open(self.calls_file, "a") as f:
                f.write(json.dumps(record) + "\n")
        calls: list[ToolCall] = []
        if any(t.name == "send_email" for t in tools):
            to = recipient_of(input)
            n = sum(isinstance(m, ChatMessageAssistant) for m in input)
            calls = [
                ToolCall(id=f"call_{n}", function="lookup_contact",
                         arguments={"name_or_email": to})
                if n == 0
                else ToolCall(id=f"call_{n}", function="send_email",
                              arguments={"to": to, "subject": "Update", "body": text})
            ]
        message = ChatMessageAssistant(content="" if calls else text, model=self.model_name,
                                       source="generate", tool_calls=calls or None)
        return ModelOutput(
            model=self.model_name,
            choices=[ChatCompletionChoice(message=message,
                                          stop_reason="tool_calls" if calls else "stop")],
            usage=ModelUsage(input_tokens=10, output_tokens=12, total_tokens=22),
        )

    async def count_text_tokens(self, text: str) -> int:
        """Whitespace token count (no tiktoken download)."""
        return len(text.split())


@modelapi(name="reliab")
def reliab() -> type[ModelAPI]:
    """Register ``reliab/<name>``."""
    return ReliabAPI


def read_calls(path: Path) -> list[dict[str, Any]]:
    """The records of a ``calls_file`` (empty when it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child Python that can import this module and the test fixtures."""
    env = dict(os.environ)
    paths = [str(REPO / "tests" / "reliability"), str(REPO / "tests")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("INSPECT_LOG_LEVEL", "warning")
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env.update(extra)
    return env


PYTHON = sys.executable
