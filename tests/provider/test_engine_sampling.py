"""hf-lora's engine: explicit knobs, per-request seeded sampling, clean decoding, bad rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from charbench.provider.batchgen import RowError
from charbench.provider.engine import GenResult, GenSettings, SharedBase, get_shared_base
from charbench.provider.sampling import RowSampler, SeedBook, request_seed

PROMPTS = [
    "Hello! How can I help you today?",
    "Please write an email to the team about the budget.",
    "The moon spills silver on the quiet river.",
    "Whatever works for you works for me, honestly.",
]
SAMPLED = GenSettings(max_new_tokens=10, do_sample=True, temperature=1.0, seed=7)


def _peft_greedy(base: Path, adapter: Path, prompt_ids: list[int], max_new: int,
                 **knobs: Any) -> list[int]:
    """peft greedy decode of ``prompt_ids``, cut before the first EOS."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    model = PeftModel.from_pretrained(model, str(adapter)).eval()
    ids = torch.tensor([prompt_ids])
    eos = model.generation_config.eos_token_id
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                             max_new_tokens=max_new, **knobs)
    gen = [int(t) for t in out[0, ids.shape[1]:]]
    return gen[: gen.index(eos)] if eos in gen else gen


def test_generation_config_defaults_never_apply(llama_dir: Path, tiny_root: Path,
                                                llama_adapters: dict[str, Path]) -> None:
    """A base whose generation_config.json sets a repetition penalty, a top-k and an n-gram
    ban generates, greedy, exactly what the same adapter gives with none of them."""
    from transformers import AutoTokenizer

    penalised = tiny_root / "llama_penalised"
    if not penalised.exists():
        shutil.copytree(llama_dir, penalised)
    cfg_path = penalised / "generation_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(repetition_penalty=3.0, top_k=2, no_repeat_ngram_size=1)
    cfg_path.write_text(json.dumps(cfg))
    tok = AutoTokenizer.from_pretrained(llama_dir)
    prompt_ids = tok(PROMPTS[0], add_special_tokens=False)["input_ids"]
    n = 24
    adapter = llama_adapters["a"]
    want = _peft_greedy(llama_dir, adapter, prompt_ids, n, do_sample=False)
    # the trap is real: left unset, transformers applies the file's knobs
    trapped = _peft_greedy(penalised, adapter, prompt_ids, n)
    assert trapped != want

    base = get_shared_base(str(penalised), device="cpu")
    name = base.ensure_adapter(str(adapter)).name
    [res] = base.generate_batch([PROMPTS[0]], [name], GenSettings(max_new_tokens=n,
                                                                 do_sample=False))
    assert isinstance(res, GenResult)
    assert res.raw_text == tok.decode(want, skip_special_tokens=False)
    assert base.original_generation_config.repetition_penalty == 3.0  # kept for reference


def _sampled(base: SharedBase, name: str, prompts: list[str],
             settings: GenSettings = SAMPLED) -> list[GenResult]:
    futures = [base.submit(p, name, settings, 64) for p in prompts]
    return [f.result(60) for f in futures]


def test_sampling_does_not_depend_on_batch_mates(llama_dir: Path,
                                                 llama_adapters: dict[str, Path]) -> None:
    base = get_shared_base(str(llama_dir), device="cpu")
    name = base.ensure_adapter(str(llama_adapters["a"])).name
    seeds = [request_seed(7, f"k{i}") for i in range(len(PROMPTS))]
    together = base.generate_batch(PROMPTS, [name] * len(PROMPTS), SAMPLED, seeds)
    alone = [base.generate_batch([p], [name], SAMPLED, [s])[0] for p, s in zip(
        PROMPTS, seeds, strict=True)]
    shuffled = base.generate_batch(PROMPTS[::-1], [name] * len(PROMPTS), SAMPLED, seeds[::-1])
    texts = [r.text for r in together if isinstance(r, GenResult)]
    assert texts == [r.text for r in alone if isinstance(r, GenResult)]
    assert texts == [r.text for r in shuffled[::-1] if isinstance(r, GenResult)]
    other = base.generate_batch(PROMPTS[:1], [name], SAMPLED, [seeds[0] + 1])[0]
    assert isinstance(other, GenResult) and other.text != texts[0], "seed had no effect"


def test_repeated_request_is_a_new_draw_and_runs_reproduce(
        llama_dir: Path, llama_adapters: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    base = get_shared_base(str(llama_dir), device="cpu")
    name = base.ensure_adapter(str(llama_adapters["a"])).name
    monkeypatch.setattr(base, "_seeds", SeedBook())
    first = _sampled(base, name, [PROMPTS[1], PROMPTS[1]])
    assert first[0].seed != first[1].seed and first[0].text != first[1].text
    monkeypatch.setattr(base, "_seeds", SeedBook())  # a fresh run with the same --seed
    again = _sampled(base, name, [PROMPTS[1], PROMPTS[1]])
    assert [r.text for r in again] == [r.text for r in first]
    other_seed = _sampled(base, name, [PROMPTS[1]],
                          GenSettings(max_new_tokens=10, do_sample=True, temperature=1.0, seed=8))
    assert other_seed[0].seed not in {first[0].seed, first[1].seed}


def test_row_sampler_respects_top_k_and_top_p() -> None:
    scores = torch.tensor([[4.0, 3.0, 1.0, 0.0, -1.0]] * 2)
    k2 = RowSampler([1, 2], 1.0, None, 2, "cpu")
    seen = set()
    for _ in range(200):
        out = k2(None, scores)
        seen |= set(out.argmax(dim=-1).tolist())
        assert torch.isfinite(out).sum(dim=-1).tolist() == [1, 1]
    assert seen == {0, 1}
    # p=0.5: the top token alone holds more than half the mass -> always token 0
    p = RowSampler([3], 1.0, 0.5, None, "cpu")
    assert {int(p(None, scores[:1]).argmax()) for _ in range(50)} == {0}
    with pytest.raises(ValueError, match="temperature"):
        RowSampler([1], 0.0, None, None, "cpu")


def test_a_row_that_cannot_be_encoded_fails_alone(llama_dir: Path) -> None:
    base = get_shared_base(str(llama_dir), device="cpu")
    settings = GenSettings(max_new_tokens=6, do_sample=False)
    prompts = [PROMPTS[0], "broken \ud800 prompt", PROMPTS[2]]
    futures = [base.submit(p, "__base__", settings, 64) for p in prompts]
    with pytest.raises(RowError, match="could not be tokenized"):
        futures[1].result(60)
    alone = [base.generate_batch([p], ["__base__"], settings)[0] for p in (prompts[0],
                                                                            prompts[2])]
    assert [futures[0].result(60).text, futures[2].result(60).text] == [
        r.text for r in alone if isinstance(r, GenResult)]


def test_a_failing_batch_is_rerun_row_by_row(llama_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    base = get_shared_base(str(llama_dir), device="cpu")
    real = base.generate_batch

    def flaky(prompts: list[str], adapters: list[str], settings: GenSettings,
              *rest: Any) -> list[GenResult | Exception]:
        if any("poison" in p for p in prompts):
            raise RuntimeError("out of memory")
        return real(prompts, adapters, settings, *rest)

    monkeypatch.setattr(base, "generate_batch", flaky)
    settings = GenSettings(max_new_tokens=4, do_sample=False)
    futures = [base.submit(p, "__base__", settings, 64)
               for p in (PROMPTS[0], "poison " + PROMPTS[0][:20], PROMPTS[3])]
    with pytest.raises(RuntimeError, match="out of memory"):
        futures[1].result(60)
    assert futures[0].result(60).output_tokens >= 1
    assert futures[2].result(60).output_tokens >= 1


def test_completion_is_decoded_without_special_tokens_and_sanitized(llama_dir: Path) -> None:
    base = get_shared_base(str(llama_dir), device="cpu")
    tok = base.tokenizer
    words = tok("Hi team", add_special_tokens=False)["input_ids"]
    ctrl = tok("a\x01b", add_special_tokens=False)["input_ids"]
    gen = [tok.bos_token_id, *words, tok.bos_token_id, *ctrl, tok.eos_token_id]
    res = base._finish_row(gen, 3, GenSettings(max_new_tokens=20, do_sample=False), 0.0, 1)
    assert res.text == "Hi team" + "a\ufffdb"
    assert res.sanitized == 1
    assert res.raw_text is not None and res.raw_text.count("<|begin_of_text|>") == 2
    assert "\x01" in res.raw_text
    assert res.stop_reason == "stop" and res.output_tokens == len(gen)


def test_add_special_tokens_adds_the_tokenizers_bos(llama_dir: Path) -> None:
    base = get_shared_base(str(llama_dir), device="cpu")
    plain = GenSettings(max_new_tokens=3, do_sample=False)
    vllm = GenSettings(max_new_tokens=3, do_sample=False, add_special_tokens=True)
    prompt = "<|begin_of_text|>" + PROMPTS[0]
    [a] = base.generate_batch([prompt], ["__base__"], plain)
    [b] = base.generate_batch([prompt], ["__base__"], vllm)
    assert isinstance(a, GenResult) and isinstance(b, GenResult)
    assert b.input_tokens == a.input_tokens + 1  # BOS doubled, as vLLM did
    assert plain.generate_kwargs()["add_special_tokens"] is False
    assert vllm.generate_kwargs()["add_special_tokens"] is True


def test_logged_knobs_are_the_effective_ones() -> None:
    greedy = GenSettings(max_new_tokens=5, do_sample=False, temperature=0.7, top_k=20)
    assert greedy.generate_kwargs() == {"max_new_tokens": 5, "do_sample": False,
                                        "repetition_penalty": 1.0, "add_special_tokens": False}
    study = GenSettings(max_new_tokens=512, do_sample=True, temperature=0.7, top_p=0.95)
    assert study.generate_kwargs()["top_k"] == 0  # no top-k unless asked for
    assert study.generate_kwargs()["repetition_penalty"] == 1.0
    assert GenSettings(max_new_tokens=5, do_sample=True, temperature=0).effective_temperature() \
        is None
