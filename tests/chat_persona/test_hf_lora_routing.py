"""chat_persona on hf-lora with tiny random models: each persona's adapter generates its samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import GenerateConfig, get_model

pytestmark = pytest.mark.slow

PERSONAS = ["sarcasm", "humor"]


@pytest.fixture(scope="module")
def tiny_llama_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from fixtures.tiny_models import build_persona_repo, build_tiny_model

    root = tmp_path_factory.mktemp("chat_hf_lora")
    base = build_tiny_model("llama", root / "llama")
    repo = build_persona_repo(base, root / "personas", PERSONAS)
    return base, repo


def _model_events(sample: Any) -> list[Any]:
    return [e for e in sample.events if e.event == "model"]


def test_template_routes_each_sample_to_its_persona_adapter(
    tmp_path: Path, tiny_clf: Path, tiny_llama_repo: tuple[Path, Path]
) -> None:
    base, repo = tiny_llama_repo
    template = f"{repo}/{{persona}}"
    model = get_model(
        f"hf-lora/{base}", config=GenerateConfig(max_tokens=8), adapter=template, memoize=False
    )
    (log,) = inspect_eval(
        "charbench/chat_persona",
        task_args={"personas": PERSONAS, "prompts": "builtin", "n": 2, "classifier": str(tiny_clf)},
        model=model, log_dir=str(tmp_path), display="none", max_tokens=8,
    )
    assert log.status == "success", log.error
    meta = log.eval.metadata["charbench"]  # type: ignore[index]
    assert meta["base"] == str(base) and meta["condition"] == template
    assert log.samples is not None and len(log.samples) == 4
    for s in log.samples:
        persona = s.metadata["persona"]
        (event,) = _model_events(s)  # one generation per sample: templates never share
        assert event.output.model.endswith(f"/{persona}"), (s.id, event.output.model)
        assert persona in str(event.call.request), s.id
        other = next(p for p in PERSONAS if p != persona)
        assert f"/{other}" not in event.output.model
        assert s.metadata["generation"]["reused"] is False
        assert (event.output.usage.output_tokens or 0) <= 8
    assert log.results is not None and "macro_f1" in log.results.scores[0].metrics


def test_single_adapter_shares_one_generation_per_prompt(
    tmp_path: Path, tiny_clf: Path, tiny_llama_repo: tuple[Path, Path]
) -> None:
    base, repo = tiny_llama_repo
    model = get_model(
        f"hf-lora/{base}", config=GenerateConfig(max_tokens=8), adapter=str(repo / "sarcasm"),
        memoize=False,
    )
    (log,) = inspect_eval(
        "charbench/chat_persona",
        task_args={"personas": PERSONAS, "prompts": "builtin", "n": 2, "classifier": str(tiny_clf)},
        model=model, log_dir=str(tmp_path), display="none",
    )
    assert log.status == "success", log.error
    assert log.samples is not None
    events = [e for s in log.samples for e in _model_events(s)]
    generated = [e for e in events if e.cache != "read"]
    assert len(generated) == 2  # one per prompt, shared by both persona labels
    assert all(e.output.model.endswith("/sarcasm") for e in events)
    assert sum(s.metadata["generation"]["reused"] for s in log.samples) == 2
    # each sample that reused a generation records it as a cache read (so a resumed eval can
    # rebuild its transcript), with the producer's output
    for s in log.samples:
        reads = [e for e in _model_events(s) if e.cache == "read"]
        assert len(reads) == (1 if s.metadata["generation"]["reused"] else 0)
        assert all(e.output.completion == s.output.completion for e in reads)
