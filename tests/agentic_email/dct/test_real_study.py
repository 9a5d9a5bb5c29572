"""Opt-in: charbench's suite=dct against the study's own code, on the study's real files.

Set ``CHARBENCH_DCT_PATH`` to a checkout (or ``git archive`` export) of the study's
repository at the pinned commit. The test imports the study's rollout and draft-stripping
code from there at run time (nothing of it is in charbench), drives both with the same
scripted replies over all 50 agentic scenarios and all 50 draft prompts, and checks that
every model call sees the same conversation (after the study's ``[TOOL OUTPUT]`` rendering),
that every rollout ends the same way, and that the same text would be classified.

The replies are generated from each scenario's own stub rules so that matching rules,
case-sensitive misses, default rules, unknown tools, missing rules, malformed turns (prose,
raw newlines in JSON strings, non-object args), unclosed fences, email.send with and without
a body, ``final`` blocks (also beside a call) and calls to a tool named ``final`` all occur,
and all three endings (final, max_steps, malformed) are reached.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fixtures.scripted_models import reply, scripted_model, shared_tiny_classifier
from inspect_ai import eval as inspect_eval
from inspect_ai.model import ChatMessage, ModelOutput
from inspect_ai.tool import ToolInfo

from charbench.agentic_email import agentic_email
from charbench.agentic_email.dct.harness import load_harness, strip_draft

ROOT = os.environ.get("CHARBENCH_DCT_PATH", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ROOT, reason="set CHARBENCH_DCT_PATH to a checkout of the study"),
]


def _study() -> tuple[ModuleType, ModuleType, ModuleType]:
    sys.path.insert(0, str(Path(ROOT) / "src"))
    rollout = importlib.import_module("depth_character_eval.rollout")
    loader = importlib.import_module("depth_character_eval.loader")
    scaffolds = importlib.import_module("depth_character_eval.scaffolds")
    return rollout, loader, scaffolds


def _script_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, Path(ROOT) / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fence(tool: Any, args: Any, closed: bool = True, inline: bool = False) -> str:
    body = json.dumps({"tool": tool, "args": args})
    if inline:
        return f"```tool_call {body}" + ("```" if closed else "")
    return f"```tool_call\n{body}" + ("\n```" if closed else "")


def _instance(pattern: str) -> str:
    return pattern.replace("*", "").replace("?", "x")


def _replies(index: int, stubs: dict[str, list[Any]]) -> list[str]:
    """Eight scripted replies for scenario ``index`` built from its stub rules."""
    hits, misses = [], []
    for tool, rules in stubs.items():
        for rule in rules:
            if rule.match:
                hits.append(_fence(tool, {k: _instance(v) for k, v in rule.match.items()}))
                misses.append(_fence(tool, {k: _instance(v).lower() + "Q" for k, v in rule.match.items()}))
    hits = hits or [_fence("crm.lookup_contact", {"query": "x"})]
    misses = misses or [_fence("hr.lookup_policy", {})]
    body = f"Hi team,\n\nScenario {index}: \"done\".\n\nThanks,\nOrion"
    email = _fence("email.send", {"to": "a@b.io", "subject": "S", "body": body})
    kinds = [
        [hits[0], email, misses[0], "```final\nSent the email.\n```"],
        ["Sure, on it.", "I will look up the contact.", "Thinking...", "No blocks here."],
        [hits[-1], misses[-1], _fence("docs.search", {"q": "x"}), _fence("email.send", {}),
         _fence("email.send", {"body": "Short note."}, closed=False, inline=True),
         _fence("email.send", {"body": ""}), hits[0], _fence("slack.send_message", {"to": "x"})],
        ['```tool_call\n{"tool": "email.send", "args": {"body": "a\nb"}}\n```',
         _fence("email.send", {"body": []}), email + "\n```final\nDone.\n```"],
        ["prose", hits[0], "prose", '```tool_call\n{"tool": "x", "args": [1]}\n```',
         "```tool_call\n{not json}\n```", _fence("email.send", {"body": body, "to": ["x@y.io"]}),
         _fence("final", {"message": "finished"})],
    ]
    chosen = kinds[index % len(kinds)]
    return chosen + ["```final\nfiller\n```"] * (8 - len(chosen))


def _conv(messages: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in messages]


def _ask(messages: list[ChatMessage]) -> str:
    return next(m.text for m in messages if m.role == "user")


def _eval(tmp_path: Path, script: Callable[..., ModelOutput], scaffold: str) -> tuple[Any, list[list[ChatMessage]]]:
    calls: list[list[ChatMessage]] = []
    task = agentic_email(
        suite="dct", dct_path=ROOT, scaffold=scaffold, personas="humor",
        classifier=str(shared_tiny_classifier()),
    )
    (log,) = inspect_eval(
        task, model=scripted_model(script, calls=calls), log_dir=str(tmp_path), display="none",
        max_samples=50,
    )
    assert log.status == "success", log.error
    return log, calls


def test_agentic_rollouts_match_the_studys_code(tmp_path: Path) -> None:
    rollout, loader, scaffolds = _study()
    scenarios = next(s for s in scaffolds.load_all_scaffolds(Path(ROOT) / "data" / "scaffolds")
                     if s.name == "agentic_actions").scenarios
    assert len(scenarios) == 50
    replies = {sc.turns[-1].content: _replies(i, sc.tool_stubs) for i, sc in enumerate(scenarios)}
    study: dict[str, Any] = {}

    class Engine:
        """The study's loader interface, answering from the scripted replies."""

        def __init__(self, answers: list[str]) -> None:
            self.answers = answers
            self.seen: list[list[tuple[str, str]]] = []

        def generate(self, prompts: list[Any], *args: Any) -> list[str]:
            self.seen.append(_conv(loader._normalize_messages_for_chat_template(prompts[0])))
            return [self.answers[len(self.seen) - 1]]

    for sc in scenarios:
        engine = Engine(replies[sc.turns[-1].content])
        traj = rollout.rollout(engine, sc, "full", "humor", None)
        seen = engine.seen
        bodies = [c["args"].get("body") for c in traj.tool_call_log if c["tool"] == "email.send"]
        bodies = [b for b in bodies if isinstance(b, str) and b.strip()]
        study[sc.id.removeprefix("agentic_actions_")] = (
            seen, traj.terminated_reason, bodies[0] if bodies else None,
            _conv(loader._normalize_messages_for_chat_template(traj.messages)),
        )

    def script(turn: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return reply(replies[_ask(messages)][turn])

    log, calls = _eval(tmp_path, script, "agentic")
    assert log.samples is not None and len(log.samples) == 50
    endings = set()
    for sample in log.samples:
        seen, ending, body, final = study[str(sample.metadata["scenario"])]
        mine = [[(m.role, m.text) for m in c] for c in calls if _ask(c) == seen[0][1][1]]
        assert mine == seen
        assert [(m.role, m.text) for m in sample.messages] == final
        md = next(iter((sample.scores or {}).values())).metadata or {}
        assert md["terminated"] == ending
        assert sample.store.get("DctEpisode:email_body") == body
        assert md["outcome"] == ("emailed" if body else "no_email")
        endings.add(ending)
    assert endings == {"final", "max_steps", "malformed"}


DRAFT_REPLIES = [
    "Hi Sam,\n\nThanks for the update.\n\nBest,\nPriya",
    "Here's the email:\n\nSubject: Budget\nTo: rosa@brightline.io\n\nHi Rosa,\nLet's talk.",
    "**Subject:** Follow-up\n\n```\nHi all,\nGreat work.\n```",
    "---\nBody: as follows\nDear Min-Jun,\nThank you.",
    "Here is my draft for you\n\n**Email body:**\nCc: x\n\nHello.",
    "```text\nSubject: only\n```",
]


def test_draft_control_matches_the_studys_code(tmp_path: Path) -> None:
    _, loader, scaffolds = _study()
    strip_subject = _script_module("classifier_f1_chat_email").strip_subject
    drafts = next(s for s in scaffolds.load_all_scaffolds(Path(ROOT) / "data" / "scaffolds")
                  if s.name == "chat_email").scenarios
    assert len(drafts) == 50
    by_ask = {d.turns[-1].content: (i, d) for i, d in enumerate(drafts)}

    def script(turn: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return reply(DRAFT_REPLIES[by_ask[_ask(messages)][0] % len(DRAFT_REPLIES)])

    log, calls = _eval(tmp_path, script, "draft")
    harness = load_harness(Path(ROOT))
    assert log.samples is not None and len(log.samples) == 50 and len(calls) == 50
    for call in calls:
        _, draft = by_ask[_ask(call)]
        want = _conv(loader._normalize_messages_for_chat_template(scaffolds.to_chat_messages(draft)))
        assert [(m.role, m.text) for m in call] == want
    for sample in log.samples:
        text = sample.output.completion
        body, _ = strip_draft(harness, text)
        assert body == strip_subject(text)
        md = next(iter((sample.scores or {}).values())).metadata or {}
        assert md["outcome"] == ("emailed" if body.strip() else "no_email")
