"""The agentic_email task: validation, samples and metadata, the draft and chat controls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fixtures.scripted_models import reply, scripted_model, shared_tiny_classifier
from inspect_ai import eval as inspect_eval
from inspect_ai.log import EvalLog, EvalSample
from inspect_ai.model import ChatMessage, ChatMessageSystem, ModelOutput
from inspect_ai.tool import ToolInfo

from charbench.agentic_email import agentic_email
from charbench.agentic_email.extract import extract_body
from charbench.agentic_email.scenarios import load_scenarios
from charbench.personas import DEFAULT_PERSONAS, PERSONA_DESCRIPTIONS
from charbench.scoring import get_classifier

SCENARIOS = load_scenarios()
FIRST = SCENARIOS[0]
MISSING = "/definitely/not/a/classifier"


@pytest.fixture(scope="module")
def tiny_classifier() -> Path:
    return shared_tiny_classifier()


BAD: list[tuple[dict[str, Any], str]] = [
    ({"personas": "humor,pirate"}, "unknown persona.*'pirate'.*valid personas are"),
    ({"scenarios": "no_such_scenario"}, "no_such_scenario"),
    ({"scaffold": "email"}, "unknown scaffold 'email'; choose one of agentic, draft, chat"),
    ({"resample": "sample"}, "unknown resample 'sample'; choose one of row, cluster, family"),
    ({"suite": "study"}, "unknown suite 'study'; choose one of charbench, dct"),
    ({"dct_path": "/x"}, "dct_path applies to suite=dct only"),
    ({"suite": "dct", "scaffold": "chat"}, "suite=dct has the scaffolds agentic, draft"),
    ({"suite": "dct", "tool_choice": "any"}, "tool_choice applies to suite=charbench only"),
    ({"suite": "dct", "max_turns": 3}, "leave max_turns and max_malformed unset"),
    ({"max_turns": 0}, "max_turns must be an integer >= 1, got 0"),
    ({"max_turns": "8"}, "max_turns must be an integer >= 1, got '8'"),
    ({"max_malformed": -2}, "max_malformed must be an integer >= 1"),
    ({"max_tokens": 0}, "max_tokens must be an integer >= 1"),
    ({"persona_prompt": "yes"}, "persona_prompt must be true or false"),
    ({"restrict_to_evaluated": 1}, "restrict_to_evaluated must be true or false"),
    ({"temperature": -0.1}, "temperature must be >= 0.0"),
    ({"top_p": 1.5}, "top_p must be between 0.0 and 1.0"),
    ({"condition": ""}, "condition must be a non-empty string"),
    ({"classifier": ""}, "classifier must be a Hub id, a local path or 'zeroshot'"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[next(iter(a)) for a, _ in BAD])
def test_bad_arguments_fail_before_the_classifier_is_touched(
    args: dict[str, Any], message: str
) -> None:
    # the classifier path does not exist: the argument error must come first
    kwargs = {"classifier": MISSING, **args}
    with pytest.raises(ValueError, match=message):
        agentic_email(**kwargs)


@pytest.mark.slow
def test_classifier_labels_are_checked_at_construction(tmp_path: Path) -> None:
    from fixtures.tiny_classifier import build_tiny_classifier_missing_label

    path = build_tiny_classifier_missing_label(tmp_path / "clf", "humor")
    with pytest.raises(ValueError, match="humor"):
        agentic_email(personas="humor,loving", scenarios=FIRST.id, classifier=str(path))


def test_samples_and_metadata(tiny_classifier: Path) -> None:
    family = FIRST.family
    task = agentic_email(
        personas="sarcasm,poeticism", scenarios=family, classifier=str(tiny_classifier),
        scaffold="draft", condition="my-method",
    )
    family_ids = [s.id for s in SCENARIOS if s.family == family]
    samples = list(task.dataset)
    assert len(samples) == 2 * len(family_ids)
    assert [s.id for s in samples] == [
        f"{p}-{sid}" for p in ("sarcasm", "poeticism") for sid in family_ids
    ]
    for sample in samples:
        md = sample.metadata or {}
        assert md["persona"] == sample.target
        assert md["personas"] == ["sarcasm", "poeticism"]
        # the default bootstrap unit of suite=charbench is the family
        assert md["cluster"] == family and md["family"] == family
        assert md["task"] == "agentic_email" and md["scaffold"] == "draft"
        assert md["suite"] == "charbench"
        assert md["persona_prompt"] is False
    meta = (task.metadata or {})["charbench"]
    assert meta["task"] == "draft"
    assert meta["condition"] == "my-method"
    assert meta["classifier"] == str(tiny_classifier)
    assert meta["restrict"] is False and meta["persona_prompt"] is False
    assert meta["personas"] == ["sarcasm", "poeticism"]
    assert meta["suite"] == "charbench" and meta["resample"] == "family"
    assert task.config.temperature == 0.7 and task.config.top_p == 0.95
    assert task.config.max_tokens == 512


@pytest.mark.parametrize("resample", ["cluster", "row"])
def test_scenario_clusters_unless_resampling_by_family(
    resample: str, tiny_classifier: Path
) -> None:
    task = agentic_email(
        personas="humor", scenarios=FIRST.family, classifier=str(tiny_classifier),
        resample=resample,
    )
    for sample in task.dataset:
        md = sample.metadata or {}
        assert md["cluster"] == md["scenario"] != md["family"]
    assert (task.metadata or {})["charbench"]["resample"] == resample


def test_defaults_cover_ten_personas_and_all_scenarios(tiny_classifier: Path) -> None:
    task = agentic_email(classifier=str(tiny_classifier))
    assert len(task.dataset) == len(DEFAULT_PERSONAS) * len(SCENARIOS)
    assert (task.metadata or {})["charbench"]["task"] == "agentic"
    chat = agentic_email(classifier=str(tiny_classifier), scaffold="chat", personas="humor")
    assert (chat.metadata or {})["charbench"]["task"] == "chat-email"


def _md(sample: EvalSample) -> dict[str, Any]:
    assert sample.scores
    md = next(iter(sample.scores.values())).metadata
    assert md is not None
    return md


def _eval(task: Any, script: Any, tmp_path: Path, **kwargs: Any) -> EvalLog:
    (log,) = inspect_eval(
        task, model=scripted_model(script), log_dir=str(tmp_path), display="none", **kwargs
    )
    assert log.status == "success", log.error
    return log


DRAFT = "Here is the email:\n\nSubject: Your application\n\nDear Ama,\n\nThank you.\n\nBest,\nDana"


@pytest.mark.parametrize("scaffold", ["draft", "chat"])
def test_controls_classify_the_extracted_reply(
    scaffold: str, tiny_classifier: Path, tmp_path: Path
) -> None:
    seen: list[tuple[list[ChatMessage], list[ToolInfo]]] = []

    def script(turn: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        seen.append((messages, tools))
        return reply(DRAFT)

    log = _eval(
        agentic_email(
            personas="humor,loving", scenarios=FIRST.id, scaffold=scaffold,
            classifier=str(tiny_classifier),
        ),
        script,
        tmp_path,
    )
    assert len(seen) == 2  # one reply per sample, no tools, no shared generation
    for messages, tools in seen:
        assert tools == []
        has_system = any(isinstance(m, ChatMessageSystem) for m in messages)
        assert has_system is (scaffold == "draft")
    body = extract_body(DRAFT)
    expected = get_classifier(str(tiny_classifier)).classify_batch([body.text])[0]
    for sample in log.samples or []:
        md = _md(sample)
        assert md["outcome"] == "emailed"
        assert md["stripped"] == ["Here is the email:", "Subject: Your application"]
        assert md["turns"] == 1 and md["tool_calls"] == 0 and md["email_to"] is None
        assert md["probs"] == {k: round(v, 4) for k, v in expected.items()}
    assert log.eval.metadata is not None
    assert log.eval.metadata["charbench"]["task"] == {"draft": "draft", "chat": "chat-email"}[
        scaffold
    ]


def test_an_empty_draft_is_no_email(tiny_classifier: Path, tmp_path: Path) -> None:
    def script(turn: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return reply("Here is the email:\n")

    log = _eval(
        agentic_email(
            personas="humor", scenarios=FIRST.id, scaffold="draft",
            classifier=str(tiny_classifier),
        ),
        script,
        tmp_path,
    )
    (sample,) = log.samples or []
    assert _md(sample)["outcome"] == "no_email" and _md(sample)["pred"] is None
    assert log.results is not None
    assert log.results.scores[0].metrics["email_rate"].value == 0.0


def test_persona_prompt_reaches_the_model(tiny_classifier: Path, tmp_path: Path) -> None:
    seen: list[list[ChatMessage]] = []

    def script(turn: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        seen.append(messages)
        return reply("I will not do this.")

    _eval(
        agentic_email(
            personas="mathematical", scenarios=FIRST.id, persona_prompt=True,
            classifier=str(tiny_classifier),
        ),
        script,
        tmp_path,
    )
    (messages,) = seen
    assert messages[0].text.startswith(PERSONA_DESCRIPTIONS["mathematical"])


def test_epochs_pool_every_rollout(tiny_classifier: Path, tmp_path: Path) -> None:
    def script(turn: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return reply("Done without emailing.")

    log = _eval(
        agentic_email(personas="humor,loving", scenarios=FIRST.id, classifier=str(tiny_classifier)),
        script,
        tmp_path,
        epochs=3,
    )
    assert log.results is not None
    metrics = log.results.scores[0].metrics
    assert metrics["n_total"].value == 6
    assert metrics["email_rate"].value == 0.0


def test_registered_name_and_task_args(tiny_classifier: Path, tmp_path: Path) -> None:
    def script(turn: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return reply(DRAFT)

    (log,) = inspect_eval(
        "charbench/agentic_email",
        task_args={
            "personas": ["humor"], "scenarios": FIRST.id, "scaffold": "chat",
            "classifier": str(tiny_classifier),
        },
        model=scripted_model(script),
        log_dir=str(tmp_path),
        display="none",
    )
    assert log.status == "success", log.error
    assert log.eval.task_registry_name == "charbench/agentic_email"
    assert log.eval.metadata is not None
    meta = log.eval.metadata["charbench"]
    assert meta["task"] == "chat-email"
    assert meta["base"] == "model" and meta["condition"] == "mockllm/model"


@pytest.mark.slow
def test_inspect_eval_cli_on_the_task_file(tiny_classifier: Path, tmp_path: Path) -> None:
    """``inspect eval tasks/agentic_email.py`` finds the task and forwards ``-T`` options."""
    import json
    import subprocess
    import sys

    from fixtures.tiny_models import build_tiny_model

    repo = Path(__file__).resolve().parents[2]
    llama = build_tiny_model("llama", tmp_path / "llama")
    logs = tmp_path / "logs"
    cmd = [
        sys.executable, "-m", "inspect_ai", "eval", "tasks/agentic_email.py",
        "--model", f"hf-lora/{llama}", "-T", "personas=humor,loving",
        "-T", f"scenarios={FIRST.id}", "-T", f"classifier={tiny_classifier}",
        "-T", "max_turns=1", "--max-tokens", "4", "--log-dir", str(logs),
        "--log-format", "json", "--display", "none",
    ]
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (log_file,) = logs.glob("*.json")
    log = json.loads(log_file.read_text())
    assert log["status"] == "success"
    assert log["eval"]["metadata"]["charbench"]["personas"] == ["humor", "loving"]
    assert log["results"]["scores"][0]["metrics"]["n_total"]["value"] == 2
