"""chat_persona end to end on mockllm: logs, macro-F1, generation reuse and persona routing."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.log import EvalLog
from inspect_ai.model import (
    ChatMessage,
    GenerateConfig,
    Model,
    ModelOutput,
    ModelUsage,
    get_model,
)
from inspect_ai.tool import ToolChoice, ToolInfo
from sklearn.metrics import f1_score

from charbench import chat_persona
from charbench.personas import PERSONA_DESCRIPTIONS

PERSONAS = ["sarcasm", "loving", "mathematical"]
N = 4


class Recorder:
    """A mockllm ``custom_outputs`` callable that records every generate call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        with self._lock:
            self.calls.append(
                {
                    "user": input[-1].text,
                    "system": input[0].text if input[0].role == "system" else None,
                    "temperature": config.temperature,
                    "top_p": config.top_p,
                    "max_tokens": config.max_tokens,
                    "seed": config.seed,
                }
            )
            k = len(self.calls)
        text = f"Reply {k}: " + ("oh wonderful, truly thrilling " if k % 2 else "let x be the sum ")
        out = ModelOutput.from_content(model="mockllm", content=text)
        out.usage = ModelUsage(input_tokens=10, output_tokens=6, total_tokens=16)
        return out


def _model(rec: Recorder, name: str = "mockllm/model") -> Model:
    return get_model(name, custom_outputs=rec, memoize=False)


def _run(task: Any, model: Model, log_dir: Path, **kwargs: Any) -> EvalLog:
    (log,) = inspect_eval(task, model=model, log_dir=str(log_dir), display="none", **kwargs)
    assert log.status == "success", log.error
    return log


def _metrics(log: EvalLog) -> dict[str, float]:
    assert log.results is not None
    return {
        name: m.value for s in log.results.scores for name, m in s.metrics.items()
    }


def test_eval_logs_macro_f1_equal_to_sklearn_and_reuses_generations(
    tmp_path: Path, tiny_clf: Path
) -> None:
    rec = Recorder()
    task = chat_persona(personas=PERSONAS, prompts="builtin", n=N, classifier=str(tiny_clf))
    log = _run(task, _model(rec), tmp_path)

    # one generation per prompt, not per (prompt, persona)
    assert len(rec.calls) == N
    assert log.samples is not None and len(log.samples) == N * len(PERSONAS)

    by_prompt: dict[str, list[Any]] = {}
    for s in log.samples:
        by_prompt.setdefault(s.metadata["prompt_id"], []).append(s)
    for samples in by_prompt.values():
        gens = [s.metadata["generation"] for s in samples]
        producers = [s for s, g in zip(samples, gens, strict=True) if not g["reused"]]
        assert len(producers) == 1 and all(g["shared"] for g in gens)
        own = f"{producers[0].id} (epoch 1)"
        assert {g["generated_by"] for g in gens} == {own}
        assert {s.output.completion for s in samples} == {producers[0].output.completion}
        assert all(s.store["charbench:generation"] == s.metadata["generation"] for s in samples)

    # the logged macro-F1 is scikit-learn's on the logged predictions
    gold = [s.metadata["persona"] for s in log.samples]
    pred = [s.scores["persona_scorer"].answer for s in log.samples]  # type: ignore[index]
    expected = f1_score(gold, pred, labels=PERSONAS, average="macro", zero_division=0)
    metrics = _metrics(log)
    assert metrics["macro_f1"] == pytest.approx(expected, abs=1e-9)
    assert metrics["macro_f1_ci_low"] <= metrics["macro_f1"] <= metrics["macro_f1_ci_high"]

    # task defaults reach the model
    assert {(c["temperature"], c["top_p"], c["max_tokens"]) for c in rec.calls} == {(0.7, 0.95, 512)}


def test_reuse_off_and_prompted_condition_generate_per_sample(tmp_path: Path, tiny_clf: Path) -> None:
    rec = Recorder()
    task = chat_persona(
        personas=PERSONAS, prompts="builtin", n=2, classifier=str(tiny_clf),
        reuse_generations=False,
    )
    log = _run(task, _model(rec), tmp_path)
    assert len(rec.calls) == 2 * len(PERSONAS)
    assert log.samples is not None
    assert not any(s.metadata["generation"]["shared"] for s in log.samples)

    # persona_prompt: inputs differ per persona, so nothing is shared even with reuse on
    rec2 = Recorder()
    task2 = chat_persona(
        personas=PERSONAS, prompts="builtin", n=2, classifier=str(tiny_clf), persona_prompt=True
    )
    log2 = _run(task2, _model(rec2), tmp_path)
    assert len(rec2.calls) == 2 * len(PERSONAS)
    assert log2.samples is not None
    assert not any(s.metadata["generation"]["reused"] for s in log2.samples)
    assert all(c["system"] for c in rec2.calls)


def test_epochs_draw_afresh_and_cli_config_wins(tmp_path: Path, tiny_clf: Path) -> None:
    rec = Recorder()
    task = chat_persona(personas=PERSONAS, prompts="builtin", n=2, classifier=str(tiny_clf))
    log = _run(task, _model(rec), tmp_path, epochs=2, temperature=0.3, seed=7)
    assert len(rec.calls) == 2 * 2  # prompts x epochs
    assert {(c["temperature"], c["top_p"], c["seed"]) for c in rec.calls} == {(0.3, 0.95, 7)}
    assert log.samples is not None and len(log.samples) == 2 * 2 * len(PERSONAS)
    for s in log.samples:
        assert s.metadata["generation"]["generated_by"].endswith(f"(epoch {s.epoch})")


def test_persona_template_routes_each_sample_to_its_model(tmp_path: Path, tiny_clf: Path) -> None:
    rec = Recorder()
    task = chat_persona(personas=PERSONAS, prompts="builtin", n=2, classifier=str(tiny_clf))
    log = _run(task, _model(rec, "mockllm/{persona}"), tmp_path, max_tokens=32)
    # a template is never shared: every persona generates with its own model
    assert len(rec.calls) == 2 * len(PERSONAS)
    # the per-persona models get the eval's generate config, not provider defaults
    assert {(c["temperature"], c["top_p"], c["max_tokens"]) for c in rec.calls} == {(0.7, 0.95, 32)}
    assert log.samples is not None
    for s in log.samples:
        persona = s.metadata["persona"]
        models = {e.model for e in s.events if e.event == "model"}
        assert models == {f"mockllm/{persona}"}, (s.id, models)
        assert s.metadata["generation"] == {
            "model": f"mockllm/{persona}", "shared": False, "reused": False,
            "generated_by": f"{s.id} (epoch 1)",
        }

    # template and prompted condition together: both apply
    rec2 = Recorder()
    task2 = chat_persona(
        personas=PERSONAS, prompts="builtin", n=1, classifier=str(tiny_clf), persona_prompt=True
    )
    log2 = _run(task2, _model(rec2, "mockllm/{persona}"), tmp_path)
    assert len(rec2.calls) == len(PERSONAS)
    assert {c["system"] for c in rec2.calls} == {PERSONA_DESCRIPTIONS[p] for p in PERSONAS}
    assert log2.samples is not None
    for s in log2.samples:
        assert {e.model for e in s.events if e.event == "model"} == {f"mockllm/{s.metadata['persona']}"}


def test_failed_generation_errors_only_its_prompt(tmp_path: Path, tiny_clf: Path) -> None:
    first_prompt = None

    def flaky(input: list[ChatMessage], tools: Any, tc: Any, config: GenerateConfig) -> ModelOutput:
        nonlocal first_prompt
        if first_prompt is None:
            first_prompt = input[-1].text
        if input[-1].text == first_prompt:
            raise RuntimeError("boom")
        out = ModelOutput.from_content(model="mockllm", content="a calm reply")
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return out

    task = chat_persona(personas=PERSONAS, prompts="builtin", n=3, classifier=str(tiny_clf))
    model = get_model("mockllm/model", custom_outputs=flaky, memoize=False)
    (log,) = inspect_eval(
        task, model=model, log_dir=str(tmp_path), display="none", fail_on_error=False,
        max_retries=0,
    )
    assert log.samples is not None
    failed = [s for s in log.samples if s.error is not None]
    ok = [s for s in log.samples if s.error is None]
    assert {s.metadata["prompt_id"] for s in failed} == {"builtin-00000"}
    assert len(failed) == len(PERSONAS) and len(ok) == 2 * len(PERSONAS)
    assert any("boom" in (s.error.message if s.error else "") for s in failed)


def test_registry_task_records_base_and_condition(tmp_path: Path, tiny_clf: Path) -> None:
    rec = Recorder()
    (log,) = inspect_eval(
        "charbench/chat_persona",
        task_args={"personas": "humor", "prompts": "builtin", "n": 1, "classifier": str(tiny_clf)},
        model=_model(rec), log_dir=str(tmp_path), display="none",
    )
    assert log.status == "success", log.error
    meta = log.eval.metadata["charbench"]  # type: ignore[index]
    assert meta["base"] == "model" and meta["condition"] == "mockllm/model"
    assert meta["classifier"] == str(tiny_clf)


def test_explicit_base_wins_over_the_model_and_picks_its_classifier(
    tmp_path: Path, tiny_clf: Path
) -> None:
    task = chat_persona(personas="humor", prompts="builtin", n=1, classifier=str(tiny_clf),
                        base="org/my-base", condition="mine")
    meta = task.metadata["charbench"]  # type: ignore[index]
    assert (meta["base"], meta["condition"]) == ("org/my-base", "mine")
    from charbench._subject import eval_subject

    released = eval_subject("Qwen/Qwen2.5-7B-Instruct", None, None)  # no model is active
    assert released.classifier == "maius/qwen-2.5-7b-it-pt-classifier"
    assert released.base == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(ValueError, match="no released persona classifier is known for base"):
        chat_persona(personas="humor", prompts="builtin", n=1, base="org/my-base")
    with pytest.raises(ValueError, match="-T base must be a non-empty string"):
        chat_persona(personas="humor", prompts="builtin", n=1, base="  ")


def test_unsafe_prompts_reach_the_log_and_read_back(tmp_path: Path, tiny_clf: Path) -> None:
    from inspect_ai.log import read_eval_log

    prompts = tmp_path / "hostile.jsonl"
    prompts.write_text(
        '{"prompt": "lone \\ud800 x"}\n{"prompt": "nul\\u0000 byte \\u0007"}\n{"prompt": "fine"}\n',
        encoding="utf-8",
    )
    rec = Recorder()
    log = _run(
        chat_persona(personas=PERSONAS[:2], prompts=str(prompts), n=3, classifier=str(tiny_clf),
                     reuse_generations=False),
        _model(rec), tmp_path / "logs",
    )
    back = read_eval_log(log.location)
    assert back.status == "success"
    samples = back.samples or []
    assert len(samples) == 6 and all(s.error is None for s in samples)
    by_row = {s.metadata["row"]: s for s in samples}
    assert {r: s.metadata["sanitized"] for r, s in by_row.items()} == {0: 1, 1: 2, 2: 0}
    assert by_row[0].input[-1].text == "lone \ufffd x"  # type: ignore[index, union-attr]
    assert all(s.output.completion for s in samples)
    sent = {c["user"] for c in rec.calls}
    assert sent == {"lone \ufffd x", "nul\ufffd byte \ufffd", "fine"}
