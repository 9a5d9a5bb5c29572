"""Prefix KV reuse for ``hf-lora``: a prompt that extends an earlier one computes only its new
tokens.

What is reused. After each batch the engine keeps, per row, the key/value tensors of every
token the model consumed (the prompt and the generated tokens before the end of the turn),
keyed by the adapter and the token ids. A later prompt on the same base and adapter whose
token ids start with an entry's ids (the next turn of the same conversation), or share a
long prefix with one (the system prompt and tool block every rollout of one adapter
shares), starts from that entry's tensors cut to the common prefix; only the rest of the
prompt is computed. At least the last prompt token is always computed (its logits start
decoding).

How a batch with different cached lengths runs (:func:`build_layout`): row ``r`` with
``m_r`` cached tokens and ``s_r`` new ones is laid out as ``[pad][cached m_r][pad][new
s_r]`` over ``L + S`` columns (``L`` the longest cached part, ``S`` the longest new part),
with the attention mask zero on the padding. transformers derives position ids from the
mask's cumulative sum, so every real token keeps its true position, and the cached
tensors (computed at those same positions) are valid as they are. Greedy outputs equal
recomputation token for token (a test checks it); only floating-point summation order
can differ, as with any change of padding.

Sharing within a batch (:func:`shared_prefixes`). Requests that arrive together find
nothing cached yet: the first turns of every rollout of an agentic eval carry the same
system prompt and tool block. Before such a batch runs, each long prefix (at least
``MIN_SHARED_TOKENS``) that two or more of its new rows of one adapter share beyond their
cached part is computed once, on its own, and stored like any entry; the rows then start
from it and compute only their own suffixes.

Bounds. Entries are evicted least-recently-used beyond ``max_bytes`` (``-M kv_cache_mb``);
an entry superseded by a newer one is dropped at once (its ids are a prefix of the newer
entry's, or the newer row continued its conversation: see :meth:`PrefixCache.store`), so
a conversation holds one entry. Reuse is only
enabled for models whose cache is a plain full-attention ``DynamicCache`` (every layer a
``DynamicLayer``: Llama, Qwen 2, Mistral); sliding-window or hybrid caches (Gemma 3)
recompute every prompt. Entries are tied to one adapter name; composing or deleting an
adapter never reuses another's tensors.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from transformers.cache_utils import DynamicLayer

__all__ = ["KVStats", "Layout", "PrefixCache", "ReservedLayer", "build_layout", "shared_prefixes",
           "supports_reuse"]

MIN_REUSE_TOKENS = 1
"""A hit must reuse at least this many tokens."""

MIN_SHARED_TOKENS = 64
"""A prefix shared within a batch is computed once on its own only if that saves at least
this many tokens per row: below it, the extra forward pass costs more than it saves."""


def supports_reuse(model_config: Any) -> bool:
    """Whether the model's generation cache is a plain full-attention ``DynamicCache``."""
    try:
        from transformers import DynamicCache

        cache = DynamicCache(config=model_config)
    except (TypeError, ValueError, AttributeError):
        return False
    return bool(cache.layers) and all(type(layer).__name__ == "DynamicLayer"
                                      for layer in cache.layers)


@dataclass
class _Entry:
    adapter: str
    tokens: NDArray[np.int64]
    keys: list[Any]  # per layer, (heads, n, head_dim)
    values: list[Any]
    nbytes: int
    prompt_len: int
    """How many of ``tokens`` were the prompt (the rest were generated)."""


@dataclass
class KVStats:
    """Prompt tokens submitted and actually computed (the rest came from the cache)."""

    submitted: int = 0
    computed: int = 0
    hits: int = 0
    evicted: int = 0

    @property
    def reused(self) -> int:
        """Prompt tokens taken from the cache."""
        return self.submitted - self.computed


@dataclass
class Hit:
    """A usable cached prefix for one row."""

    length: int
    entry: _Entry | None = None


class PrefixCache:
    """LRU store of per-row KV tensors keyed by (adapter, token ids); thread-safe.

    Args:
        max_bytes: memory budget for all entries (0 disables storing).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next = 0
        self._lock = threading.Lock()
        self.nbytes = 0
        self.peak_bytes = 0
        self.bytes_per_token = 0.0
        """Key/value bytes per token, measured on the last stored entry (0 until then)."""
        self.stats = KVStats()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, adapter: str, ids: list[int]) -> Hit:
        """The longest cached prefix of ``ids`` on ``adapter`` (leaving one token to compute)."""
        if not ids or self.max_bytes == 0:
            return Hit(0)
        arr = np.asarray(ids, dtype=np.int64)
        best = Hit(0)
        best_key = -1
        with self._lock:
            for key, entry in self._entries.items():
                if entry.adapter != adapter:
                    continue
                n = min(len(entry.tokens), len(arr) - 1)
                if n <= best.length:
                    continue
                diff = np.flatnonzero(entry.tokens[:n] != arr[:n])
                common = int(diff[0]) if diff.size else n
                if common > best.length:
                    best = Hit(common, entry)
                    best_key = key
            if best.entry is not None and best.length >= MIN_REUSE_TOKENS:
                self._entries.move_to_end(best_key)
                return best
        return Hit(0)

    def record(self, submitted: int, computed: int, hit: bool) -> None:
        """Count one row's prompt tokens (submitted and computed)."""
        with self._lock:
            self.stats.submitted += submitted
            self.stats.computed += computed
            self.stats.hits += int(hit)

    def store(self, adapter: str, ids: list[int], prompt_len: int, keys: list[Any],
              values: list[Any], parent: Hit | None = None) -> None:
        """Keep one row's tensors for ``ids`` (its prompt and what it generated).

        Superseded entries are dropped: any entry of the adapter whose ids are a prefix of
        ``ids``, and ``parent`` (the entry this row's prompt started from) when the row's
        prompt contained the parent's whole prompt (the next turn of its conversation; the
        parent's generated tail is then only useful to a retry of that earlier turn).
        """
        if self.max_bytes == 0 or not ids:
            return
        nbytes = sum(int(t.numel() * t.element_size()) for t in (*keys, *values))
        self.bytes_per_token = nbytes / len(ids)
        if nbytes > self.max_bytes:
            return
        arr = np.asarray(ids, dtype=np.int64)
        with self._lock:
            for key, e in list(self._entries.items()):
                if e.adapter != adapter:
                    continue
                extended = len(e.tokens) <= len(arr) and np.array_equal(
                    e.tokens, arr[: len(e.tokens)])
                continued = parent is not None and parent.entry is e and \
                    parent.length >= e.prompt_len
                if extended or continued:
                    self._drop(key)
            self._entries[self._next] = _Entry(adapter, arr, keys, values, nbytes, prompt_len)
            self._next += 1
            self.nbytes += nbytes
            while self.nbytes > self.max_bytes and self._entries:
                self._drop(next(iter(self._entries)))
                self.stats.evicted += 1
            self.peak_bytes = max(self.peak_bytes, self.nbytes)

    def drop_adapter(self, adapter: str) -> None:
        """Forget every entry of ``adapter``."""
        with self._lock:
            for key in [k for k, e in self._entries.items() if e.adapter == adapter]:
                self._drop(key)

    def _drop(self, key: int) -> None:
        entry = self._entries.pop(key)
        self.nbytes -= entry.nbytes


@dataclass
class Layout:
    """Batch tensors for rows with cached prefixes (see the module docstring)."""

    input_ids: Any
    attention_mask: Any
    cache: Any | None
    cached: list[int]
    """Cached prompt tokens per row."""
    columns: list[Any] = field(default_factory=list)
    """Per row, the column indices of its real prompt tokens (in order)."""
    hits: list[Hit] = field(default_factory=list)
    """Per row, the cached prefix it started from."""


def build_layout(rows: list[list[int]], hits: list[Hit], pad_id: int, model_config: Any,
                 device: str, reserve: int | None = None) -> Layout:
    """Lay out ``rows`` (token ids) with their cached prefixes as ``[pad][cached][pad][new]``.

    Args:
        reserve: tokens the batch will add after its prompt columns (the new tokens it
            decodes). When given, the cache is a :class:`ReservedLayer` cache with room for
            the whole batch, even when nothing was cached; when None, a cache is built only
            for cached prefixes and grows as transformers' own does.
    """
    import torch

    cached = [h.length for h in hits]
    width_cached = max(cached)
    width_new = max(len(r) - m for r, m in zip(rows, cached, strict=True))
    width = width_cached + width_new
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    columns = []
    for j, (row, m) in enumerate(zip(rows, cached, strict=True)):
        new = row[m:]
        ids[j, width_cached - m: width_cached] = torch.tensor(row[:m], dtype=torch.long)
        mask[j, width_cached - m: width_cached] = 1
        ids[j, width - len(new):] = torch.tensor(new, dtype=torch.long)
        mask[j, width - len(new):] = 1
        columns.append(torch.nonzero(mask[j]).flatten())
    cache = None
    if reserve is not None or width_cached:
        cache = _reserved_cache(hits, width_cached, width + (reserve or 0), model_config,
                                device)
    return Layout(ids.to(device), mask.to(device), cache, cached, columns, hits)


class ReservedLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """A ``DynamicLayer`` that writes new tokens into preallocated room instead of
    concatenating.

    transformers' ``DynamicLayer.update`` concatenates the whole cache with each new token,
    copying every cached key and value once per decoded token: with long agent prompts
    that copy, not the model, dominates a CPU decode step (measured on SmolLM2 with 20 rows
    of 3,100 cached tokens: ``aten::cat`` 44% of the time, the matrix products 11%). Here
    ``keys``/``values`` are views of the filled part of buffers with room for ``capacity``
    tokens; a buffer that runs out doubles. Anything that replaces ``keys`` (transformers'
    ``crop`` or batch selection) is adopted as the new buffer on the next update, so the
    layer behaves as a ``DynamicLayer`` in every other respect.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.capacity = max(1, int(capacity))
        self._kbuf: Any = None
        self._vbuf: Any = None

    def adopt(self, kbuf: Any, vbuf: Any, filled: int) -> None:
        """Use ``kbuf``/``vbuf`` (batch, heads, room, dim) with ``filled`` tokens written."""
        self._kbuf, self._vbuf = kbuf, vbuf
        self.keys, self.values = kbuf[:, :, :filled], vbuf[:, :, :filled]
        self.device, self.is_initialized = kbuf.device, True

    def update(self, key_states: Any, value_states: Any, *args: Any,
               **kwargs: Any) -> tuple[Any, Any]:
        import torch

        if not self.is_initialized or self.keys is None or self.keys.numel() == 0:
            n = 0
            self._kbuf = self._vbuf = None
        else:
            n = self.keys.shape[-2]
            if self._kbuf is None or self.keys.data_ptr() != self._kbuf.data_ptr():
                self._kbuf, self._vbuf = self.keys, self.values  # replaced from outside
        need = n + key_states.shape[-2]
        if self._kbuf is None or need > self._kbuf.shape[-2]:
            room = max(self.capacity, need, 2 * n)
            kbuf = key_states.new_empty((*key_states.shape[:2], room, key_states.shape[3]))
            vbuf = value_states.new_empty((*value_states.shape[:2], room,
                                           value_states.shape[3]))
            if n:
                kbuf[:, :, :n] = self.keys
                vbuf[:, :, :n] = self.values
            self._kbuf, self._vbuf = kbuf, vbuf
        with torch.no_grad():
            self._kbuf[:, :, n:need] = key_states
            self._vbuf[:, :, n:need] = value_states
        self.adopt(self._kbuf, self._vbuf, need)
        return self.keys, self.values


def _reserved_cache(hits: list[Hit], width: int, room: int, model_config: Any,
                    device: str) -> Any:
    """A ``DynamicCache`` of :class:`ReservedLayer` holding each row's cached tensors,
    left-padded to ``width`` columns (zeros in the padding), with room for ``room``."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=model_config)
    layers = [ReservedLayer(room) for _ in cache.layers]
    cache.layers = list[Any](layers)
    sample = next((h.entry for h in hits if h.entry is not None and h.length), None)
    if sample is None or not width:
        return cache
    for layer, slot in enumerate(layers):
        k, v = sample.keys[layer], sample.values[layer]
        kbuf = torch.empty((len(hits), k.shape[0], room, k.shape[2]), dtype=k.dtype,
                           device=device)
        vbuf = torch.empty((len(hits), v.shape[0], room, v.shape[2]), dtype=v.dtype,
                           device=device)
        for j, hit in enumerate(hits):
            pad = width - hit.length
            kbuf[j, :, :pad] = 0
            vbuf[j, :, :pad] = 0
            if hit.entry is not None and hit.length:
                kbuf[j, :, pad:width] = hit.entry.keys[layer][:, : hit.length]
                vbuf[j, :, pad:width] = hit.entry.values[layer][:, : hit.length]
        slot.adopt(kbuf, vbuf, width)
    return cache


def row_tensors(cache: Any, row: int, columns: Any) -> tuple[list[Any], list[Any]]:
    """Copies of one row's key/value tensors at ``columns`` (every layer).

    The columns of a row are a few contiguous runs (its cached part, its new prompt tokens
    and what it generated): they are copied as slices, which is several times faster on
    a CPU than a gather over every column.
    """
    import torch

    cols = columns.cpu().numpy()
    breaks = np.flatnonzero(np.diff(cols) != 1) + 1
    runs = [(int(run[0]), int(run[-1]) + 1) for run in np.split(cols, breaks) if run.size]

    def pick(t: Any) -> Any:
        parts = [t[:, a:b] for a, b in runs]
        return parts[0].clone() if len(parts) == 1 else torch.cat(parts, dim=1)

    keys = [pick(layer.keys[row]) for layer in cache.layers]
    values = [pick(layer.values[row]) for layer in cache.layers]
    return keys, values


def _common(a: NDArray[np.int64], b: NDArray[np.int64]) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


def shared_prefixes(rows: list[list[int]], adapters: list[str], cached: list[int],
                    fresh: list[bool]) -> list[tuple[str, list[int]]]:
    """Prefixes worth computing once before a batch runs, longest first.

    For each fresh row (a new prompt, not a row resumed between chunks) the longest prefix
    it shares with another fresh row of the same adapter, capped one token short of the
    row (its last token must be computed in the batch: its logits start decoding). A
    prefix is returned when it exceeds the row's cached part (``cached``) by at least
    :data:`MIN_SHARED_TOKENS`; duplicates and prefixes of a longer returned prefix are
    left out (computing the longer one covers them).

    Returns:
        ``(adapter, token ids)`` pairs; empty when no two rows share enough.
    """
    best: dict[int, int] = {}
    for adapter in set(adapters):
        js = [j for j, a in enumerate(adapters) if a == adapter and fresh[j]]
        arrs = {j: np.asarray(rows[j], dtype=np.int64) for j in js}
        # sorted lexicographically, a row's longest common prefix is with a neighbour
        order = sorted(js, key=lambda j: rows[j])
        for a, b in itertools.pairwise(order):
            n = _common(arrs[a], arrs[b])
            best[a], best[b] = max(best.get(a, 0), n), max(best.get(b, 0), n)
    picked: list[tuple[str, list[int]]] = []
    for j in sorted(best, key=lambda j: -min(best[j], len(rows[j]) - 1)):
        n = min(best[j], len(rows[j]) - 1)
        if n - cached[j] < MIN_SHARED_TOKENS:
            continue
        prefix = rows[j][:n]
        if not any(a == adapters[j] and p[:n] == prefix for a, p in picked):
            picked.append((adapters[j], prefix))
    return picked
