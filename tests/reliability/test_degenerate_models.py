"""Degenerate models: every sample ends within its limits with the right outcome, no crash.

- never stops: a real tiny ``hf-lora`` model that cannot emit EOS (``suppress_tokens``) is
  cut at ``max_tokens`` on every turn;
- 20k tokens: a mock reply (and an email body) of 20,000 words is classified (truncated by
  the classifier) without error;
- only whitespace: chat ``empty``, agentic ``no_email``, draft ``no_email``;
- the same tool call forever: ``turn_limit`` after ``max_turns`` turns;
- malformed tool calls forever: ``malformed`` after ``max_malformed`` turns;
- wrong language: replies and emails in other scripts are classified like any text;
- an Inspect message limit stops a rollout mid-way: ``turn_limit``, flagged ``interrupted``.

Each scenario's log also goes through ``charbench report``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fixtures.scripted_models import call, reply, scripted_model, tool_call, turn
from inspect_ai import eval
from inspect_ai.log import EvalLog, EvalSample
from inspect_ai.model import ChatMessage, ModelOutput
from inspect_ai.tool import ToolInfo
from reliab_support import recipient_of

from charbench.agentic_email import agentic_email
from charbench.chat_persona import chat_persona
from charbench.report import build_report

PERSONAS = ["sarcasm", "humor"]
SCENARIOS = ["budget_overreach_v1", "recognition_v3"]
HUGE = " ".join(["meeting"] * 20_000)
FOREIGN = [
    "尊敬的同事，感谢您的更新。我们下周讨论预算。",
    "زملائي الأعزاء، شكرا لكم على التحديث. سنناقش الميزانية الأسبوع المقبل.",
    "Дорогие коллеги, спасибо за обновление. Обсудим бюджет на следующей неделе.",
]


def _score_md(s: EvalSample) -> dict[str, Any]:
    score = next(iter((s.scores or {}).values()))
    return dict(score.metadata or {})


def _check(log: EvalLog, n: int, log_dir: Path) -> list[dict[str, Any]]:
    assert log.status == "success", log.error
    samples = log.samples or []
    assert len(samples) == n and all(s.error is None for s in samples)
    report = build_report(log_dir, n_boot=20, write=False)
    assert int(report.summary["n_errors"].sum()) == 0
    return [_score_md(s) for s in samples]


def _agentic(script: Any, clf: Path, tmp_path: Path, **kw: Any) -> list[dict[str, Any]]:
    task = agentic_email(personas=PERSONAS, scenarios=SCENARIOS, classifier=str(clf), **kw)
    [log] = eval(task, model=scripted_model(script), log_dir=str(tmp_path), display="none")
    return _check(log, len(PERSONAS) * len(SCENARIOS), tmp_path)


def _chat(script: Any, clf: Path, tmp_path: Path) -> list[dict[str, Any]]:
    task = chat_persona(personas=PERSONAS, prompts="builtin", n=3, classifier=str(clf))
    [log] = eval(task, model=scripted_model(script), log_dir=str(tmp_path), display="none")
    return _check(log, len(PERSONAS) * 3, tmp_path)


Script = Any


def _const(output: ModelOutput) -> Script:
    def script(t: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return output.model_copy(deep=True)

    return script


# ------------------------------------------------------------------------------ mocks


def test_twenty_thousand_tokens(tiny_clf: Path, tmp_path: Path) -> None:
    mds = _chat(_const(reply(HUGE)), tiny_clf, tmp_path / "chat")
    assert all(m["outcome"] == "replied" and m["pred"] is not None for m in mds)

    def send_huge(t: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return tool_call("send_email", {"to": recipient_of(messages), "subject": "x",
                                        "body": HUGE})

    mds = _agentic(send_huge, tiny_clf, tmp_path / "agentic")
    assert all(m["outcome"] == "emailed" and m["pred"] is not None for m in mds)


def test_only_whitespace(tiny_clf: Path, tmp_path: Path) -> None:
    blank = reply(" \n\t  \n ")
    mds = _chat(_const(blank), tiny_clf, tmp_path / "chat")
    assert all(m["outcome"] == "empty" and m["pred"] is None for m in mds)
    mds = _agentic(_const(blank), tiny_clf, tmp_path / "agentic")
    assert all(m["outcome"] == "no_email" and m["turns"] == 1 for m in mds)
    mds = _agentic(_const(blank), tiny_clf, tmp_path / "draft", scaffold="draft")
    assert all(m["outcome"] == "no_email" and m["pred"] is None for m in mds)


def test_same_tool_call_forever(tiny_clf: Path, tmp_path: Path) -> None:
    def script(t: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return tool_call("lookup_contact", {"name_or_email": recipient_of(messages)})

    mds = _agentic(script, tiny_clf, tmp_path, max_turns=5)
    assert all(m["outcome"] == "turn_limit" and m["turns"] == 5 for m in mds)
    assert all(m["tool_calls"] == 5 and m["pred"] is None for m in mds)


def test_malformed_tool_calls_forever(tiny_clf: Path, tmp_path: Path) -> None:
    def script(t: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        bad = call("send_email", {}, parse_error="Invalid JSON in tool call")
        return turn('```json\n{"name": "send_email", "arguments": {"body": "Hi\n', [bad])

    mds = _agentic(script, tiny_clf, tmp_path, max_malformed=3)
    assert all(m["outcome"] == "malformed" and m["turns"] == 3 for m in mds)


def test_wrong_language(tiny_clf: Path, tmp_path: Path) -> None:
    def chat(t: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return reply(FOREIGN[len(messages[-1].text) % len(FOREIGN)])

    mds = _chat(chat, tiny_clf, tmp_path / "chat")
    assert all(m["outcome"] == "replied" and m["pred"] is not None for m in mds)

    def agent(t: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        if t == 0:  # a status line in another language, then the email in another
            return turn(FOREIGN[0], [call("lookup_contact",
                                          {"name_or_email": recipient_of(messages)})])
        return tool_call("send_email", {"to": recipient_of(messages), "subject": "预算",
                                        "body": FOREIGN[t % len(FOREIGN)]})

    mds = _agentic(agent, tiny_clf, tmp_path / "agentic")
    assert all(m["outcome"] == "emailed" and m["pred"] is not None for m in mds)


def test_inspect_limit_mid_rollout(tiny_clf: Path, tmp_path: Path) -> None:
    def script(t: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return tool_call("lookup_contact", {"name_or_email": recipient_of(messages)})

    task = agentic_email(personas=PERSONAS, scenarios=SCENARIOS, classifier=str(tiny_clf))
    [log] = eval(task, model=scripted_model(script), log_dir=str(tmp_path), display="none",
                 message_limit=6)
    mds = _check(log, len(PERSONAS) * len(SCENARIOS), tmp_path)
    assert all(m["outcome"] == "turn_limit" and m["interrupted"] for m in mds)
    assert all(m["turns"] < 8 for m in mds)


# ------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def endless_llama(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny llama with its EOS token suppressed: it can never stop on its own."""
    out = tmp_path_factory.mktemp("endless") / "llama"
    shutil.copytree(tiny_llama, out)
    gen = json.loads((out / "generation_config.json").read_text())
    eos = gen["eos_token_id"]
    gen["suppress_tokens"] = eos if isinstance(eos, list) else [eos]
    (out / "generation_config.json").write_text(json.dumps(gen))
    return out


@pytest.mark.slow
def test_model_that_never_stops_is_cut_at_max_tokens(
    endless_llama: Path, persona_repo: Path, tiny_clf: Path, tmp_path: Path
) -> None:
    max_tokens = 40
    common = {"model": f"hf-lora/{endless_llama}", "display": "none",
              "model_args": {"adapter": f"{persona_repo}/{{persona}}", "device": "cpu"},
              "max_tokens": max_tokens, "temperature": 0.0}
    [chat] = eval("charbench/chat_persona", log_dir=str(tmp_path / "chat"),
                  task_args={"personas": PERSONAS, "prompts": "builtin", "n": 2,
                             "classifier": str(tiny_clf)}, **common)
    [agent] = eval("charbench/agentic_email", log_dir=str(tmp_path / "agentic"),
                   task_args={"personas": PERSONAS, "scenarios": SCENARIOS, "max_turns": 3,
                              "classifier": str(tiny_clf)}, **common)
    for log, n in ((chat, 4), (agent, 4)):
        _check(log, n, tmp_path / ("chat" if log is chat else "agentic"))
        for s in log.samples or []:
            calls = [e.call for e in s.events if e.event == "model"]
            assert calls and all(c is not None for c in calls)
            for c in calls:
                assert c.response["output_tokens"] == max_tokens  # type: ignore[union-attr]
                assert c.response["stop_reason"] == "max_tokens"  # type: ignore[union-attr]
    assert all(_score_md(s)["outcome"] == "replied" for s in chat.samples or [])
    # a random model's text is no tool call: the rollout ends on the first turn
    assert all(_score_md(s)["outcome"] in ("no_email", "malformed", "turn_limit")
               for s in agent.samples or [])
