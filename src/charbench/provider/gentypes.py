"""The generation contract of ``hf-lora``'s engine: settings in, one result per row out (a leaf).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["GenResult", "GenSettings"]


@dataclass(frozen=True)
class GenSettings:
    """Generation settings; requests are batched together only when these are equal.

    Every knob is explicit (see :mod:`charbench.provider.sampling`): the model's
    ``generation_config.json`` never fills one in. ``top_k`` None (or 0) means no top-k,
    ``top_p`` None means no nucleus cut, ``repetition_penalty`` None means 1.0, and
    ``temperature`` None with sampling means 1.0 (vLLM's default).
    """

    max_new_tokens: int
    do_sample: bool
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop_seqs: tuple[str, ...] = ()
    add_special_tokens: bool = False
    """Tokenize the rendered prompt with the tokenizer's special tokens added (``-M
    bos=vllm``: the study's vLLM did, doubling BOS for Llama and Gemma)."""

    def effective_temperature(self) -> float | None:
        """The sampling temperature, or None for greedy decoding."""
        if not self.do_sample:
            return None
        t = 1.0 if self.temperature is None else float(self.temperature)
        return t if t > 0 else None

    def effective_repetition_penalty(self) -> float:
        """The repetition penalty passed to ``generate`` (1.0: none)."""
        return 1.0 if self.repetition_penalty is None else float(self.repetition_penalty)

    def generate_kwargs(self) -> dict[str, Any]:
        """The effective knobs, for the logged request (what the engine applies)."""
        temperature = self.effective_temperature()
        kw: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": temperature is not None,
            "repetition_penalty": self.effective_repetition_penalty(),
            "add_special_tokens": self.add_special_tokens,
        }
        if temperature is not None:
            kw.update(temperature=temperature, top_p=self.top_p or 1.0,
                      top_k=self.top_k or 0)
        return kw


@dataclass
class GenResult:
    """One row's result.

    ``text`` is decoded without special tokens and sanitized (:mod:`charbench.textsafe`);
    ``raw_text`` is the same completion with special tokens kept and nothing replaced (None
    when not known, e.g. a result assembled by the caller); ``sanitized`` counts the
    characters :func:`~charbench.textsafe.sanitize` replaced in ``text``; ``seed`` is the
    row's own sampling seed (None when greedy); ``cached_tokens`` the prompt tokens reused
    from :mod:`charbench.provider.kvcache` instead of computed.
    """

    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str  # "stop" | "max_tokens"
    time: float
    batch_size: int
    raw_text: str | None = None
    sanitized: int = 0
    seed: int | None = None
    cached_tokens: int = 0
    """Prompt tokens taken from the prefix cache (not computed) for this row."""
