"""The shared classifier machinery: the :class:`PersonaClassifier` contract and the batching base.

:class:`BatchedClassifier` turns a backend's two steps (prepare inputs, run one forward pass)
into length-sorted, token-budgeted batches, synchronously (``classify_batch``) or through a
:class:`charbench._batcher.MicroBatcher` worker thread that serves every text queued
meanwhile (``classify``). The backends are :mod:`charbench.scoring.hf_classifier` and
:mod:`charbench.scoring.zeroshot`; :mod:`charbench.scoring.classifiers` picks and caches them.
"""

from __future__ import annotations

import abc
import asyncio
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from charbench._batcher import MicroBatcher, Pending

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


class BatchedClassifier(abc.ABC):
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


def softmax(x: NDArray[Any]) -> FloatArray:
    """Row-wise softmax over the last axis, in float64 (max-shifted for stability)."""
    z = np.asarray(x, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float64)


