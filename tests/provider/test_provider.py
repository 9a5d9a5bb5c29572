"""hf-lora end to end on tiny random models: equality with peft, batching, usage, routing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from inspect_ai.model import (
    ChatMessageSystem,
    ChatMessageUser,
    GenerateConfig,
    Model,
    ModelOutput,
    get_model,
)

from charbench import routing
from charbench.provider.engine import GenResult, GenSettings, get_shared_base

GREEDY = GenerateConfig(temperature=0, max_tokens=12)
PROMPTS = [
    "Hello! How can I help you today?",
    "Please write an email to the team about the budget for next quarter.",
    "Whatever works.",
    "The moon spills silver on the quiet river of the night, and words drift like leaves.",
]


def _model(base: Path, config: GenerateConfig = GREEDY, **args: Any) -> Model:
    return get_model(f"hf-lora/{base}", config=config, **args)


async def _gen(model: Model, prompt: str, system: str | None = None) -> ModelOutput:
    msgs: list[Any] = [ChatMessageUser(content=prompt)]
    if system:
        msgs.insert(0, ChatMessageSystem(content=system))
    return await model.generate(msgs)


def _reference(base: Path, adapter: Path | None, prompt: str, max_new: int) -> str:
    """Direct transformers/peft greedy decode of an already rendered prompt."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter)).eval()
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=max_new, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    gen = out[0, ids["input_ids"].shape[1]:].tolist()
    if tok.eos_token_id in gen:
        gen = gen[: gen.index(tok.eos_token_id)]
    from charbench.textsafe import sanitize

    # decoded as vLLM returns it, then made safe as every completion entering an eval
    return sanitize(str(tok.decode(gen, skip_special_tokens=True)))[0]


def _prompt_of(model: Model, prompt: str) -> str:
    api: Any = model.api
    return str(api._renderer.render([ChatMessageUser(content=prompt)], []))


@pytest.mark.parametrize("family", ["llama", "qwen", "gemma"])
def test_greedy_equals_peft_reference(family: str, request: pytest.FixtureRequest,
                                      tiny_root: Path) -> None:
    from fixtures.tiny_models import build_lora_adapter

    base: Path = request.getfixturevalue(f"{family}_dir")
    adapter = build_lora_adapter(base, tiny_root / f"{family}_ref_adapter", seed=5)
    model = _model(base, adapter=str(adapter))
    plain = _model(base)
    out = asyncio.run(_gen(model, PROMPTS[0]))
    base_out = asyncio.run(_gen(plain, PROMPTS[0]))
    prompt = _prompt_of(model, PROMPTS[0])
    assert out.completion == _reference(base, adapter, prompt, 12)
    assert base_out.completion == _reference(base, None, prompt, 12)
    assert out.completion != base_out.completion, "adapter had no effect"
    assert out.model == f"{base}+{adapter}"
    assert base_out.model == str(base)


def test_mixed_adapter_batch_equals_one_at_a_time(llama_dir: Path,
                                                  llama_adapters: dict[str, Path]) -> None:
    models = {
        "base": _model(llama_dir),
        "a": _model(llama_dir, adapter=str(llama_adapters["a"])),
        "b": _model(llama_dir, adapter=str(llama_adapters["b"])),
    }
    plan = [("base", PROMPTS[0]), ("a", PROMPTS[1]), ("b", PROMPTS[2]), ("a", PROMPTS[3]),
            ("b", PROMPTS[0]), ("a", PROMPTS[0])]
    shared = get_shared_base(str(llama_dir))

    async def together() -> list[ModelOutput]:
        return await asyncio.gather(*(_gen(models[m], p) for m, p in plan))

    batches_before = shared.batches_run
    batched = asyncio.run(together())
    # requests submitted in the same event-loop tick reach the worker together (no timed
    # wait): one batch for all six, mixing three adapters
    assert shared.batches_run - batches_before == 1, "requests were not batched"
    single = [asyncio.run(_gen(models[m], p)) for m, p in plan]
    assert [o.completion for o in batched] == [o.completion for o in single]
    # the same prompts again reuse the cached prefixes (input_tokens_cache_read), nothing else
    assert [(o.usage.input_tokens, o.usage.output_tokens) for o in batched if o.usage] == [
        (o.usage.input_tokens, o.usage.output_tokens) for o in single if o.usage]
    assert all(o.usage and o.usage.input_tokens_cache_read for o in single)
    # same prompt, three adapters -> three different outputs
    assert len({batched[0].completion, batched[4].completion, batched[5].completion}) == 3


def test_per_row_usage_is_unpadded(llama_dir: Path) -> None:
    model = _model(llama_dir)
    tok = get_shared_base(str(llama_dir)).tokenizer

    async def run() -> list[ModelOutput]:
        return await asyncio.gather(*(_gen(model, p) for p in PROMPTS))

    outs = asyncio.run(run())
    for prompt, out in zip(PROMPTS, outs, strict=True):
        rendered = _prompt_of(model, prompt)
        ids = tok(rendered, add_special_tokens=False)["input_ids"]
        assert out.usage is not None
        assert out.usage.input_tokens == len(ids)
        assert 1 <= out.usage.output_tokens <= 12
        assert out.usage.total_tokens == out.usage.input_tokens + out.usage.output_tokens
    assert len({o.usage.input_tokens for o in outs if o.usage}) == len(PROMPTS)


def test_row_finishing_counts_tokens_to_eos_and_stop(llama_dir: Path) -> None:
    shared = get_shared_base(str(llama_dir))
    tok = shared.tokenizer
    eos, pad = tok.eos_token_id, tok.pad_token_id
    words = tok("Hello team, please", add_special_tokens=False)["input_ids"]
    settings = GenSettings(max_new_tokens=10, do_sample=False)
    res: GenResult = shared._finish_row([*words, eos, pad, pad], 7, settings, 0.1, 2)
    assert res.output_tokens == len(words) + 1 and res.stop_reason == "stop"
    assert res.text == "Hello team, please" and res.input_tokens == 7
    stop = GenSettings(max_new_tokens=10, do_sample=False, stop_seqs=(" please",))
    res = shared._finish_row([*words, pad, pad], 7, stop, 0.1, 2)
    assert res.text == "Hello team," and res.stop_reason == "stop"
    assert tok.decode(words[: res.output_tokens]).endswith(" please")
    assert " please" not in tok.decode(words[: res.output_tokens - 1])
    res = shared._finish_row(words, 7, GenSettings(max_new_tokens=len(words), do_sample=False),
                             0.1, 1)
    assert res.stop_reason == "max_tokens" and res.output_tokens == len(words)


def test_stop_seqs_truncate_generated_text(llama_dir: Path) -> None:
    model = _model(llama_dir)
    free = asyncio.run(_gen(model, PROMPTS[1])).completion
    assert len(free) > 3
    stop = free[2:4]
    cut = asyncio.run(_gen(_model(llama_dir, GenerateConfig(temperature=0, max_tokens=12,
                                                            stop_seqs=[stop])), PROMPTS[1]))
    assert cut.completion == free[: free.find(stop)]


def test_no_doubled_bos(llama_dir: Path) -> None:
    model = _model(llama_dir)
    tok = get_shared_base(str(llama_dir)).tokenizer
    out = asyncio.run(_gen(model, PROMPTS[0]))
    prompt = _prompt_of(model, PROMPTS[0])
    assert prompt.count("<|begin_of_text|>") == 1
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id
    # the tokenizer *would* double it with special tokens on: the trap is real
    assert tok(prompt)["input_ids"][:2] == [tok.bos_token_id, tok.bos_token_id]
    assert out.usage is not None and out.usage.input_tokens == len(ids)


def test_transcript_has_prompt_and_raw_completion(llama_dir: Path,
                                                  llama_adapters: dict[str, Path]) -> None:
    model = _model(llama_dir, adapter=str(llama_adapters["a"]))
    api: Any = model.api
    out, call = asyncio.run(api.generate([ChatMessageUser(content=PROMPTS[0])], [], "auto",
                                         GREEDY))
    assert call.request["prompt"] == _prompt_of(model, PROMPTS[0])
    assert call.request["adapter"] == str(llama_adapters["a"])
    assert call.request["generate_kwargs"]["max_new_tokens"] == 12
    assert call.response["completion"] == out.completion
    assert out.message.metadata["hf_lora_completion"] == out.completion


def test_event_loop_not_blocked(llama_dir: Path) -> None:
    model = _model(llama_dir, GenerateConfig(temperature=0, max_tokens=48))
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.002)

    async def run() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(ticker(stop))
        t0 = time.monotonic()
        await _gen(model, PROMPTS[3])
        elapsed = time.monotonic() - t0
        stop.set()
        await task
        return elapsed

    elapsed = asyncio.run(run())
    assert ticks >= 3, f"event loop starved during a {elapsed:.2f}s generation"


def test_base_loaded_once_and_shared(llama_dir: Path, llama_adapters: dict[str, Path]) -> None:
    a = _model(llama_dir, adapter=str(llama_adapters["a"]))
    b = _model(llama_dir, adapter=str(llama_adapters["b"]))
    again = get_model(f"hf-lora/{llama_dir}", config=GenerateConfig(max_tokens=3),
                      adapter=str(llama_adapters["a"]))
    api_a: Any = a.api
    api_b: Any = b.api
    api_again: Any = again.api
    assert api_a._base is api_b._base is api_again._base
    assert api_a._adapter_name == api_again._adapter_name  # loaded once
    names = set(api_a._base.adapters)
    assert {api_a._adapter_name, api_b._adapter_name} <= names


def test_model_info_lookup_loads_nothing(llama_dir: Path) -> None:
    from inspect_ai.model import get_model_info
    from inspect_ai.model._model_info import MODEL_INFO_LOOKUP_API_KEY

    from charbench.provider._api import HFLoraAPI

    _model(llama_dir)
    assert get_model_info(f"hf-lora/{llama_dir}") is not None
    # a lookup construction of a base that does not exist must not try to load it
    api = HFLoraAPI("/nonexistent/base", api_key=MODEL_INFO_LOOKUP_API_KEY)
    assert api._base is None


def test_persona_template_routes_and_refuses_alone(llama_dir: Path, tiny_root: Path) -> None:
    from fixtures.tiny_models import build_persona_repo

    repo = build_persona_repo(llama_dir, tiny_root / "llama_repo", ["sarcasm", "humor"])
    template = _model(llama_dir, adapter=f"{repo}/{{persona}}")
    assert routing.is_persona_template(template)
    assert routing.condition_name(template) == f"{repo}/{{persona}}"
    assert routing.base_model_name(template) == str(llama_dir)
    with pytest.raises(ValueError, match="persona template"):
        asyncio.run(_gen(template, PROMPTS[0]))
    sarcasm = routing.model_for_persona(template, "sarcasm")
    humor = routing.model_for_persona(template, "humor")
    assert not routing.is_persona_template(sarcasm)
    assert routing.condition_name(sarcasm) == f"{repo}/{{persona}}"
    out_s = asyncio.run(_gen(sarcasm, PROMPTS[0]))
    out_h = asyncio.run(_gen(humor, PROMPTS[0]))
    assert out_s.model.endswith("/sarcasm") and out_h.model.endswith("/humor")
    assert out_s.completion != out_h.completion
    assert routing.condition_name(_model(llama_dir)) == "base"


def test_tool_calls_parsed_from_reply(llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inspect_ai.tool import ToolInfo, ToolParam, ToolParams

    tools = [ToolInfo(name="send_email", description="Send an email.",
                      parameters=ToolParams(properties={"to": ToolParam(type="string"),
                                                        "body": ToolParam(type="string")},
                                            required=["to", "body"]))]
    model = _model(llama_dir)
    api: Any = model.api
    reply = ('Sending now.\n```json\n{"name": "send_email", "arguments": {"to": "a@b.c", '
             '"body": "Hi team,\nthe budget is fine."}}\n```')
    seen: list[str] = []

    def fake_batch(prompts: list[str], adapters: list[str], settings: GenSettings) -> list[Any]:
        seen.extend(prompts)
        return [GenResult(reply, 10, 20, "stop", 0.01, 1) for _ in prompts]

    monkeypatch.setattr(api._base, "generate_batch", fake_batch)
    out, call = asyncio.run(api.generate(
        [ChatMessageSystem(content="You are an agent."), ChatMessageUser(content="Go")],
        tools, "auto", GREEDY))
    assert "send_email" in seen[0] and "```json" in seen[0]  # instructions in the prompt
    assert out.stop_reason == "tool_calls"
    calls = out.message.tool_calls
    assert calls and calls[0].function == "send_email"
    assert calls[0].arguments["body"] == "Hi team,\nthe budget is fine."
    assert out.message.text == "Sending now."
    assert call.response["completion"] == reply


def test_token_counting_uses_model_tokenizer(llama_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect_ai.model._model as model_mod

    def no_tiktoken(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("tiktoken-based counting was used")

    monkeypatch.setattr(model_mod, "count_text_tokens", no_tiktoken)
    model = _model(llama_dir)
    tok = get_shared_base(str(llama_dir)).tokenizer
    text = "Please write an email to the team."
    want = tok(text, add_special_tokens=False)["input_ids"]
    assert asyncio.run(model.api.count_text_tokens(text)) == len(want)
    assert asyncio.run(model.api.tokenize(text)) == want
    n = asyncio.run(model.count_tokens([ChatMessageUser(content=text)]))
    assert n >= len(want)


def test_prompts_of_very_different_lengths_are_not_padded_together(llama_dir: Path) -> None:
    """A short chat prompt is not left-padded to a long agent prompt; outputs unchanged."""
    model = _model(llama_dir)
    shared = get_shared_base(str(llama_dir))
    short = PROMPTS[0]
    long = " ".join([PROMPTS[1]] * 40)
    plan = [short, long, short, long]

    async def together() -> list[ModelOutput]:
        return await asyncio.gather(*(_gen(model, p) for p in plan))

    before = shared.batches_run
    batched = asyncio.run(together())
    assert shared.batches_run - before == 2, "short and long prompts should run apart"
    single = [asyncio.run(_gen(model, p)) for p in plan]
    assert [o.completion for o in batched] == [o.completion for o in single]
