"""One generic micro-batcher: a worker thread that serves queued items in batches (a leaf).

Used by the ``hf-lora`` engine's request intake and by the persona classifier. Callers
:meth:`MicroBatcher.submit` an item and get a :class:`concurrent.futures.Future`; the
worker thread drains *everything* queued at that moment into its pending list and hands
the pending list to the ``handler``. There is no waiting period: a lone item is served at
once, and whatever arrives while the handler runs is served in the next round.

**Regrouping** (``regroup_s``, default 0: off). Callers that were answered together often
come back together (the next turn of agent rollouts that share a batch), but not in the
same instant: each first runs its tool and renders its next prompt, one after another on
the event loop. Served the moment the first of them is back, they split into two batches
that stay out of step for the rest of the eval (measured: 20 rollouts ran as batches of 11
and 9 from the second turn on, the second waiting for the first). With ``regroup_s`` set,
a round that has fewer entries than the previous round waits until it has as many, or
until ``regroup_s`` has passed since the previous round ended, whichever comes first. A
lone caller never waits (it is as many as before), nor does a round that is full.

The contract with the handler (``handler(pending) -> leftovers``):

- ``pending`` holds :class:`Pending` entries, oldest first; each entry's future is already
  running (cancelled futures are dropped before the handler sees them).
- The handler resolves the entries it serves, each on its own, with
  :meth:`Pending.resolve` or :meth:`Pending.fail` (per-item error delivery: one bad item
  fails alone), and returns the entries it chose not to serve this round (for example
  those that cannot share a batch with the oldest); they come first in the next round.
- If the handler raises, every entry it was given that is not yet resolved gets that
  exception. An entry neither resolved nor returned gets a ``RuntimeError`` naming the
  handler: a caller never waits forever.

:meth:`MicroBatcher.submit_in_loop` coalesces one asyncio event-loop iteration: items
submitted by coroutines running in the same iteration (Inspect starting many samples at
once) reach the worker together, at no waiting cost, so an idle worker does not start a
batch of one while the rest of a burst is still being prepared.

:meth:`MicroBatcher.close` shuts down cleanly: items queued before the call are served in
a final round, the worker thread ends, anything it could not serve fails with
:class:`BatcherClosed`, and later submits raise it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["BatcherClosed", "MicroBatcher", "Pending"]

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class BatcherClosed(RuntimeError):
    """The batcher was closed before this item was served."""


@dataclass(eq=False)
class Pending(Generic[ItemT, ResultT]):
    """One queued item and the future its caller waits on."""

    item: ItemT
    future: concurrent.futures.Future[ResultT] = field(
        default_factory=concurrent.futures.Future
    )

    def resolve(self, value: ResultT) -> None:
        """Deliver ``value`` to this item's caller (ignored if already resolved)."""
        if not self.future.done():
            self.future.set_result(value)

    def fail(self, err: BaseException) -> None:
        """Deliver ``err`` to this item's caller only (ignored if already resolved)."""
        if not self.future.done():
            self.future.set_exception(err)

    @property
    def done(self) -> bool:
        """Whether this item has been resolved or failed."""
        return self.future.done()


Handler = Callable[[list[Pending[ItemT, ResultT]]], Sequence[Pending[ItemT, ResultT]]]
_CLOSE = object()


class MicroBatcher(Generic[ItemT, ResultT]):
    """A queue served in batches by one daemon worker thread (see the module docstring).

    Args:
        handler: serves a round of pending entries and returns the ones it left for later.
        name: the worker thread's name (shown in stack dumps).
        regroup_s: the longest a round waits for the callers of the previous round to
            come back (see the module docstring; default 0, no waiting).
    """

    def __init__(self, handler: Handler[ItemT, ResultT], name: str,
                 regroup_s: float = 0.0) -> None:
        self._handler = handler
        self.name = name
        self.regroup_s = max(0.0, float(regroup_s))
        self._last_round = 0
        self._round_end = 0.0
        self._queue: queue.SimpleQueue[list[Pending[ItemT, ResultT]] | object] = (
            queue.SimpleQueue()
        )
        self._tick: dict[asyncio.AbstractEventLoop, list[Pending[ItemT, ResultT]]] = {}
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.rounds: list[int] = []
        """Number of pending entries handed to the handler, per round (most recent last)."""

    def submit(self, item: ItemT) -> concurrent.futures.Future[ResultT]:
        """Queue ``item`` now; its future resolves when the handler serves it.

        Raises:
            BatcherClosed: after :meth:`close`.
        """
        entry: Pending[ItemT, ResultT] = Pending(item)
        self._put([entry])
        return entry.future

    def submit_in_loop(self, item: ItemT) -> concurrent.futures.Future[ResultT]:
        """Queue ``item`` at the end of the running asyncio loop's current iteration.

        Raises:
            BatcherClosed: after :meth:`close`.
            RuntimeError: no running event loop (use :meth:`submit`).
        """
        if self._closed:
            raise BatcherClosed(f"{self.name}: closed")
        loop = asyncio.get_running_loop()
        entry: Pending[ItemT, ResultT] = Pending(item)
        buffer = self._tick.get(loop)
        if buffer is None:
            buffer = self._tick[loop] = []
            loop.call_soon(self._flush, loop)
        buffer.append(entry)
        return entry.future

    def close(self, timeout: float | None = 10.0) -> None:
        """Serve what is queued, stop the worker, fail anything left (see module docs)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            worker = self._worker
            self._queue.put(_CLOSE)
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
        self._fail_queued()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # ----------------------------------------------------------------- internals

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        entries = self._tick.pop(loop, [])
        if not entries:
            return
        try:
            self._put(entries)
        except BatcherClosed as err:
            for e in entries:
                e.fail(err)

    def _put(self, entries: list[Pending[ItemT, ResultT]]) -> None:
        with self._lock:
            if self._closed:
                raise BatcherClosed(f"{self.name}: closed")
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, name=self.name, daemon=True)
                self._worker.start()
            self._queue.put(entries)

    def _fail_queued(self) -> None:
        while True:
            try:
                got = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(got, list):
                for e in got:
                    e.fail(BatcherClosed(f"{self.name}: closed before this item was served"))

    def _drain(self, pending: list[Pending[ItemT, ResultT]], block: bool,
               timeout: float | None = None) -> bool:
        """Move queued entries into ``pending``; False once the close marker is seen."""
        while True:
            try:
                got = self._queue.get(timeout=timeout) if block else self._queue.get_nowait()
            except queue.Empty:
                return True
            block = False
            if not isinstance(got, list):
                return False
            pending.extend(e for e in got if e.future.set_running_or_notify_cancel())

    def _regroup(self, pending: list[Pending[ItemT, ResultT]]) -> bool:
        """Wait (see the module docstring) until ``pending`` is as large as the previous
        round or ``regroup_s`` has passed since it ended; False if closed meanwhile."""
        deadline = self._round_end + self.regroup_s
        while len(pending) < self._last_round:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            if not self._drain(pending, block=True, timeout=left):
                return False
        return True

    def _serve(self) -> None:
        pending: list[Pending[ItemT, ResultT]] = []
        running = True
        while running:
            running = self._drain(pending, block=not pending)
            if running and pending and self.regroup_s:
                running = self._regroup(pending)
            if not pending:
                continue
            self.rounds.append(len(pending))
            self._last_round = len(pending)
            given, pending = pending, []
            try:
                left = list(self._handler(given))
            except BaseException as err:  # deliver the failure to every unserved caller
                for e in given:
                    e.fail(err)
                self._round_end = time.monotonic()
                continue
            kept = {id(e) for e in left}
            for e in given:
                if id(e) not in kept and not e.done:
                    e.fail(RuntimeError(f"{self.name}: handler neither served nor kept an item"))
            pending = [e for e in left if not e.done]
            self._round_end = time.monotonic()
        for e in pending:
            e.fail(BatcherClosed(f"{self.name}: closed before this item was served"))
