"""Chunked decoding: unfinished rows rejoin the queue between chunks, outputs unchanged."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from charbench.provider import kvcache
from charbench.provider.engine import GenResult, GenSettings, SharedBase, get_shared_base
from charbench.provider.sampling import SeedBook

PROMPTS = [
    "Hello! How can I help you today? I would like a long and careful answer please.",
    "Please write an email to the team about the budget for the next quarter, in detail.",
    "The moon spills silver on the quiet river of the night, and the words drift slowly.",
]


@pytest.fixture
def base(llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> SharedBase:
    shared = get_shared_base(str(llama_dir), device="cpu")
    monkeypatch.setattr(shared, "prefix_cache", kvcache.PrefixCache(64 * 2**20))
    # every row runs its full length: no EOS for the engine, nor for transformers' generate
    # (without this, generate pads a row after a sampled EOS inside a chunk, while a row
    # whose chunk ends on that EOS is resumed: the outputs would differ by the test's setup)
    monkeypatch.setattr(shared, "eos_ids", frozenset())
    for model in {id(m): m for m in (shared.model, getattr(shared, "peft", None)) if m}.values():
        monkeypatch.setattr(model.generation_config, "eos_token_id", None)
    monkeypatch.setattr(shared, "_seeds", SeedBook())
    return shared


def _run(base: SharedBase, adapters: list[str], settings: GenSettings) -> list[GenResult]:
    """Submit the prompts in one event-loop tick, so they reach the worker as one batch
    (thread-side ``submit`` calls can race the worker, which may start with the first)."""

    async def burst() -> list[Any]:
        futures = [base.submit_async(p, a, settings, 64)
                   for p, a in zip(PROMPTS, adapters, strict=True)]
        await asyncio.sleep(0)  # the tick ends: the burst is flushed to the worker together
        return futures

    return [f.result(120) for f in asyncio.run(burst())]


@pytest.mark.parametrize("sampled", [False, True])
def test_chunked_equals_unchunked_token_for_token(base: SharedBase, sampled: bool,
                                                  llama_adapters: dict[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    a = base.ensure_adapter(str(llama_adapters["a"])).name
    adapters = [a, "__base__", a]
    settings = GenSettings(max_new_tokens=11, do_sample=sampled, temperature=1.0, seed=3)
    monkeypatch.setattr(base, "decode_chunk", 3)
    rounds = base.batches_run
    chunked = _run(base, adapters, settings)
    assert base.batches_run - rounds == 4  # ceil(11 / 3) chunks of one batch
    monkeypatch.setattr(base, "decode_chunk", 0)
    monkeypatch.setattr(base, "_seeds", SeedBook())  # the same request seeds again
    whole = _run(base, adapters, settings)
    assert [(r.raw_text, r.output_tokens, r.input_tokens, r.stop_reason) for r in chunked] == [
        (r.raw_text, r.output_tokens, r.input_tokens, r.stop_reason) for r in whole]
    assert all(r.output_tokens == 11 for r in chunked)
    if sampled:
        assert [r.seed for r in chunked] == [r.seed for r in whole]


def test_a_late_request_joins_at_the_next_chunk(base: SharedBase,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settings = GenSettings(max_new_tokens=60, do_sample=False)
    monkeypatch.setattr(base, "decode_chunk", 2)
    before = base.batches_run
    first = base.submit(PROMPTS[0], "__base__", settings, 64)
    deadline = time.monotonic() + 60
    while base.batches_run == before and time.monotonic() < deadline:
        time.sleep(0.005)
    late = base.submit(PROMPTS[1], "__base__", settings, 64)
    got_first, got_late = first.result(120), late.result(120)
    assert got_late.batch_size == 2, "the late request did not join the running one"
    assert got_first.batch_size == 2
    monkeypatch.setattr(base, "decode_chunk", 0)
    [alone_first, alone_late] = [base.submit(p, "__base__", settings, 64).result(120)
                                 for p in PROMPTS[:2]]
    assert (got_first.raw_text, got_late.raw_text) == (alone_first.raw_text,
                                                       alone_late.raw_text)
    assert alone_first.batch_size == 1


def test_no_chunking_when_the_rows_would_not_stay_cached(base: SharedBase,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    settings = GenSettings(max_new_tokens=11, do_sample=False)
    monkeypatch.setattr(base, "decode_chunk", 3)
    _run(base, ["__base__"] * 3, settings)  # measures the bytes per token
    cache = base.prefix_cache
    assert cache is not None and cache.bytes_per_token > 0
    # the three rows need about 3 x 40 tokens: a budget for 100 tokens cannot hold them
    monkeypatch.setattr(cache, "max_bytes", int(100 * cache.bytes_per_token))
    rounds = base.batches_run
    results = _run(base, ["__base__"] * 3, settings)
    assert base.batches_run - rounds == 1, "chunked although the rows would be evicted"
    assert all(r.output_tokens == 11 for r in results)
