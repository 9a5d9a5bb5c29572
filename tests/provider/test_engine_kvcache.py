"""Prefix KV reuse: identical greedy outputs with reuse on and off, fewer tokens computed,
bounded memory, no reuse across adapters."""

from __future__ import annotations

from pathlib import Path

import pytest

from charbench.provider import kvcache
from charbench.provider.engine import GenResult, GenSettings, SharedBase, get_shared_base

SYSTEM = ("System: you are an operations agent for Acme. Tools: lookup_contact, send_email, "
          "list_calendar. Answer with one fenced JSON call per turn. ")
OPENERS = ["User: write to Ama about the budget.", "User: cancel the Friday sync.",
           "User: thank Lee for the launch.", "User: ask Sam about the vendor renewal."]
GREEDY = GenSettings(max_new_tokens=8, do_sample=False)


def _conversations(base: SharedBase, adapters: list[str], turns: int) -> list[list[GenResult]]:
    """Run ``len(OPENERS)`` conversations for ``turns`` turns, each turn as one batch."""
    prompts = [SYSTEM + o for o in OPENERS]
    history: list[list[GenResult]] = [[] for _ in prompts]
    for turn in range(turns):
        results = base.generate_batch(prompts, adapters, GREEDY)
        for k, res in enumerate(results):
            assert isinstance(res, GenResult)
            history[k].append(res)
            prompts[k] += res.text + f" Tool output {turn}: ok. "
    return history


def _outputs(history: list[list[GenResult]]) -> list[list[tuple[str | None, int]]]:
    return [[(r.raw_text, r.output_tokens) for r in conv] for conv in history]


@pytest.fixture
def base(llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> SharedBase:
    shared = get_shared_base(str(llama_dir), device="cpu")
    monkeypatch.setattr(shared, "prefix_cache", kvcache.PrefixCache(64 * 2**20))
    return shared


def test_reuse_on_equals_reuse_off_token_for_token(base: SharedBase,
                                                   llama_adapters: dict[str, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    a = base.ensure_adapter(str(llama_adapters["a"])).name
    b = base.ensure_adapter(str(llama_adapters["b"])).name
    adapters = [a, b, "__base__", a]  # mixed adapters in every batch
    cache = base.prefix_cache
    assert cache is not None
    on = _conversations(base, adapters, turns=4)
    monkeypatch.setattr(base, "prefix_cache", None)
    off = _conversations(base, adapters, turns=4)
    assert _outputs(on) == _outputs(off)
    assert [[r.input_tokens for r in c] for c in on] == [[r.input_tokens for r in c] for c in off]
    # later turns start from the previous turn's tensors
    # rows 0 and 3 (adapter a) arrive together: their shared system prompt is computed once
    assert on[0][0].cached_tokens == on[3][0].cached_tokens >= len(SYSTEM) // 2
    assert on[1][0].cached_tokens == on[2][0].cached_tokens == 0
    for conv in on:
        assert all(r.cached_tokens > r.input_tokens // 2 for r in conv[1:])
    assert cache.stats.computed < cache.stats.submitted / 2
    assert all(r.cached_tokens == 0 for c in off for r in c)


def test_a_shared_system_prompt_is_computed_once_per_adapter(
        base: SharedBase, llama_adapters: dict[str, Path]) -> None:
    a = base.ensure_adapter(str(llama_adapters["a"])).name
    b = base.ensure_adapter(str(llama_adapters["b"])).name
    [first] = base.generate_batch([SYSTEM + OPENERS[0]], [a], GREEDY)
    [same, other] = base.generate_batch([SYSTEM + OPENERS[1]] * 2, [a, b], GREEDY)
    assert isinstance(first, GenResult) and isinstance(same, GenResult)
    assert isinstance(other, GenResult)
    n_system = len(base.tokenizer(SYSTEM, add_special_tokens=False)["input_ids"])
    assert same.cached_tokens >= n_system - 1
    assert other.cached_tokens == 0  # another adapter's tensors are never reused
    # reused and recomputed rows agree
    base.prefix_cache = None
    [ref_a, ref_b] = base.generate_batch([SYSTEM + OPENERS[1]] * 2, [a, b], GREEDY)
    assert isinstance(ref_a, GenResult) and isinstance(ref_b, GenResult)
    assert (same.raw_text, other.raw_text) == (ref_a.raw_text, ref_b.raw_text)


def test_memory_is_bounded_and_extended_entries_supersede(base: SharedBase) -> None:
    cache = base.prefix_cache
    assert cache is not None
    _conversations(base, ["__base__"] * 4, turns=3)
    assert len(cache) == 4  # one entry per conversation: older turns superseded
    per_entry = cache.nbytes / len(cache)
    small = kvcache.PrefixCache(int(per_entry * 2.5))
    base.prefix_cache = small
    _conversations(base, ["__base__"] * 4, turns=2)
    assert small.nbytes <= small.max_bytes and small.peak_bytes <= small.max_bytes
    assert small.stats.evicted > 0 and len(small) <= 2


def test_lookup_leaves_one_token_to_compute() -> None:
    import torch

    cache = kvcache.PrefixCache(2**20)
    keys = [torch.zeros(2, 5, 4)]
    cache.store("a", [1, 2, 3, 4, 5], 3, keys, [torch.zeros(2, 5, 4)])
    assert cache.lookup("a", [1, 2, 3, 4, 5]).length == 4
    assert cache.lookup("a", [1, 2, 3, 9, 9, 9]).length == 3
    assert cache.lookup("b", [1, 2, 3, 4, 5]).length == 0
    assert cache.lookup("a", [7]).length == 0
    cache.drop_adapter("a")
    assert len(cache) == 0 and cache.nbytes == 0


def test_sliding_window_models_do_not_reuse(gemma_dir: Path, llama_dir: Path) -> None:
    from transformers import AutoConfig

    assert kvcache.supports_reuse(AutoConfig.from_pretrained(llama_dir))
    assert not kvcache.supports_reuse(AutoConfig.from_pretrained(gemma_dir))
    assert get_shared_base(str(gemma_dir), device="cpu").prefix_cache is None


def test_shared_prefixes_picks_each_long_shared_prefix_once() -> None:
    n = kvcache.MIN_SHARED_TOKENS
    system = list(range(100, 100 + 2 * n))
    rows = [[*system, 1, 2], [*system, 1, 3], [*system, 7], [*system, 8], [*system, 9]]
    adapters = ["a", "a", "a", "b", "b"]
    fresh = [True] * 5
    picked = kvcache.shared_prefixes(rows, adapters, [0] * 5, fresh)
    # rows 0 and 1 share system + [1]: computing it covers row 2's shorter share too
    assert picked == [("a", [*system, 1]), ("b", system)]
    # an adapter's prefix is never shared with another adapter's rows
    assert kvcache.shared_prefixes(rows[2:4], adapters[2:4], [0, 0], [True, True]) == []
    # rows resumed between chunks, or whose cached part already covers the share, are left
    assert kvcache.shared_prefixes(rows, adapters, [0] * 5, [True, False, True, False, False]) \
        == [("a", system)]
    assert kvcache.shared_prefixes(rows, adapters, [len(system) - n + 2] * 5, fresh) == []
    # identical prompts share all but their last token
    assert kvcache.shared_prefixes([system, system], ["a", "a"], [0, 0], [True, True]) == [
        ("a", system[:-1])]


def test_rows_arriving_together_compute_their_shared_prefix_once(
        base: SharedBase, llama_adapters: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    a = base.ensure_adapter(str(llama_adapters["a"])).name
    b = base.ensure_adapter(str(llama_adapters["b"])).name
    system = SYSTEM * 6
    prompts = [system + o for o in OPENERS]
    adapters = [a, a, a, b]
    ids = [base.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    shared = next(k for k in range(len(ids[0])) if ids[0][k] != ids[1][k])
    assert shared >= kvcache.MIN_SHARED_TOKENS + 10
    cache = base.prefix_cache
    assert cache is not None
    on = base.generate_batch(prompts, adapters, GREEDY)
    assert all(isinstance(r, GenResult) for r in on)
    # adapter a's shared prefix once, then only each row's own suffix; b's row alone
    suffixes = sum(len(r) - shared for r in ids[:3])
    assert cache.stats.computed == shared + suffixes + len(ids[3])
    assert cache.stats.submitted == sum(len(r) for r in ids)
    assert [r.cached_tokens for r in on if isinstance(r, GenResult)] == [shared] * 3 + [0]
    monkeypatch.setattr(base, "prefix_cache", None)
    off = base.generate_batch(prompts, adapters, GREEDY)
    assert [(r.raw_text, r.output_tokens) for r in on if isinstance(r, GenResult)] == [
        (r.raw_text, r.output_tokens) for r in off if isinstance(r, GenResult)]


def test_reserved_layer_matches_concatenation_and_grows() -> None:
    import torch
    from transformers.cache_utils import DynamicLayer

    torch.manual_seed(0)
    steps = [torch.randn(2, 3, n, 4) for n in (5, 1, 1, 3, 1)]
    reserved, plain = kvcache.ReservedLayer(capacity=7), DynamicLayer()
    storage = []
    for k in steps:
        got, want = reserved.update(k, -k), plain.update(k, -k)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        assert reserved.get_seq_length() == plain.get_seq_length()
        storage.append(got[0].data_ptr())
    # within the reserved room every step writes in place (no copy of the cache per step)
    assert storage[0] == storage[1] == storage[2] and storage[3] != storage[2]
    assert reserved.get_seq_length() == 11  # past the capacity of 7: the room doubled
    # transformers replacing the tensors (crop, batch selection) is adopted, not lost
    reserved.crop(-2)
    plain.crop(-2)
    k = torch.randn(2, 3, 1, 4)
    got, want = reserved.update(k, k), plain.update(k, k)
    assert torch.equal(got[0], want[0]) and reserved.get_seq_length() == 10
