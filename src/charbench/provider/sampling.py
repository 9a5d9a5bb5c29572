"""Explicit, per-request sampling for ``hf-lora``: no model defaults, one random stream per row.

Two guarantees, both about reproducing a run:

1. **Every knob is explicit.** transformers fills any generation setting a caller leaves
   unset from the model's ``generation_config.json`` and then from global defaults (top-k
   50); Qwen 2.5 ships top-k 20 and a repetition penalty of 1.05. The study sampled
   through vLLM with temperature 0.7, top-p 0.95, no top-k and no repetition penalty.
   :func:`neutral_generation_config` replaces a loaded model's generation config with one
   that carries only its special-token ids, so nothing but what :class:`RowSampler` and
   the engine pass explicitly shapes the logits: top-k is off unless asked for
   (``--top-k``), the repetition penalty is 1.0 unless ``-M repetition_penalty=`` is given.
2. **Each request draws from its own ``torch.Generator``.** transformers samples a whole
   batch from torch's global generator, so a row's draw depends on what shares its batch.
   The engine generates greedily and lets :class:`RowSampler` (a logits processor) pick
   each row's token with that row's generator, masking every other token: the greedy step
   then takes the sampled token. A row's seed is :func:`request_seed` of ``--seed`` and a
   request key (sample id, epoch, a hash of the prompt, the adapter, and the attempt
   number of that exact request), so a run is reproducible whatever shares its batch, two
   samples with the same prompt draw differently, and a retried turn is a new draw.

The warping follows vLLM's order for these knobs: temperature, then top-k, then top-p
(nucleus over the temperature-scaled distribution), then a multinomial draw.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import Counter
from typing import Any

__all__ = [
    "RowSampler",
    "SeedBook",
    "active_sample_key",
    "neutral_generation_config",
    "prompt_digest",
    "request_seed",
]

_TOKEN_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


def neutral_generation_config(original: Any) -> Any:
    """A ``GenerationConfig`` with ``original``'s special-token ids and nothing else.

    Args:
        original: the model's loaded ``GenerationConfig`` (may be None).

    Returns:
        A fresh ``transformers.GenerationConfig``: greedy, no top-k, no repetition penalty,
        no suppressed or forced tokens; the caller's explicit settings are the only ones.
    """
    from transformers import GenerationConfig

    tokens = {f: getattr(original, f, None) for f in _TOKEN_FIELDS}
    return GenerationConfig(  # type: ignore[no-untyped-call]
        **{k: v for k, v in tokens.items() if v is not None},
        do_sample=False, top_k=None, top_p=None, temperature=None, repetition_penalty=1.0,
    )


def request_seed(base_seed: int | None, key: str) -> int:
    """A 63-bit seed for one request: a hash of ``base_seed`` and ``key``.

    Without a base seed (no ``--seed``) the seed is random: sampling is then not
    reproducible, as with any unseeded run.
    """
    if base_seed is None:
        return secrets.randbits(63)
    digest = hashlib.blake2b(f"{base_seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def active_sample_key() -> str:
    """``task|sample id|epoch`` of the Inspect sample running in this context, else ``""``.

    Read from Inspect's active-sample context variable (set while a sample runs, copied
    into the coroutines it starts), so a request is keyed by the sample that made it,
    whatever else is in flight.
    """
    from charbench._inspect import active_sample_key as key

    return key()


def prompt_digest(prompt: str) -> str:
    """A short stable hash of a prompt (for request keys and logs)."""
    return hashlib.blake2b(prompt.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


class SeedBook:
    """Counts how often each exact request key was seen, so a repeat is a new draw.

    Thread-safe. The n-th request with the same key (a retried turn) gets attempt ``n``.
    """

    def __init__(self) -> None:
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def attempt(self, key: str) -> int:
        """0 the first time ``key`` is seen, then 1, 2, ..."""
        with self._lock:
            n = self._seen[key]
            self._seen[key] = n + 1
            return n


class RowSampler:
    """A logits processor that samples each row with its own generator (see module docs).

    Args:
        seeds: one seed per batch row, or the row's ``torch.Generator`` itself (a row
            resumed between chunks keeps drawing from its own stream).
        temperature: > 0 (the engine only samples when it is).
        top_p: nucleus mass in (0, 1]; None or 1 for none.
        top_k: keep the k most likely tokens; None or 0 for none.
        device: device of the logits.
    """

    def __init__(self, seeds: list[Any], temperature: float, top_p: float | None,
                 top_k: int | None, device: Any) -> None:
        import torch

        if temperature <= 0:
            raise ValueError("RowSampler needs a temperature above 0 (use greedy otherwise)")
        self.temperature = float(temperature)
        self.top_p = top_p if top_p is not None and 0 < top_p < 1 else None
        self.top_k = int(top_k) if top_k else None
        self.generators = [s if isinstance(s, torch.Generator)
                           else torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def warp(self, scores: Any) -> Any:
        """Temperature, top-k and top-p applied to a (rows, vocab) float tensor."""
        import torch

        logits = scores.float() / self.temperature
        if self.top_k is not None and self.top_k < logits.shape[-1]:
            kth = torch.topk(logits, self.top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p is not None:
            ordered, idx = torch.sort(logits, descending=True, dim=-1)
            cum = ordered.softmax(dim=-1).cumsum(dim=-1)
            drop = (cum - ordered.softmax(dim=-1)) >= self.top_p  # keep the token crossing p
            logits = logits.masked_fill(drop.scatter(-1, idx, drop), float("-inf"))
        return logits

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """Return scores where only each row's sampled token is finite."""
        import torch

        probs = self.warp(scores).softmax(dim=-1)
        picks = [
            torch.multinomial(probs[i], 1, generator=self.generators[i])
            for i in range(probs.shape[0])
        ]
        chosen = torch.cat(picks).to(scores.device)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(-1, chosen[:, None], 0.0)
        return out
