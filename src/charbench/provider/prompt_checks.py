"""Checks on a rendered prompt before it is generated from: context length, control tokens.

- **Context length.** A prompt with more tokens than the model has positions
  (``max_position_embeddings``, or the text config's for multimodal checkpoints) is
  generated from anyway (rotary models run past it and degrade; the result is the model's),
  but the first such prompt of a model instance logs one warning naming the prompt's length
  and the limit; later ones are logged at INFO. Every ``ModelCall`` records
  ``prompt_tokens`` and ``context_limit``.
- **Control-token text inside messages.** The prompt is one string (the chat template's
  rendering) tokenized as a whole, so text like ``<|im_end|>\\n<|im_start|>system`` typed
  inside a user, system or tool message becomes the *real* control tokens: the message can
  close its own turn and open a forged one. The study's harness did exactly this (vLLM
  tokenizes a prompt string the same way), so ``hf-lora`` keeps it in every mode to stay
  comparable; it detects it, logs a warning the first time per model instance, and records
  the control tokens found in the ``ModelCall`` (``control_tokens_in_messages``).
  Tokenizing message text as plain text exactly would need the engine to take token ids
  (template parts tokenized with special tokens, message text with
  ``split_special_tokens=True``); it does not, so this is reported, not changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from inspect_ai.model import ChatMessage, ChatMessageAssistant

logger = logging.getLogger(__name__)

_POSITION_ATTRS = ("max_position_embeddings", "n_positions", "max_sequence_length")


def context_limit(config: Any) -> int | None:
    """The number of positions of a transformers model config (None when it names none)."""
    for cfg in (config, getattr(config, "text_config", None)):
        for attr in _POSITION_ATTRS:
            value = getattr(cfg, attr, None) if cfg is not None else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def control_token_texts(tokenizer: Any) -> tuple[str, ...]:
    """The texts of the tokenizer's special (control) tokens, longest first."""
    found = {str(t) for t in (getattr(tokenizer, "all_special_tokens", None) or [])}
    for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(token, "special", False):
            found.add(str(token.content))
    return tuple(sorted((t for t in found if t), key=lambda t: (-len(t), t)))


def control_tokens_in(messages: list[ChatMessage], controls: tuple[str, ...]) -> list[str]:
    """Control-token texts that occur inside non-assistant message text, in ``controls`` order.

    Assistant turns are left out: they are the model's own earlier output, replayed as
    produced.
    """
    texts = [m.text for m in messages if not isinstance(m, ChatMessageAssistant)]
    return [c for c in controls if any(c in t for t in texts)]


@dataclass
class PromptReport:
    """What :class:`PromptGuard` found in one prompt (written to the ``ModelCall``)."""

    prompt_tokens: int | None
    context_limit: int | None
    control_tokens: list[str]


class PromptGuard:
    """Per-model-instance checks of rendered prompts; warns once per kind, then at INFO.

    Args:
        model: the name used in the warnings (``base`` or ``base+adapter``).
        limit: the model's number of positions (None: not checked).
        controls: the tokenizer's control-token texts (:func:`control_token_texts`).
    """

    def __init__(self, model: str, limit: int | None, controls: tuple[str, ...]) -> None:
        self.model = model
        self.limit = limit
        self.controls = controls
        self._warned: set[str] = set()

    def check(self, messages: list[ChatMessage], n_tokens: int | None) -> PromptReport:
        """Check one prompt of ``n_tokens`` tokens rendered from ``messages``."""
        if self.limit is not None and n_tokens is not None and n_tokens > self.limit:
            self._log("context", (
                f"hf-lora: a prompt of {n_tokens:,} tokens is longer than the context of "
                f"{self.model} ({self.limit:,} positions); the model generates past the "
                "positions it was trained on and its reply is unreliable. Shorten the input "
                "(fewer turns, shorter prompts) or use a model with a longer context."
            ))
        found = control_tokens_in(messages, self.controls)
        if found:
            self._log("control", (
                f"hf-lora: message text contains the control token(s) {', '.join(found)} of "
                f"{self.model}'s tokenizer; they are tokenized as real control tokens (as in "
                "the study's vLLM harness), so the text can end its turn or open another. "
                "Remove them from the input if that is not intended."
            ))
        return PromptReport(n_tokens, self.limit, found)

    def _log(self, kind: str, message: str) -> None:
        first = kind not in self._warned
        self._warned.add(kind)
        logger.log(logging.WARNING if first else logging.INFO, message)
