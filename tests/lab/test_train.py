"""The lab's trainer wiring: TRL on a tiny random chat model, a few steps, real weights.

A tiny model trained a few steps must change its LoRA weights (peft initialises B to zero,
so an untrained adapter is the base exactly) and its greedy output; the same seed must give
the same weights; the saved directory must be a standard peft adapter.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from charbench.lab.train import CPU_SETTINGS, AdapterSettings, PreferencePair, train_adapter

PROMPTS = ["How do I keep bread fresh?", "What is a good name for a boat?",
           "Why is the sky blue?", "How should I start a journal?"]

FAST = replace(CPU_SETTINGS, epochs=4.0, lr=2e-2, rank=4, alpha=8, batch_size=2,
               micro_batch=2, max_length=64, warmup_ratio=0.0)
"""A few large steps: enough to move a tiny model's greedy reply."""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures.tiny_models import build_tiny_model

    return build_tiny_model("qwen2", tmp_path_factory.mktemp("train") / "qwen2")


def _pairs() -> list[PreferencePair]:
    return [PreferencePair(f"p{i}", q, "arr arr matey arr ship ahoy arr", "A plain answer.")
            for i, q in enumerate(PROMPTS)]


def _greedy(base: Path, adapter: Path | None, prompt: str) -> list[int]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    ids = tok.apply_chat_template([{"role": "user", "content": prompt}],
                                  add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)
    with torch.inference_mode():
        out = model.eval().generate(**ids, max_new_tokens=8, do_sample=False,
                                    pad_token_id=tok.pad_token_id)
    return [int(t) for t in out[0, ids["input_ids"].shape[1]:]]


def _lora_b(adapter: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(adapter / "adapter_model.safetensors")).items()
            if "lora_B" in k}


@pytest.mark.parametrize("method", ["dpo", "sft"])
def test_a_few_steps_change_the_adapter_and_the_greedy_reply(
        tiny: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / "adapter"
    result = train_adapter(str(tiny), _pairs(), out, replace(FAST, method=method))  # type: ignore[arg-type]
    assert result.steps == 8 and result.pairs == 4
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny)
    assert config["r"] == 4 and config["lora_alpha"] == 8 and config["peft_type"] == "LORA"
    assert not (out.with_name("adapter.partial")).exists()
    record = json.loads((out / "training.json").read_text())
    assert record["settings"]["method"] == method and record["steps"] == 8
    # every LoRA B moved away from peft's zero initialisation
    b = _lora_b(out)
    assert b and all(float(t.abs().max()) > 0 for t in b.values())
    # and the model answers differently
    assert any(_greedy(tiny, out, q) != _greedy(tiny, None, q) for q in PROMPTS)


def test_the_same_seed_gives_the_same_weights(tiny: Path, tmp_path: Path) -> None:
    settings = replace(FAST, epochs=1.0)
    one = train_adapter(str(tiny), _pairs(), tmp_path / "one", settings)
    two = train_adapter(str(tiny), _pairs(), tmp_path / "two", settings)
    other = train_adapter(str(tiny), _pairs(), tmp_path / "other", replace(settings, seed=1))
    a, b, c = _lora_b(one.out), _lora_b(two.out), _lora_b(other.out)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_bad_settings_and_inputs_fail_before_loading(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of --micro-batch"):
        train_adapter(str(tiny), _pairs(), tmp_path / "a", replace(FAST, batch_size=3))
    with pytest.raises(ValueError, match="--method"):
        AdapterSettings(method="ppo").check()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="--lr must be positive"):
        replace(FAST, lr=0.0).check()
    with pytest.raises(ValueError, match="no distillation pairs"):
        train_adapter(str(tiny), [], tmp_path / "b", FAST)
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match="exists"):
        train_adapter(str(tiny), _pairs(), tmp_path / "c", FAST)


def test_pair_records_use_trl_conventional_formats() -> None:
    pair = _pairs()[0]
    dpo, sft = pair.dpo_record(), pair.sft_record()
    assert dpo["prompt"] == [{"role": "user", "content": PROMPTS[0]}]
    assert dpo["chosen"][0] == {"role": "assistant", "content": pair.chosen}
    assert dpo["rejected"][0] == {"role": "assistant", "content": pair.rejected}
    assert [m["role"] for m in sft["messages"]] == ["user", "assistant"]
    assert sft["messages"][1]["content"] == pair.chosen
