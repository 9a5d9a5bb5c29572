"""Request intake and batch scheduling of a shared base (mixed into :class:`SharedBase`).

Requests reach one worker thread through a :class:`charbench._batcher.MicroBatcher`. Each
round serves the oldest request and every queued request that may share its batch (equal
settings, similar prompt length), up to ``max_batch_size`` rows, in one left-padded
``generate`` that mixes adapters per row (peft's ``adapter_names``).

**Chunked decoding (joining at chunk boundaries).** A static batch runs to its longest row,
and requests that arrive meanwhile wait. With prefix reuse on, a batch decodes at most
``decode_chunk`` tokens per round (default 64); a row that is not finished goes back to the
front of the queue with its token ids, its sampling generator and its clock, and the next
round batches it with whatever arrived meanwhile. Resuming costs one token of prefill: the
row's key/value tensors were stored by :mod:`charbench.provider.kvcache` at the end of the
chunk. Outputs equal unchunked decoding token for token (reuse is exact; the generator and
the repetition-penalty context carry over), which a test checks. This is iteration-level
batching at chunk granularity: a newcomer waits at most one chunk, not a whole batch. When
a batch's rows would need more than half the prefix-cache budget (``-M kv_cache_mb``) they
would evict one another between chunks, so such a batch decodes to the end in one go. Why
not transformers' continuous-batching manager: see :mod:`charbench.provider.engine`.

**Regrouping.** Callers answered in one batch come back one by one (each runs its tool and
renders its next prompt first); a round smaller than the previous one waits up to
:data:`REGROUP_S` for them, so rollouts that shared a batch keep sharing one.

**Failures stay with their row.** Rows are encoded one by one (a prompt the tokenizer
rejects fails alone); if a batched ``generate`` raises, each row is rerun on its own so
only the failing row's caller gets the error.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from charbench._batcher import MicroBatcher, Pending
from charbench.provider import batchgen, kvcache
from charbench.provider.batchgen import RowError
from charbench.provider.errors import HFLoraError
from charbench.provider.gentypes import GenResult, GenSettings
from charbench.provider.sampling import (
    SeedBook,
    active_sample_key,
    prompt_digest,
    request_seed,
)

if TYPE_CHECKING:
    import threading

logger = logging.getLogger(__name__)

BASE_ADAPTER = "__base__"
"""peft's per-row name for 'no adapter'."""

DEFAULT_DECODE_CHUNK = 64
"""Tokens a batch decodes before unfinished rows rejoin the queue (with prefix reuse on)."""

REGROUP_S = 0.25
"""How long a round waits for the callers answered by the previous round to come back (the
next turns of agent rollouts that shared a batch), so they stay one batch instead of
splitting (see :class:`charbench._batcher.MicroBatcher`). Only a round smaller than the
previous one waits, and only until it is as large again."""

BATCH_LENGTH_RATIO = 2.0
"""Longest/shortest prompt (in characters) allowed in one batch, relative to its oldest
request. Left padding makes every row cost the longest row's length: without this bound a
60-token chat prompt batched with a 3,000-token agent prompt costs 50x its own work."""


@dataclass
class Resume:
    """The decoding state of a row between chunks."""

    ids: list[int]
    """Prompt and generated token ids so far."""
    prompt_len: int
    generator: Any | None
    """The row's sampling generator (None when greedy), carried on between chunks."""
    started: float
    cached_tokens: int
    batch_size: int
    seed: int | None = None
    """The seed the generator started from (reported in the result)."""


@dataclass(frozen=True)
class _Request:
    prompt: str
    adapter: str
    settings: GenSettings
    max_batch_size: int
    seed: int | None = None
    """This row's sampling seed (:func:`~charbench.provider.sampling.request_seed`)."""
    resume: Resume | None = None

    def length(self) -> int:
        """Approximate size in characters: the prompt, plus 4 per token generated so far."""
        if self.resume is None:
            return len(self.prompt)
        return len(self.prompt) + 4 * (len(self.resume.ids) - self.resume.prompt_len)


def _batchable(head: _Request, other: _Request) -> bool:
    """Whether ``other`` may share a batch with ``head`` (same settings, similar length)."""
    if other.settings != head.settings:
        return False
    a, b = max(head.length(), 1), max(other.length(), 1)
    return max(a, b) / min(a, b) <= BATCH_LENGTH_RATIO


Entry = Pending[_Request, GenResult]
RowOutcome = GenResult | Exception | Resume


class BatchScheduler:
    """The generation half of :class:`~charbench.provider.engine.SharedBase` (a mixin)."""

    name: str
    device: str
    tokenizer: Any
    model: Any
    peft: Any
    adapters: dict[str, Any]
    eos_ids: frozenset[int]
    pad_id: int
    lock: threading.RLock
    tokenizer_lock: threading.RLock
    prefix_cache: kvcache.PrefixCache | None
    decode_chunk: int
    batches_run: int
    rows_run: int

    def _init_scheduler(self, decode_chunk: int) -> None:
        self._intake: MicroBatcher[_Request, GenResult] = MicroBatcher(
            self._serve_round, f"hf-lora-worker:{self.name}", regroup_s=REGROUP_S)
        self._seeds = SeedBook()
        self.decode_chunk = max(0, int(decode_chunk))
        self.batches_run = 0
        self.rows_run = 0

    def submit(self, prompt: str, adapter: str, settings: GenSettings,
               max_batch_size: int) -> Any:
        """Queue one generation request; the worker batches it with whatever is queued.

        A sampled request gets its own seed here (:func:`request_seed` of the settings'
        seed and the request's key: the active Inspect sample and epoch, the adapter, a
        hash of the prompt and how often this exact request was made before).

        Returns:
            A ``concurrent.futures.Future`` of the :class:`GenResult`.
        """
        return self._intake.submit(self._request(prompt, adapter, settings, max_batch_size))

    def submit_async(self, prompt: str, adapter: str, settings: GenSettings,
                     max_batch_size: int) -> Any:
        """Like :meth:`submit`, from a running asyncio loop, coalescing one loop tick.

        Requests submitted by coroutines that run in the same event-loop iteration (Inspect
        starting many samples at once) reach the worker together (see
        :meth:`charbench._batcher.MicroBatcher.submit_in_loop`).
        """
        req = self._request(prompt, adapter, settings, max_batch_size)
        return self._intake.submit_in_loop(req)

    def close(self) -> None:
        """Stop this base's worker (queued requests are served first; later ones fail)."""
        self._intake.close()

    def _request(self, prompt: str, adapter: str, settings: GenSettings,
                 max_batch_size: int) -> _Request:
        if adapter != BASE_ADAPTER and adapter not in self.adapters:
            raise HFLoraError(f"hf-lora: adapter {adapter!r} is not loaded on {self.name}.")
        seed = None
        if settings.effective_temperature() is not None:
            key = f"{active_sample_key()}|{adapter}|{prompt_digest(prompt)}"
            seed = request_seed(settings.seed, f"{key}|{self._seeds.attempt(key)}")
        return _Request(prompt=prompt, adapter=adapter, settings=settings,
                        max_batch_size=max(1, int(max_batch_size)), seed=seed)

    # ----------------------------------------------------------------- rounds

    def _serve_round(self, pending: list[Entry]) -> list[Entry]:
        """Serve the oldest request and what may share its batch; keep the rest.

        Rows that are not finished after their chunk come back first in the leftovers.
        """
        head = pending[0].item  # the oldest request is always served: no starvation
        batch = [e for e in pending if _batchable(head, e.item)][: head.max_batch_size]
        taken = {id(e) for e in batch}
        resumed = self._serve_batch(batch)
        return resumed + [e for e in pending if id(e) not in taken]

    def _serve_batch(self, batch: list[Entry]) -> list[Entry]:
        """Run one batch; a failure reaches only the rows it belongs to.

        Returns:
            The entries to resume in a later round (their item now carries the state).
        """
        try:
            outcomes = self._generate(batch)
        except Exception as err:
            if len(batch) == 1:
                batch[0].fail(err)
                return []
            logger.warning("hf-lora: a batch of %d failed (%s); running its rows one by one",
                           len(batch), err)
            outcomes = []
            for entry in batch:
                try:
                    outcomes.extend(self._generate([entry]))
                except Exception as row_err:
                    outcomes.append(row_err)
        resumed = []
        for entry, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Resume):
                entry.item = dataclasses.replace(entry.item, resume=outcome)
                resumed.append(entry)
            elif isinstance(outcome, Exception):
                entry.fail(outcome)
            else:
                entry.resolve(outcome)
        return resumed

    def _generate(self, batch: list[Entry]) -> list[RowOutcome]:
        reqs = [e.item for e in batch]
        settings = reqs[0].settings
        args: list[Any] = [[r.prompt for r in reqs], [r.adapter for r in reqs], settings]
        seeds = [r.seed for r in reqs] if reqs[0].seed is not None else None
        chunked = self._chunk_for(settings) is not None
        if seeds is not None or chunked:
            args.append(seeds)
        if chunked:
            args.append([r.resume for r in reqs])
        return list(self.generate_batch(*args))

    def _chunk_for(self, settings: GenSettings) -> int | None:
        """Tokens per round for these settings (None: decode to the end in one go)."""
        if self.prefix_cache is None or not self.decode_chunk:
            return None
        return self.decode_chunk if settings.max_new_tokens > self.decode_chunk else None

    # ----------------------------------------------------------------- one batch

    def generate_batch(self, prompts: list[str], adapters: list[str], settings: GenSettings,
                       seeds: list[int | None] | None = None,
                       resume: list[Resume | None] | None = None) -> list[RowOutcome]:
        """Run one left-padded ``generate`` over ``prompts`` (synchronously).

        Args:
            prompts: rendered prompts (tokenized without special tokens unless
                ``settings.add_special_tokens``: the chat template already wrote BOS).
            adapters: per-row adapter names (``"__base__"`` for none).
            settings: shared generation settings.
            seeds: per-row sampling seeds (default: from ``settings.seed`` and the row).
            resume: per-row decoding state of rows resumed after a chunk; when given, at
                most ``decode_chunk`` tokens are decoded and unfinished rows come back as
                :class:`Resume` (used by the worker; a direct call decodes to the end).

        Returns:
            Per row: a :class:`GenResult` (with its own unpadded token counts), the row's
            own exception (:class:`~charbench.provider.batchgen.RowError`, e.g. a prompt
            the tokenizer rejects), or a :class:`Resume` (only when ``resume`` is given).
        """
        start = time.monotonic()
        states = resume or [None] * len(prompts)
        rows, out = self._rows(prompts, states, settings.add_special_tokens, start)
        if not rows:
            return out
        idx = [i for i in range(len(prompts)) if i in rows]
        enc = batchgen.Encoded([rows[i].ids for i in idx], idx)
        budget = settings.max_new_tokens
        if resume is not None:
            left = max(settings.max_new_tokens - (len(rows[i].ids) - rows[i].prompt_len)
                       for i in idx)
            budget = left if self._would_thrash(rows, idx, left) else min(
                self.decode_chunk or left, left)
        step = dataclasses.replace(settings, max_new_tokens=max(1, budget))
        generators = self._generators(settings, [rows[i] for i in idx], seeds, idx)
        new, layout = self._decode(enc, [adapters[i] for i in idx], step, generators,
                                   [rows[i].prompt_len for i in idx])
        self.batches_run += 1
        self.rows_run += len(idx)
        with self.tokenizer_lock:
            for j, i in enumerate(idx):
                row = rows[i]
                row.batch_size = max(row.batch_size, len(idx))
                if row.started == start:
                    row.cached_tokens = layout.cached[j]
                out[i] = self._outcome(row, new[j], settings, resume is not None)
        return out

    def _would_thrash(self, rows: dict[int, Resume], idx: list[int], left: int) -> bool:
        """Whether the batch's rows would not fit the prefix cache between chunks.

        A resumed row is cheap only if its tensors are still cached; when the rows of one
        batch need more than half the budget, they would evict one another and every
        chunk would recompute whole prompts, so the batch decodes to the end instead.
        """
        cache = self.prefix_cache
        if cache is None or not cache.bytes_per_token:
            return False
        tokens = sum(len(rows[i].ids) + left for i in idx)
        return tokens * cache.bytes_per_token > cache.max_bytes / 2

    def _rows(self, prompts: list[str], states: list[Resume | None], add_special: bool,
              start: float) -> tuple[dict[int, Resume], list[RowOutcome]]:
        """Each row's state (fresh rows encoded here) and the output list with errors."""
        fresh = [i for i, s in enumerate(states) if s is None]
        with self.tokenizer_lock:
            enc, errors = batchgen.encode_rows(self.tokenizer, [prompts[i] for i in fresh],
                                               add_special)
        missing = RowError("hf-lora: this row was not generated")
        out: list[RowOutcome] = [missing] * len(prompts)
        rows: dict[int, Resume] = {}
        for k, i in enumerate(fresh):
            if k in errors:
                out[i] = errors[k]
        for ids, k in zip(enc.ids, enc.rows, strict=True):
            rows[fresh[k]] = Resume(ids, len(ids), None, start, 0, 1)
        for i, state in enumerate(states):
            if state is not None:
                rows[i] = state
        return rows, out

    def _generators(self, settings: GenSettings, rows: list[Resume],
                    seeds: list[int | None] | None, idx: list[int]) -> list[Any] | None:
        """Per-row sampling generators (kept in the row state), or None when greedy."""
        import torch

        if settings.effective_temperature() is None:
            return None
        for row, i in zip(rows, idx, strict=True):
            if row.generator is None:
                given = seeds[i] if seeds else None
                seed = given if given is not None else request_seed(settings.seed, f"row{i}")
                row.generator = torch.Generator(device=self.device).manual_seed(seed)
                row.seed = seed
        return [r.generator for r in rows]

    def _outcome(self, row: Resume, new: list[int], settings: GenSettings,
                 chunked: bool) -> RowOutcome:
        """The row's result if it is finished, else its state for the next chunk."""
        produced = row.ids[row.prompt_len:] + new
        produced = produced[: settings.max_new_tokens]
        done = len(produced) >= settings.max_new_tokens or any(t in self.eos_ids for t in new)
        res = self._finish_row(produced, row.prompt_len, settings,
                               time.monotonic() - row.started, row.batch_size)
        if not chunked or done or res.stop_reason == "stop":
            res.seed, res.cached_tokens = row.seed, row.cached_tokens
            return res
        row.ids = row.ids[: row.prompt_len] + produced
        return row

    def _decode(self, enc: batchgen.Encoded, adapters: list[str], settings: GenSettings,
                generators: list[Any] | None, prompt_lens: list[int]) -> tuple[
                    list[list[int]], kvcache.Layout]:
        """One ``generate`` over encoded rows; the new token ids of each row."""
        import torch

        kwargs = batchgen.generate_kwargs(settings, generators, self.device, self.pad_id,
                                          self.eos_ids, self.tokenizer)
        with self.lock, torch.inference_mode():
            layout = self._layout(enc, adapters, prompt_lens, settings.max_new_tokens)
            gen = self._run_generate(layout, adapters, kwargs)
            sequences = gen.sequences if self.prefix_cache is not None else gen
            width = layout.input_ids.shape[1]
            new = [sequences[j, width:].tolist() for j in range(len(enc.ids))]
            if self.prefix_cache is not None:
                self._keep_kv(gen.cache, layout, enc, adapters, new)
        return new, layout

    def _layout(self, enc: batchgen.Encoded, adapters: list[str],
                prompt_lens: list[int], reserve: int) -> kvcache.Layout:
        """Batch tensors, starting each row from its longest cached prefix (if reuse is on).

        With reuse on, the cache has room reserved for ``reserve`` new tokens per row
        (:class:`~charbench.provider.kvcache.ReservedLayer`: no copy of the cache per step).
        """
        if self.prefix_cache is None:
            hits = [kvcache.Hit(0) for _ in enc.ids]
            return kvcache.build_layout(enc.ids, hits, self.pad_id, self.model.config,
                                        self.device)
        hits = [self.prefix_cache.lookup(a, ids) for a, ids in zip(adapters, enc.ids,
                                                                   strict=True)]
        if self._share_prefixes(enc.ids, adapters, prompt_lens, [h.length for h in hits]):
            hits = [self.prefix_cache.lookup(a, ids) for a, ids in zip(adapters, enc.ids,
                                                                       strict=True)]
        for ids, hit, n_prompt in zip(enc.ids, hits, prompt_lens, strict=True):
            if len(ids) == n_prompt:  # a fresh prompt
                self.prefix_cache.record(len(ids), len(ids) - hit.length, hit.length > 0)
            else:  # a resumed row: only its last generated token is new work
                self.prefix_cache.record(0, max(0, len(ids) - hit.length - 1), False)
        return kvcache.build_layout(enc.ids, hits, self.pad_id, self.model.config,
                                    self.device, reserve=reserve)

    def _share_prefixes(self, rows: list[list[int]], adapters: list[str],
                        prompt_lens: list[int], cached: list[int]) -> bool:
        """Compute once, and cache, the long prefixes that new rows of this batch share.

        See :func:`charbench.provider.kvcache.shared_prefixes`. Each prefix runs as a
        one-row ``generate`` of one token (its logits are discarded) on its adapter,
        starting from whatever the cache already holds of it; its tensors are stored like
        any row's, so the batch's rows then find them. Call with ``self.lock``.

        Args:
            cached: each row's cached prefix length before this call.

        Returns:
            Whether any prefix was computed (the rows' cache hits must be looked up again).
        """
        cache = self.prefix_cache
        assert cache is not None
        fresh = [len(ids) == n for ids, n in zip(rows, prompt_lens, strict=True)]
        if sum(fresh) < 2:
            return False
        computed = False
        kwargs = batchgen.generate_kwargs(GenSettings(max_new_tokens=1, do_sample=False), None,
                                          self.device, self.pad_id, self.eos_ids,
                                          self.tokenizer)
        for adapter, prefix in kvcache.shared_prefixes(rows, adapters, cached, fresh):
            hit = cache.lookup(adapter, prefix)
            if len(prefix) - hit.length < kvcache.MIN_SHARED_TOKENS:
                continue  # an earlier prefix of this batch already covers it
            layout = kvcache.build_layout([prefix], [hit], self.pad_id, self.model.config,
                                          self.device, reserve=1)
            gen = self._run_generate(layout, [adapter], kwargs)
            keys, values = kvcache.row_tensors(gen.cache, 0, layout.columns[0].to(self.device))
            cache.record(0, len(prefix) - hit.length, False)
            cache.store(adapter, prefix, len(prefix), keys, values, parent=hit)
            computed = True
        return computed

    def _keep_kv(self, cache: Any, layout: kvcache.Layout, enc: batchgen.Encoded,
                 adapters: list[str], generated: list[list[int]]) -> None:
        """Store each row's tensors: its prompt and the generated tokens the model consumed."""
        import torch

        assert self.prefix_cache is not None
        width = layout.input_ids.shape[1]
        fed = cache.get_seq_length() - width  # generated tokens whose KV was computed
        for j, ids in enumerate(enc.ids):
            new = generated[j]
            body = next((k for k, t in enumerate(new) if t in self.eos_ids), len(new))
            n = max(0, min(body, fed))
            cols = torch.cat([layout.columns[j].to(self.device),
                              torch.arange(width, width + n, device=self.device)])
            keys, values = kvcache.row_tensors(cache, j, cols)
            self.prefix_cache.store(adapters[j], ids + new[:n], len(ids), keys, values,
                                    parent=layout.hits[j])

    def _run_generate(self, layout: kvcache.Layout, adapters: list[str],
                      kwargs: dict[str, Any]) -> Any:
        """One ``generate`` call, mixing adapters per row (call with ``self.lock``)."""
        inputs: dict[str, Any] = {"input_ids": layout.input_ids,
                                  "attention_mask": layout.attention_mask}
        if self.prefix_cache is not None:
            inputs["return_dict_in_generate"] = True
            if layout.cache is not None:
                inputs["cache"] = layout.cache
        uniform = len(set(adapters)) == 1
        if self.peft is None:
            if any(a != BASE_ADAPTER for a in adapters):
                raise HFLoraError("hf-lora: no adapters are loaded on this base.")
            return self.model.generate(**inputs, **kwargs)
        if uniform and adapters[0] == BASE_ADAPTER:
            # one adapter for every row: the plain (faster) forward, adapters disabled
            with self.peft.disable_adapter():
                return self.peft.generate(**inputs, **kwargs)
        if uniform:
            self.peft.base_model.set_adapter(adapters[0], inference_mode=True)
            return self.peft.generate(**inputs, **kwargs)
        return self.peft.generate(**inputs, adapter_names=list(adapters), **kwargs)

    def _finish_row(self, gen: list[int], n_in: int, settings: GenSettings,
                    elapsed: float, batch_size: int) -> GenResult:
        """See :func:`charbench.provider.batchgen.finish_row`."""
        result: GenResult = batchgen.finish_row(self.tokenizer, self.eos_ids, gen, n_in,
                                                settings, elapsed, batch_size)
        return result
