"""Scripted rollouts of the agent loop on ``mockllm/model``: every outcome and its bookkeeping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fixtures.scripted_models import (
    call,
    reply,
    scripted_model,
    shared_tiny_classifier,
    tool_call,
    tool_results,
    turn,
)
from inspect_ai import eval as inspect_eval
from inspect_ai.log import EvalLog, EvalSample
from inspect_ai.model import ChatMessage, ChatMessageTool, ChatMessageUser, ModelOutput
from inspect_ai.tool import ToolFunction, ToolInfo

from charbench.agentic_email.extract import extract_body
from charbench.agentic_email.loop import email_agent
from charbench.agentic_email.scenarios import Scenario, load_scenarios
from charbench.agentic_email.task import agentic_email
from charbench.scoring import get_classifier, macro_f1

SCENARIOS = load_scenarios()
FIRST: Scenario = SCENARIOS[0]
SECOND: Scenario = next(s for s in SCENARIOS if s.family != FIRST.family)
BODY = "Subject: Next steps\n\nDear colleague,\n\nThank you for the update. Here is the plan.\n\nBest"


@pytest.fixture(scope="module")
def tiny_classifier() -> Path:
    return shared_tiny_classifier()


def _scenario_of(messages: list[ChatMessage]) -> Scenario:
    request = next(m.text for m in messages if isinstance(m, ChatMessageUser))
    return next(s for s in SCENARIOS if s.request.strip() == request)


def _send(scenario: Scenario, body: str = BODY, content: str = "") -> ModelOutput:
    return tool_call(
        "send_email",
        {"to": scenario.recipient, "subject": "Next steps", "body": body},
        content=content,
    )


def _run(
    script: Any,
    classifier: Path,
    tmp_path: Path,
    personas: str = "humor",
    scenarios: str | None = None,
    **task_args: Any,
) -> EvalLog:
    (log,) = inspect_eval(
        agentic_email(
            personas=personas,
            scenarios=scenarios or FIRST.id,
            classifier=str(classifier),
            **task_args,
        ),
        model=scripted_model(script),
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    assert log.samples
    return log


def _score_md(sample: EvalSample) -> dict[str, Any]:
    assert sample.scores
    score = next(iter(sample.scores.values()))
    assert score.metadata is not None
    return score.metadata


def _metrics(log: EvalLog) -> dict[str, float]:
    assert log.results is not None
    return {k: v.value for k, v in log.results.scores[0].metrics.items()}


def _tools(sample: EvalSample) -> list[ChatMessageTool]:
    return tool_results(sample.messages)


def test_lookups_then_send_is_emailed_and_the_body_is_classified(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    def script(turn_no: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        scenario = _scenario_of(messages)
        lookups = [c for c in scenario.expected_calls if c.tool != "send_email"]
        if turn_no < len(lookups):
            return tool_call(lookups[turn_no].tool, lookups[turn_no].kwargs)
        return _send(scenario)

    log = _run(script, tiny_classifier, tmp_path)
    (sample,) = log.samples or []
    md = _score_md(sample)
    n_lookups = sum(c.tool != "send_email" for c in FIRST.expected_calls)
    assert md["outcome"] == "emailed"
    assert md["turns"] == n_lookups + 1
    assert md["tool_calls"] == n_lookups + 1
    assert md["malformed_turns"] == 0
    assert md["stripped"] == ["Subject: Next steps"]
    assert md["email_to"] == [FIRST.recipient]
    store_email = {k.split(":")[-1]: v for k, v in sample.store.items() if "SentEmail" in k}
    assert store_email["sent"] is True and store_email["body"] == BODY.strip()
    # what was classified is the stored body after extraction, not any message text
    expected = get_classifier(str(tiny_classifier)).classify_batch([extract_body(BODY).text])[0]
    assert md["probs"] == {k: round(v, 4) for k, v in expected.items()}
    assert sample.scores is not None
    assert next(iter(sample.scores.values())).answer == md["pred"]
    # the loop stopped right after the email: no further generate
    assert sample.messages[-1].role == "tool"


def test_never_emails_is_no_email_and_counted_by_itt_and_email_rate(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    def script(turn_no: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        scenario = _scenario_of(messages)
        if scenario.id == SECOND.id:
            return tool_call("lookup_contact", {"name_or_email": scenario.recipient}) if (
                turn_no == 0
            ) else reply("I could not finish this task.")
        return _send(scenario) if turn_no else tool_call(
            "lookup_contact", {"name_or_email": scenario.recipient}
        )

    log = _run(
        script, tiny_classifier, tmp_path, personas="humor,loving",
        scenarios=f"{FIRST.id},{SECOND.id}",
    )
    samples = log.samples or []
    assert len(samples) == 4
    outcome = {s.id: _score_md(s)["outcome"] for s in samples}
    assert outcome == {
        f"humor-{FIRST.id}": "emailed",
        f"loving-{FIRST.id}": "emailed",
        f"humor-{SECOND.id}": "no_email",
        f"loving-{SECOND.id}": "no_email",
    }
    for s in samples:
        md = _score_md(s)
        if md["outcome"] == "no_email":
            assert md["pred"] is None and md["turns"] == 2 and md["email_to"] is None
    metrics = _metrics(log)
    assert metrics["email_rate"] == 0.5
    assert metrics["email_rate_humor"] == 0.5
    assert metrics["n_emailed"] == 2 and metrics["n_total"] == 4
    gold = [_score_md(s)["gold"] for s in samples]
    pred = [_score_md(s)["pred"] for s in samples]
    labels = ["humor", "loving"]
    assert metrics["macro_f1_itt"] == pytest.approx(macro_f1(gold, pred, labels))
    emailed = [i for i, s in enumerate(samples) if _score_md(s)["outcome"] == "emailed"]
    assert metrics["macro_f1"] == pytest.approx(
        macro_f1([gold[i] for i in emailed], [pred[i] for i in emailed], labels)
    )


def test_malformed_turns_end_the_rollout(tiny_classifier: Path, tmp_path: Path) -> None:
    def script(turn_no: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        bad = call("send_email", {}, parse_error="Invalid JSON in tool call at line 1 column 9")
        return turn('```json\n{"name": "send_email", "arguments": {"body": "Hi\n', [bad])

    log = _run(script, tiny_classifier, tmp_path, max_malformed=3)
    (sample,) = log.samples or []
    md = _score_md(sample)
    assert md["outcome"] == "malformed"
    assert md["turns"] == 3 and md["malformed_turns"] == 3 and md["tool_calls"] == 3
    errors = [m.error for m in _tools(sample)]
    assert all(e is not None and e.type == "parsing" for e in errors)
    assert "Invalid JSON" in (errors[0].message if errors[0] else "")
    assert _metrics(log)["malformed_rate"] == 1.0


def test_a_good_turn_resets_the_malformed_count(tiny_classifier: Path, tmp_path: Path) -> None:
    def script(turn_no: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        scenario = _scenario_of(messages)
        if turn_no in (0, 1, 3, 4):
            return turn("", [call("lookup_contact", {}, parse_error="Invalid JSON")])
        if turn_no == 2:
            return tool_call("lookup_contact", {"name_or_email": scenario.recipient})
        return _send(scenario)

    log = _run(script, tiny_classifier, tmp_path, max_malformed=3)
    md = _score_md((log.samples or [])[0])
    assert md["outcome"] == "emailed"
    assert md["malformed_turns"] == 4 and md["turns"] == 6


def test_text_plus_send_email_in_one_turn_sends(tiny_classifier: Path, tmp_path: Path) -> None:
    def script(turn_no: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return _send(_scenario_of(messages), content="Sending it now. Status: email sent.")

    log = _run(script, tiny_classifier, tmp_path)
    md = _score_md((log.samples or [])[0])
    assert md["outcome"] == "emailed" and md["turns"] == 1


def test_every_call_of_a_turn_runs(tiny_classifier: Path, tmp_path: Path) -> None:
    def script(turn_no: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        scenario = _scenario_of(messages)
        send = _send(scenario).message.tool_calls or []
        return turn(
            "Looking up and sending.",
            [*send, call("lookup_policy", {"topic": "expenses"})],
        )

    log = _run(script, tiny_classifier, tmp_path)
    (sample,) = log.samples or []
    md = _score_md(sample)
    assert md["outcome"] == "emailed" and md["tool_calls"] == 2
    results = _tools(sample)
    assert [m.function for m in results] == ["send_email", "lookup_policy"]
    assert all(m.error is None for m in results)


def test_turn_limit(tiny_classifier: Path, tmp_path: Path) -> None:
    def script(turn_no: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return tool_call("search_chat", {"query": f"status {turn_no}"})

    log = _run(script, tiny_classifier, tmp_path, max_turns=3)
    (sample,) = log.samples or []
    md = _score_md(sample)
    assert md["outcome"] == "turn_limit"
    assert md["turns"] == 3 and md["tool_calls"] == 3 and md["pred"] is None
    assert len(_tools(sample)) == 3


def test_tool_errors_go_back_to_the_model_and_the_loop_continues(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    seen: list[str] = []

    def script(turn_no: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        scenario = _scenario_of(messages)
        if turn_no == 0:
            return tool_call("lookup_contact", {})  # missing required argument
        if turn_no == 1:
            seen.append(tool_results(messages)[-1].error.message)  # type: ignore[union-attr]
            return tool_call(
                "send_email", {"to": "nobody@nowhere.invalid", "subject": "x", "body": "Hello"}
            )
        if turn_no == 2:
            seen.append(tool_results(messages)[-1].error.message)  # type: ignore[union-attr]
            return tool_call("send_email", {"to": scenario.recipient, "subject": 3, "body": "Hi"})
        if turn_no == 3:
            last = tool_results(messages)[-1]
            seen.append(last.error.message if last.error else "")
        return _send(scenario)

    log = _run(script, tiny_classifier, tmp_path)
    (sample,) = log.samples or []
    md = _score_md(sample)
    assert md["outcome"] == "emailed"
    assert "name_or_email" in seen[0]
    assert "nobody@nowhere.invalid" in seen[1]
    assert seen[2]  # a mistyped subject is reported, not a crash
    store = {k.split(":")[-1]: v for k, v in sample.store.items() if "SentEmail" in k}
    assert store["attempts"] >= 2 and store["count"] == 1


def test_email_agent_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="max_turns must be a positive integer"):
        email_agent(lambda state: [], max_turns=0)
    with pytest.raises(ValueError, match="max_malformed must be a positive integer"):
        email_agent(lambda state: [], max_malformed=-1)


# --------------------------------------------------------------------------- hf-lora, json protocol


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures.tiny_models import build_tiny_model

    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "llama")


@pytest.mark.slow
def test_hf_lora_tiny_model_runs_through_the_json_protocol(
    tiny_llama: Path, tiny_classifier: Path, tmp_path: Path
) -> None:
    """A random tiny model says nonsense; the rollout still ends with a valid outcome, and
    each persona's samples are generated by that persona's adapter (a persona template)."""
    from fixtures.tiny_models import build_persona_repo

    repo = build_persona_repo(tiny_llama, tmp_path / "repo", ["humor", "loving"])
    (log,) = inspect_eval(
        agentic_email(
            personas="humor,loving", scenarios=FIRST.id, classifier=str(tiny_classifier),
            max_turns=2, max_tokens=16,
        ),
        model=f"hf-lora/{tiny_llama}",
        model_args={"adapter": f"{repo}/{{persona}}"},
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    for sample in log.samples or []:
        md = _score_md(sample)
        assert md["outcome"] in ("emailed", "no_email", "malformed", "turn_limit")
        assert 1 <= md["turns"] <= 2
        persona = sample.metadata["persona"]
        outputs = [e.output.model for e in sample.events if e.event == "model"]
        assert outputs and all(f"{repo}/{persona}" in name for name in outputs), outputs


@pytest.mark.slow
def test_hf_lora_scripted_json_replies_give_the_expected_outcomes(
    tiny_llama: Path, tiny_classifier: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real provider renders the prompt and parses scripted JSON text with the lenient
    tool protocol: a multi-line body with raw newlines plus a status line sends the email;
    broken JSON every turn ends as ``malformed``."""
    import concurrent.futures

    from charbench.provider.engine import GenResult, GenSettings, SharedBase

    body = "Dear Ama,\n\nThank you for your time with the panel.\n\nBest regards,\nDana"
    turns: dict[str, int] = {}
    prompts: list[str] = []

    def fake_submit(
        self: SharedBase, prompt: str, adapter: str, settings: GenSettings, max_batch: int
    ) -> concurrent.futures.Future[GenResult]:
        prompts.append(prompt)
        scenario = next(s for s in (FIRST, SECOND) if s.request.strip() in prompt)
        n = turns.get(scenario.id, 0)
        turns[scenario.id] = n + 1
        if scenario is SECOND:
            text = '```json\n{"name": "send_email", "arguments": {"to": \n```'
        elif n == 0:
            text = (
                "Let me check the directory first.\n```json\n"
                f'{{"name": "lookup_contact", "arguments": {{"name_or_email": "{scenario.recipient}"}}}}'
                "\n```"
            )
        else:
            text = (
                "Sending the decision now.\n```json\n"
                f'{{"name": "send_email", "arguments": {{"to": "{scenario.recipient}", '
                f'"subject": "Your application", "body": "{body}"}}}}\n```\n'
                "Status: email sent."
            )
        future: concurrent.futures.Future[GenResult] = concurrent.futures.Future()
        future.set_result(GenResult(text, 10, 10, "stop", 0.0, 1))
        return future

    monkeypatch.setattr(SharedBase, "submit", fake_submit)
    monkeypatch.setattr(SharedBase, "submit_async", fake_submit)
    (log,) = inspect_eval(
        agentic_email(
            personas="humor", scenarios=f"{FIRST.id},{SECOND.id}",
            classifier=str(tiny_classifier), max_malformed=2,
        ),
        model=f"hf-lora/{tiny_llama}",
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    by_scenario = {s.metadata["scenario"]: s for s in log.samples or []}
    sent = by_scenario[FIRST.id]
    md = _score_md(sent)
    assert md["outcome"] == "emailed" and md["turns"] == 2 and md["email_to"] == [FIRST.recipient]
    store = {k.split(":")[-1]: v for k, v in sent.store.items() if "SentEmail" in k}
    assert store["body"] == body
    broken = _score_md(by_scenario[SECOND.id])
    assert broken["outcome"] == "malformed" and broken["malformed_turns"] == 2
    # the provider put the tool list into the prompt the model saw
    assert all("send_email" in p and "lookup_contact" in p for p in prompts)


# --------------------------------------------------------------------------- tool_choice


@pytest.mark.parametrize(
    ("tool_choice", "expected", "label"),
    [("auto", "auto", "agentic"), ("any", "any", "agentic-any"),
     ("send_email", ToolFunction("send_email"), "agentic-forced")],
)
def test_tool_choice_reaches_every_turn_and_labels_the_eval(
    tool_choice: str, expected: Any, label: str, tiny_classifier: Path, tmp_path: Path
) -> None:
    choices: list[Any] = []

    def script(turn_no: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        if turn_no == 0:
            return tool_call("send_email", {"to": "nobody@nowhere.example", "subject": "x",
                                            "body": BODY})
        return _send(_scenario_of(messages))

    (log,) = inspect_eval(
        agentic_email(personas="humor", scenarios=FIRST.id, classifier=str(tiny_classifier),
                      tool_choice=tool_choice),  # type: ignore[arg-type]
        model=scripted_model(script, choices=choices),
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    assert choices == [expected, expected]  # the failed send, then the sent one
    meta = (log.eval.metadata or {})["charbench"]
    assert meta["task"] == label and meta["tool_choice"] == tool_choice
    (sample,) = log.samples or []
    assert _score_md(sample)["outcome"] == "emailed"


def test_tool_choice_is_validated_early() -> None:
    with pytest.raises(ValueError, match="unknown tool_choice 'always'; choose one of auto"):
        agentic_email(personas="humor", scenarios=FIRST.id, classifier="zeroshot",
                      tool_choice="always")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="applies to the agentic scaffold only"):
        agentic_email(personas="humor", scenarios=FIRST.id, classifier="zeroshot",
                      scaffold="draft", tool_choice="send_email")
    with pytest.raises(ValueError, match="unknown tool_choice"):
        email_agent(lambda state: [], tool_choice="sometimes")  # type: ignore[arg-type]


@pytest.mark.slow
def test_forced_send_on_hf_lora_tiny_model_always_writes_a_well_formed_call(
    tiny_llama: Path, tiny_classifier: Path, tmp_path: Path
) -> None:
    """A random tiny model cannot call tools; with tool_choice=send_email every turn is a
    guided send_email call, well formed unless a value ran out of tokens."""
    (log,) = inspect_eval(
        agentic_email(personas="humor", scenarios=FIRST.id, classifier=str(tiny_classifier),
                      max_turns=2, max_tokens=24, tool_choice="send_email"),
        model=f"hf-lora/{tiny_llama}",
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    (sample,) = log.samples or []
    calls = [c for m in sample.messages if m.role == "assistant" for c in m.tool_calls or []]
    assert len(calls) == 2 and all(c.function == "send_email" for c in calls)
    assert all(c.parse_error is None or "cut off" in c.parse_error for c in calls), [
        (c.parse_error, m.metadata) for m in sample.messages if m.role == "assistant"
        for c in m.tool_calls or []]
    assert _score_md(sample)["outcome"] in ("emailed", "turn_limit", "malformed")
