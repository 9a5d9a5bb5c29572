"""persona_scorer end to end inside tiny Inspect evals on ``mockllm/model`` (offline)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fixtures.tiny_classifier import build_tiny_classifier
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.log import EvalLog
from inspect_ai.model import ChatMessage, Model, ModelOutput, ModelUsage, get_model
from inspect_ai.solver import TaskState, generate
from sklearn.metrics import f1_score

from charbench.scoring import ClassifiedText, completion_text, persona_scorer

PERSONAS = ["sarcasm", "humor", "loving", "mathematical"]
REPLIES = [
    "Oh wonderful, another meeting that could have been an email.",
    "Dear friend, you matter so much to me.",
    "Let x be the number of tasks; the expected time is the sum over all tasks.",
    "Why did the spreadsheet break up with the calculator? It felt undervalued.",
    "The moon spills silver on the quiet river of the night.",
    "Whatever works, no big deal, we can sort it out later.",
    "I am so sorry, I deeply regret the mistake.",
    "",  # an empty reply: scored as a miss
]


def echo_model() -> Model:
    """mockllm that replies with the sample's input text (with usage: no tiktoken)."""

    def reply(messages: list[ChatMessage], *_: Any) -> ModelOutput:
        text = messages[-1].text.removeprefix("ECHO:")
        out = ModelOutput.from_content(model="mockllm/model", content=text)
        out.usage = ModelUsage(input_tokens=5, output_tokens=5, total_tokens=10)
        return out

    return get_model("mockllm/model", custom_outputs=reply)


def dataset(n_prompts: int = 6) -> list[Sample]:
    samples = []
    for k in range(n_prompts):
        for j, persona in enumerate(PERSONAS):
            samples.append(
                Sample(
                    id=f"{persona}-{k:04d}",
                    input="ECHO:" + REPLIES[(3 * k + j) % len(REPLIES)],
                    metadata={
                        "persona": persona,
                        "personas": PERSONAS,
                        "cluster": f"dove-{k:05d}",
                        "task": "chat_persona",
                    },
                )
            )
    return samples


@pytest.fixture(scope="module")
def clf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("clf") / "tiny")


def run(task: Task, tmp_path: Path, **kwargs: Any) -> EvalLog:
    [log] = eval(task, model=echo_model(), log_dir=str(tmp_path), display="none", **kwargs)
    assert log.status == "success", log.error
    return log


def logged(log: EvalLog) -> tuple[list[str], list[str | None], list[dict[str, Any]]]:
    assert log.samples
    metas = [s.scores["persona_scorer"].metadata for s in log.samples]  # type: ignore[index]
    return [m["gold"] for m in metas], [m["pred"] for m in metas], metas  # type: ignore[index]


def sk_macro_f1(gold: Sequence[str], pred: Sequence[str | None]) -> float:
    return float(
        f1_score(
            gold,
            [p if p is not None else "<none>" for p in pred],
            labels=PERSONAS,
            average="macro",
            zero_division=0,
        )
    )


def metrics(log: EvalLog) -> dict[str, float]:
    assert log.results is not None
    [score] = log.results.scores
    return {k: v.value for k, v in score.metrics.items()}


def test_logged_macro_f1_equals_sklearn_on_logged_predictions(
    clf_path: Path, tmp_path: Path
) -> None:
    task = Task(dataset=dataset(), solver=generate(), scorer=persona_scorer(str(clf_path)))
    log = run(task, tmp_path)
    gold, pred, metas = logged(log)
    got = metrics(log)
    assert len({p for p in pred if p is not None}) > 1  # a non-degenerate prediction mix
    assert got["macro_f1"] == pytest.approx(sk_macro_f1(gold, pred), abs=1e-9)
    assert got["macro_f1_ci_low"] <= got["macro_f1"] <= got["macro_f1_ci_high"]
    assert got["accuracy"] == pytest.approx(
        sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)
    )
    assert {got[f"n_{p}"] for p in PERSONAS} == {6.0}
    # the score fields follow the contract
    for sample, m in zip(log.samples or [], metas, strict=True):
        score = sample.scores["persona_scorer"]  # type: ignore[index]
        assert set(m) >= {
            "gold",
            "pred",
            "probs",
            "labels",
            "cluster",
            "classifier",
            "restrict",
            "outcome",
        }
        assert m["labels"] == PERSONAS and m["classifier"] == str(clf_path)
        assert m["cluster"] == sample.metadata["cluster"]
        if m["pred"] is None:
            assert m["outcome"] == "empty" and score.value == 0.0 and score.answer == ""
            assert m["probs"] == {}
        else:
            assert m["outcome"] == "replied"
            assert score.answer == m["pred"]
            assert score.value == float(m["pred"] == m["gold"])
            assert m["pred"] == max(m["probs"], key=m["probs"].get)
            assert sum(m["probs"].values()) == pytest.approx(1.0, abs=1e-3)
    assert sum(m["outcome"] == "empty" for m in metas) == 3  # counted, not dropped


def test_epochs_pool_every_rollout(clf_path: Path, tmp_path: Path) -> None:
    task = Task(dataset=dataset(3), solver=generate(), scorer=persona_scorer(str(clf_path)))
    log = run(task, tmp_path, epochs=2)
    assert log.samples is not None and len(log.samples) == 24
    gold, pred, _ = logged(log)
    got = metrics(log)
    assert got["macro_f1"] == pytest.approx(sk_macro_f1(gold, pred), abs=1e-9)
    assert {got[f"n_{p}"] for p in PERSONAS} == {6.0}  # 3 prompts x 2 epochs


def test_restrict_to_evaluated(tmp_path: Path) -> None:
    # A classifier that always prefers misalignment: 11-way it is always wrong; restricted
    # to the evaluated personas the argmax falls among them.
    path = build_tiny_classifier(
        tmp_path / "biased", label_bias={"misalignment": 30.0, "humor": 15.0}
    )
    open_ = run(
        Task(dataset=dataset(2), solver=generate(), scorer=persona_scorer(str(path))),
        tmp_path / "open",
    )
    _, pred, metas = logged(open_)
    assert {p for p in pred if p is not None} == {"misalignment"}
    assert metrics(open_)["macro_f1"] == 0.0
    assert all(m["restrict"] is False for m in metas)
    restricted = run(
        Task(
            dataset=dataset(2),
            solver=generate(),
            scorer=persona_scorer(str(path), restrict_to_evaluated=True),
        ),
        tmp_path / "restricted",
    )
    _, pred, metas = logged(restricted)
    assert {p for p in pred if p is not None} == {"humor"}
    assert all(m["restrict"] is True for m in metas)
    assert metrics(restricted)["f1_humor"] > 0.0


def test_custom_async_text_fn_and_agentic_metrics(clf_path: Path, tmp_path: Path) -> None:
    async def email_body(state: TaskState) -> ClassifiedText:
        text = state.output.completion
        if "moon" in text or not text:
            return ClassifiedText(None, "no_email", {"turns": 3, "gold": "ignored"})
        return ClassifiedText(text, "emailed", {"turns": 2, "tool_calls": 1})

    task = Task(
        dataset=dataset(4),
        solver=generate(),
        scorer=persona_scorer(str(clf_path), text_fn=email_body, agentic=True),
    )
    log = run(task, tmp_path)
    gold, pred, metas = logged(log)
    got = metrics(log)
    sent = [i for i, m in enumerate(metas) if m["outcome"] == "emailed"]
    assert 0 < len(sent) < len(metas)
    assert got["n_emailed"] == len(sent) and got["n_total"] == len(metas)
    assert got["email_rate"] == pytest.approx(len(sent) / len(metas))
    assert got["macro_f1"] == pytest.approx(
        sk_macro_f1([gold[i] for i in sent], [pred[i] for i in sent]), abs=1e-9
    )
    assert got["macro_f1_itt"] == pytest.approx(sk_macro_f1(gold, pred), abs=1e-9)
    for m in metas:
        assert m["agentic"] is True and "turns" in m
        assert m["gold"] != "ignored"  # extras cannot override the contract fields


def test_score_records_the_exact_classified_text_and_the_contract_fields(
    clf_path: Path, tmp_path: Path
) -> None:
    from charbench.contracts import ScoreFields

    async def body(state: TaskState) -> ClassifiedText:
        text = state.output.completion
        if not text:
            return ClassifiedText(None, "no_email", {"terminated": "malformed"})
        return ClassifiedText(f"BODY<{text}>", "emailed",
                              {"terminated": "final", "text": "not this"})

    samples = dataset(2)
    for s in samples:
        assert s.metadata is not None
        s.metadata["family"] = "fam-" + s.metadata["cluster"][-1]
    task = Task(dataset=samples, solver=generate(),
                scorer=persona_scorer(str(clf_path), text_fn=body, agentic=True))
    log = run(task, tmp_path, epochs=2)
    assert log.samples
    for sample in log.samples:
        md = sample.scores["persona_scorer"].metadata  # type: ignore[index]
        fields = ScoreFields.read(md, sample.metadata, str(sample.id))
        assert fields.epoch == sample.epoch and fields.replicate == 0
        assert fields.family == "fam-" + str(sample.metadata["cluster"])[-1]
        reply = sample.output.completion
        if reply:
            # the text given to the classifier, not a task extra of the same name
            assert fields.text == f"BODY<{reply}>" and fields.terminated == "final"
        else:
            assert fields.text is None and fields.pred is None
            assert fields.terminated == "malformed"


def test_sample_without_persona_metadata_fails_clearly(clf_path: Path, tmp_path: Path) -> None:
    task = Task(
        dataset=[Sample(input="ECHO:hello", id="x")],
        solver=generate(),
        scorer=persona_scorer(str(clf_path)),
    )
    [log] = eval(task, model=echo_model(), log_dir=str(tmp_path), display="none")
    assert log.status == "error"
    assert log.error is not None and "'persona'" in log.error.message


def _state(completion: str) -> TaskState:
    return TaskState(
        model="mockllm/model",  # type: ignore[arg-type]
        sample_id="s",
        epoch=1,
        input="hi",
        messages=[],
        output=ModelOutput.from_content(model="mockllm/model", content=completion),
    )


def test_completion_text_and_bad_spec() -> None:
    with pytest.raises(ValueError, match="classifier spec"):
        persona_scorer("  ")
    assert completion_text(_state("Hello there")) == ClassifiedText("Hello there", "replied")
    for blank in ("", "  \n\t"):
        assert completion_text(_state(blank)) == ClassifiedText(None, "empty")
