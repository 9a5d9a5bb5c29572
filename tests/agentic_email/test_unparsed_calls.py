"""Tool calls the provider did not parse (#17): ``unparsed_call``, ``empty_after_tool`` and the
``text_tool_calls`` fallback, with scripted providers and Inspect's built-in ``hf``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixtures.scripted_models import (
    USAGE,
    reply,
    scripted_model,
    shared_tiny_classifier,
    tool_call,
    tool_results,
)
from inspect_ai import eval as inspect_eval
from inspect_ai.event import InfoEvent, LoggerEvent
from inspect_ai.log import EvalLog, EvalSample
from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageUser,
    Model,
    ModelOutput,
)
from inspect_ai.tool import ToolInfo, ToolParams
from inspect_ai.util import JSONSchema

from charbench.agentic_email.loop import OUTCOMES, TEXT_TOOL_CALLS_KEY
from charbench.agentic_email.scenarios import Scenario, load_scenarios
from charbench.agentic_email.task import agentic_email
from charbench.toolcalls.text_calls import find_text_tool_calls

SCENARIOS = load_scenarios()
FIRST: Scenario = SCENARIOS[0]
BODY = "Dear colleague,\n\nThank you for the update. Here is the plan.\n\nBest"
ARGS = {"to": FIRST.recipient, "subject": "Next steps", "body": BODY}


def _formats(args: dict[str, Any]) -> dict[str, str]:
    """The send_email call as servers without a tool parser return it, one per format."""
    args_json = json.dumps(args)
    call = json.dumps({"name": "send_email", "arguments": args})
    return {
        "fenced": f"I'll send it now.\n```json\n{call}\n```",
        "tool_call_tag": f"<tool_call>\n{call}\n</tool_call>",
        "bare_parameters": f'{{"name": "send_email", "parameters": {args_json}}}',
        "python_tag": f'<|python_tag|>{{"name": "send_email", "parameters": {args_json}}}',
        "openai_nesting": json.dumps(
            {"type": "function", "function": {"name": "send_email", "arguments": args}}
        ),
    }


FORMATS = _formats(ARGS)


@pytest.fixture(scope="module")
def tiny_classifier() -> Path:
    return shared_tiny_classifier()


def _run(model: Model, classifier: Path, tmp_path: Path, **task_args: Any) -> EvalLog:
    (log,) = inspect_eval(
        agentic_email(
            personas="humor", scenarios=FIRST.id, classifier=str(classifier), **task_args
        ),
        model=model,
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    return log


def _sample(log: EvalLog) -> tuple[EvalSample, dict[str, Any]]:
    (sample,) = log.samples or []
    assert sample.scores
    md = next(iter(sample.scores.values())).metadata
    assert md is not None
    return sample, md


def _warnings(sample: EvalSample) -> tuple[list[InfoEvent], list[LoggerEvent]]:
    infos = [
        e for e in sample.events
        if isinstance(e, InfoEvent) and isinstance(e.data, dict) and "charbench_warning" in e.data
    ]
    logged = [
        e for e in sample.events
        if isinstance(e, LoggerEvent) and e.message.level == "warning"
        and "charbench: the model" in e.message.message
    ]
    return infos, logged


def _episode(sample: EvalSample) -> dict[str, Any]:
    return {k.split(":")[-1]: v for k, v in sample.store.items() if "Episode" in k}


# ---- finding calls in text (pure) -----------------------------------------------------

SEND = ToolInfo(
    name="send_email",
    description="Send an email.",
    parameters=ToolParams(
        properties={k: JSONSchema(type="string") for k in ("to", "subject", "body")},
        required=["to", "subject", "body"],
    ),
)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_common_format_is_found_as_a_call_to_the_offered_tool(fmt: str) -> None:
    found = find_text_tool_calls(FORMATS[fmt], [SEND])
    (tc,) = found.tool_calls
    assert (tc.function, tc.arguments, tc.parse_error) == ("send_email", ARGS, None)


@pytest.mark.parametrize(
    "text",
    [
        "I have sent the email to Dana. Done.",
        '{"name": "Alice", "email": "alice@x.com"}',  # data, not a call
        '```json\n{"name": "delete_everything", "arguments": {}}\n```',  # not an offered tool
        "",
    ],
)
def test_text_without_a_call_to_an_offered_tool_is_not_a_call(text: str) -> None:
    found = find_text_tool_calls(text, [SEND])
    assert found.tool_calls == [] and found.content == text.strip()
    assert find_text_tool_calls(FORMATS["fenced"], []).tool_calls == []


def test_outcomes_list_the_new_outcomes() -> None:
    assert {"unparsed_call", "empty_after_tool"} <= set(OUTCOMES)
    assert "no_email" in OUTCOMES


# ---- situation 1: the server returns the call as text ---------------------------------


def test_call_left_in_text_is_unparsed_call_with_a_warning(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    log = _run(scripted_model(lambda n, m, t: reply(FORMATS["fenced"])), tiny_classifier, tmp_path)
    sample, md = _sample(log)
    assert md["outcome"] == "unparsed_call" and md["pred"] is None
    infos, logged = _warnings(sample)
    assert len(infos) == 1 and infos[0].source == "charbench"
    assert infos[0].data["charbench_warning"] == "unparsed_call"  # type: ignore[index]
    (warning,) = logged
    for needle in ("not parse tool calls", "text_tool_calls=true", "docs/serving.md",
                   "send_email"):
        assert needle in warning.message.message
    assert _episode(sample)["hint"] in warning.message.message  # Inspect prefixes the sample id
    assert log.eval.metadata is not None
    assert log.eval.metadata["charbench"]["text_tool_calls"] is False


@pytest.mark.parametrize("fmt", ["tool_call_tag", "python_tag"])
def test_text_tool_calls_runs_the_call_and_marks_it(
    fmt: str, tiny_classifier: Path, tmp_path: Path
) -> None:
    def script(n: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return reply(FORMATS[fmt]) if n == 0 else reply("Done.")

    log = _run(scripted_model(script), tiny_classifier, tmp_path, text_tool_calls=True)
    sample, md = _sample(log)
    assert md["outcome"] == "emailed" and md["pred"] is not None
    assert md["email_to"] == [FIRST.recipient]
    assistant = next(m for m in sample.messages if isinstance(m, ChatMessageAssistant))
    assert assistant.tool_calls and assistant.metadata
    assert assistant.metadata[TEXT_TOOL_CALLS_KEY] == [assistant.tool_calls[0].id]
    assert "send_email" in assistant.text  # what the model wrote is kept
    (result,) = tool_results(sample.messages)
    assert result.error is None
    marks = [e for e in sample.events
             if isinstance(e, InfoEvent) and isinstance(e.data, dict)
             and TEXT_TOOL_CALLS_KEY in e.data]
    assert len(marks) == 1
    assert _episode(sample)["text_parsed_calls"] == 1
    assert _warnings(sample) == ([], [])
    assert log.eval.metadata is not None
    assert log.eval.metadata["charbench"]["text_tool_calls"] is True


def test_text_tool_calls_sends_malformed_text_calls_back_as_errors(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    bad = '```json\n{"name": "send_email", "arguments": {"to": "x"}}\n```'

    def script(n: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return reply(bad) if n == 0 else reply(FORMATS["fenced"])

    log = _run(scripted_model(script), tiny_classifier, tmp_path, text_tool_calls=True)
    sample, md = _sample(log)
    first = tool_results(sample.messages)[0]
    assert first.error is not None and "missing required arguments" in first.error.message
    assert md["outcome"] == "emailed" and md["malformed_turns"] == 1


def test_plain_text_stays_no_email_without_a_warning(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    log = _run(scripted_model(lambda n, m, t: reply("I will not send anything.")),
               tiny_classifier, tmp_path, text_tool_calls=True)
    sample, md = _sample(log)
    assert md["outcome"] == "no_email"
    assert _warnings(sample) == ([], [])


@pytest.mark.parametrize(
    "args, message",
    [
        ({"text_tool_calls": "yes"}, "text_tool_calls must be true or false"),
        ({"text_tool_calls": True, "scaffold": "draft"}, "agentic scaffold only"),
    ],
)
def test_text_tool_calls_is_validated_before_any_model_loads(
    args: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        agentic_email(personas="humor", scenarios=FIRST.id, classifier="zeroshot", **args)


# ---- situation 2: the server drops tool messages --------------------------------------


def _empty(model_name: str) -> ModelOutput:
    message = ChatMessageAssistant(content="", model=model_name, source="generate")
    return ModelOutput(
        model=model_name,
        choices=[ChatCompletionChoice(message=message, stop_reason="stop")],
        usage=USAGE.model_copy(),
    )


@pytest.mark.parametrize("served", ["mockllm/model", "/models/SmolLM2-135M-Instruct.Q4_1.gguf"])
def test_empty_turn_after_tool_results_is_its_own_outcome(
    served: str, tiny_classifier: Path, tmp_path: Path
) -> None:
    def script(n: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        if n == 0:
            return tool_call("lookup_contact", {"name_or_email": FIRST.recipient})
        return _empty(served)

    log = _run(scripted_model(script), tiny_classifier, tmp_path)
    sample, md = _sample(log)
    assert md["outcome"] == "empty_after_tool"
    infos, (warning,) = _warnings(sample)
    assert infos[0].data["charbench_warning"] == "empty_after_tool"  # type: ignore[index]
    assert "dropped the tool messages" in warning.message.message
    known = "chatml-function-calling" in warning.message.message
    assert known == served.endswith(".gguf")


def test_empty_first_turn_is_still_no_email(tiny_classifier: Path, tmp_path: Path) -> None:
    log = _run(scripted_model(lambda n, m, t: _empty("mockllm/model")), tiny_classifier, tmp_path)
    sample, md = _sample(log)
    assert md["outcome"] == "no_email"
    assert _warnings(sample) == ([], [])


# ---- situation 3: Inspect's built-in hf provider ----------------------------------------


@pytest.fixture(scope="module")
def hf_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures.tiny_models import build_tiny_model

    # a Qwen instruct name: Inspect's hf provider then reads only <tool_call> blocks
    return build_tiny_model("qwen2", tmp_path_factory.mktemp("hf") / "tiny-qwen2.5-instruct")


def _hf_model(path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Model:
    """Inspect's ``hf`` provider on a tiny model, its generation replaced by ``text``.

    Everything else is Inspect's own: the chat template with the tools, and the tool-call
    parser it picks from the model name.
    """
    from inspect_ai.model import get_model
    from inspect_ai.model._providers import hf

    async def generate(input: Any) -> Any:
        return hf.GenerateOutput(output=text, input_tokens=10, output_tokens=5,
                                 total_tokens=15, logprobs=None, hidden_states=None, time=0.0)

    monkeypatch.setattr(hf, "batched_generate", generate)
    return get_model(f"hf/{path.name}", model_path=str(path), device="cpu")


def test_hf_provider_leaves_a_fenced_call_in_the_text(
    hf_model_dir: Path, monkeypatch: pytest.MonkeyPatch, tiny_classifier: Path, tmp_path: Path
) -> None:
    model = _hf_model(hf_model_dir, monkeypatch, FORMATS["fenced"])
    log = _run(model, tiny_classifier, tmp_path)
    sample, md = _sample(log)
    assert md["outcome"] == "unparsed_call"
    assert len(_warnings(sample)[1]) == 1
    log = _run(_hf_model(hf_model_dir, monkeypatch, FORMATS["fenced"]), tiny_classifier,
               tmp_path, text_tool_calls=True)
    _, md = _sample(log)
    assert md["outcome"] == "emailed"


def test_hf_provider_parses_its_own_format_natively(
    hf_model_dir: Path, monkeypatch: pytest.MonkeyPatch, tiny_classifier: Path, tmp_path: Path
) -> None:
    model = _hf_model(hf_model_dir, monkeypatch, FORMATS["tool_call_tag"])
    sample, md = _sample(_run(model, tiny_classifier, tmp_path))
    assert md["outcome"] == "emailed"
    assistant = next(m for m in sample.messages if isinstance(m, ChatMessageAssistant))
    assert TEXT_TOOL_CALLS_KEY not in (assistant.metadata or {})
    assert isinstance(sample.messages[1], ChatMessageUser) or sample.messages[0].role == "system"
