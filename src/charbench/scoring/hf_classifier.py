"""The ``hf`` backend: a Hugging Face sequence-classification checkpoint as a persona classifier.

See :mod:`charbench.scoring.classifiers` for the contract (label order from
``config.id2label``, safetensors only unless ``CHARBENCH_ALLOW_PICKLE=1``, no remote code).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from charbench._device import default_device
from charbench.scoring.classifier_base import (
    BatchedClassifier,
    FloatArray,
    softmax,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 8192
"""Default truncation length in tokens (what the released classifiers were used with)."""

DEFAULT_MAX_BATCH_TOKENS = 32768
"""Default padded-token budget of one forward pass of the ``hf`` backend."""

ALLOW_PICKLE_ENV = "CHARBENCH_ALLOW_PICKLE"
"""Set to ``1`` to let the ``hf`` backend load pickled (non-safetensors) weights."""


class HFClassifier(BatchedClassifier):
    """A Hugging Face sequence-classification checkpoint (see module docs).

    Args:
        spec: Hub id or local directory.
        max_length: Truncation in tokens (default 8192), lowered to the model's
            ``max_position_embeddings`` when that is smaller (with a warning).
        device: Torch device (default: ``cuda`` when available, else ``cpu``).
        max_batch_tokens: Padded tokens per forward pass (default 32768); a single text
            longer than the budget still runs, alone.
        max_batch_size: Texts per forward pass (default 256).
    """

    def __init__(
        self,
        spec: str,
        *,
        max_length: int = DEFAULT_MAX_LENGTH,
        device: str | None = None,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        max_batch_size: int = 256,
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 tokens (got {max_length})")
        allow_pickle = os.environ.get(ALLOW_PICKLE_ENV, "") == "1"
        try:
            tokenizer = AutoTokenizer.from_pretrained(spec)
            model = AutoModelForSequenceClassification.from_pretrained(
                spec,
                use_safetensors=None if allow_pickle else True,
                trust_remote_code=False,
                dtype=torch.float32,
            )
        except (OSError, ValueError) as exc:
            hint = (
                ""
                if allow_pickle
                else f" If the checkpoint only has pickled .bin weights and you trust it, "
                f"set {ALLOW_PICKLE_ENV}=1."
            )
            raise ValueError(
                f"could not load the persona classifier {spec!r}: {exc}. Pass "
                "-T classifier=HUB_ID_OR_PATH naming a sequence-classification checkpoint "
                "(a local directory, or a Hub id present in the Hub cache when offline)." + hint
            ) from exc
        labels = labels_from_config(model.config, spec)
        if tokenizer.pad_token_id is None:
            raise ValueError(
                f"the tokenizer of classifier {spec!r} has no padding token; batching needs one"
            )
        limit = getattr(model.config, "max_position_embeddings", None)
        if isinstance(limit, int) and 0 < limit < max_length:
            logger.warning(
                "classifier %s accepts at most %d positions; truncating inputs at %d tokens "
                "instead of the requested %d",
                spec,
                limit,
                limit,
                max_length,
            )
            max_length = limit
        super().__init__(spec, labels, max_batch_tokens, max_batch_size)
        self.max_length = max_length
        self.device = device or default_device()
        self.tokenizer = tokenizer
        self.model = model.to(self.device).eval()

    def _prepare(self, texts: list[str]) -> tuple[list[Any], list[int]]:
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        ids = [list(x) for x in enc["input_ids"]]
        return ids, [len(x) for x in ids]

    def _forward(self, items: list[Any]) -> FloatArray:
        import torch

        ids: list[list[int]] = items
        batch = self.tokenizer.pad(
            {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids]},
            padding=True,
            return_tensors="pt",
        )
        with torch.inference_mode():
            logits = self.model(
                input_ids=batch["input_ids"].to(self.device),
                attention_mask=batch["attention_mask"].to(self.device),
            ).logits
        return softmax(logits.float().cpu().numpy())


def labels_from_config(config: Any, spec: str) -> list[str]:
    """The persona labels of a checkpoint config, in id order.

    Raises:
        ValueError: the config has no ``id2label``, or only generic ``LABEL_i`` names.
    """
    id2label = getattr(config, "id2label", None) or {}
    if not id2label:
        raise ValueError(f"classifier {spec!r} has no id2label in its config")
    labels = [str(id2label[i]) for i in sorted(int(k) for k in id2label)]
    if all(label.startswith("LABEL_") for label in labels):
        raise ValueError(
            f"classifier {spec!r} has only generic labels ({', '.join(labels)}) in "
            "config.id2label; it must name the personas (e.g. sarcasm, humor, ...)"
        )
    return labels
