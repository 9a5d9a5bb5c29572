"""One batch of ``hf-lora`` generation: per-row encoding, one left-padded ``generate``, per-row
decoding.

The contract, row by row:

- **Encoding.** Each rendered prompt is tokenized on its own (special tokens added only when
  :attr:`~charbench.provider.engine.GenSettings.add_special_tokens` is set, i.e. ``-M
  bos=vllm``), so a row the tokenizer rejects (a NUL byte, a lone surrogate) becomes that
  row's :class:`RowError` while its batch-mates run.
- **Generation.** Every knob is passed explicitly (:mod:`charbench.provider.sampling`): the
  ``generate`` call is greedy with the settings' repetition penalty (1.0 by default);
  sampling is done by :class:`~charbench.provider.sampling.RowSampler`, one generator per
  row.
- **Decoding.** The completion is decoded without special tokens (as vLLM returns it) and
  made safe with :func:`charbench.textsafe.sanitize`; the raw decoding (special tokens
  kept) and the number of replaced characters travel with the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from charbench.provider.gentypes import GenResult, GenSettings
from charbench.provider.sampling import RowSampler
from charbench.textsafe import sanitize


class RowError(Exception):
    """A failure of one row only (its batch-mates are unaffected)."""


@dataclass(frozen=True)
class Encoded:
    """Token ids of the rows that encoded, and where each came from."""

    ids: list[list[int]]
    rows: list[int]
    """Original row index of each encoded row."""


def encode_rows(tokenizer: Any, prompts: list[str], add_special_tokens: bool
                ) -> tuple[Encoded, dict[int, RowError]]:
    """Tokenize each prompt alone.

    Returns:
        ``(encoded, errors)``: ``errors`` maps a row index to the error that row alone gets.
    """
    ids: list[list[int]] = []
    rows: list[int] = []
    errors: dict[int, RowError] = {}
    for i, prompt in enumerate(prompts):
        try:
            row = list(tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"])
        except (TypeError, ValueError) as err:
            errors[i] = RowError(f"hf-lora: the prompt could not be tokenized: {err}")
            continue
        if not row:
            errors[i] = RowError("hf-lora: the prompt is empty after tokenization.")
            continue
        ids.append(row)
        rows.append(i)
    return Encoded(ids, rows), errors


def generate_kwargs(settings: GenSettings, seeds: list[Any] | None, device: str,
                    pad_id: int, eos_ids: frozenset[int], tokenizer: Any) -> dict[str, Any]:
    """Keyword arguments for ``model.generate``: every knob explicit, sampling per row."""
    from transformers import LogitsProcessorList

    kw: dict[str, Any] = {
        "max_new_tokens": settings.max_new_tokens,
        "do_sample": False,
        "num_beams": 1,
        "repetition_penalty": settings.effective_repetition_penalty(),
        "pad_token_id": pad_id,
    }
    if eos_ids:
        kw["eos_token_id"] = sorted(eos_ids)
    if settings.stop_seqs:
        kw["stop_strings"] = list(settings.stop_seqs)
        kw["tokenizer"] = tokenizer
    temperature = settings.effective_temperature()
    if temperature is not None:
        if seeds is None:
            raise ValueError("sampling needs one seed (or generator) per row")
        kw["logits_processor"] = LogitsProcessorList([RowSampler(
            seeds, temperature, settings.top_p, settings.top_k, device)])
    return kw


def finish_row(tokenizer: Any, eos_ids: frozenset[int], gen: list[int], n_in: int,
               settings: GenSettings, elapsed: float, batch_size: int) -> GenResult:
    """A row's result: cut at EOS or a stop sequence, decoded clean and raw, sanitized."""
    n_out = len(gen)
    stop_reason = "max_tokens"
    body = gen
    for j, tok in enumerate(gen):
        if tok in eos_ids:
            n_out, body, stop_reason = j + 1, gen[:j], "stop"
            break
    raw = str(tokenizer.decode(body, skip_special_tokens=False))
    text = str(tokenizer.decode(body, skip_special_tokens=True))
    if settings.stop_seqs:
        cut = min((text.find(s) for s in settings.stop_seqs if s in text), default=-1)
        if cut >= 0:
            text = text[:cut]
            stop_reason = "stop"
            raw_cut = min((raw.find(s) for s in settings.stop_seqs if s in raw), default=-1)
            raw = raw[:raw_cut] if raw_cut >= 0 else raw
            for k in range(1, len(body) + 1):
                piece = tokenizer.decode(body[:k], skip_special_tokens=True)
                if any(s in piece for s in settings.stop_seqs):
                    n_out = k
                    break
    safe, replaced = sanitize(text)
    return GenResult(text=safe, input_tokens=n_in, output_tokens=n_out,
                     stop_reason=stop_reason, time=elapsed, batch_size=batch_size,
                     raw_text=raw, sanitized=replaced)
