"""The generic micro-batcher: draining, per-item errors, leftovers, tick coalescing, shutdown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from charbench._batcher import BatcherClosed, MicroBatcher, Pending

Entries = list[Pending[int, int]]


def _double(pending: Entries) -> Sequence[Pending[int, int]]:
    for e in pending:
        e.resolve(2 * e.item)
    return []


def test_items_queued_while_busy_are_served_together() -> None:
    gate = threading.Event()
    started = threading.Event()

    def handler(pending: Entries) -> Sequence[Pending[int, int]]:
        started.set()
        gate.wait(5)
        return _double(pending)

    b: MicroBatcher[int, int] = MicroBatcher(handler, "t")
    first = b.submit(0)
    assert started.wait(5)
    rest = [b.submit(i) for i in range(1, 6)]  # queued while the handler is busy
    gate.set()
    assert first.result(5) == 0
    assert [f.result(5) for f in rest] == [2, 4, 6, 8, 10]
    assert b.rounds == [1, 5]
    b.close()


def test_one_failed_item_does_not_fail_the_others() -> None:
    def handler(pending: Entries) -> Sequence[Pending[int, int]]:
        for e in pending:
            if e.item == 3:
                e.fail(ValueError("bad item 3"))
            else:
                e.resolve(e.item)
        return []

    b: MicroBatcher[int, int] = MicroBatcher(handler, "t")
    futures = [b.submit(i) for i in range(5)]
    with pytest.raises(ValueError, match="bad item 3"):
        futures[3].result(5)
    assert [futures[i].result(5) for i in (0, 1, 2, 4)] == [0, 1, 2, 4]
    b.close()


def test_handler_exception_reaches_unserved_callers_and_worker_survives() -> None:
    gate = threading.Event()
    started = threading.Event()

    def handler(pending: Entries) -> Sequence[Pending[int, int]]:
        if pending[0].item == -1:  # the first round holds the worker until both are queued
            started.set()
            gate.wait(5)
            return _double(pending)
        pending[0].resolve(100)
        if pending[0].item == 0:
            raise RuntimeError("boom")
        return _double(pending)

    b: MicroBatcher[int, int] = MicroBatcher(handler, "t")
    b.submit(-1)
    assert started.wait(5)
    f0, f1 = b.submit(0), b.submit(1)
    gate.set()
    assert f0.result(5) == 100  # resolved before the failure: kept
    with pytest.raises(RuntimeError, match="boom"):
        f1.result(5)
    assert b.submit(7).result(5) == 100  # the worker is still alive
    b.close()


def test_leftovers_come_first_in_the_next_round_and_unhandled_items_fail() -> None:
    seen: list[list[int]] = []

    def handler(pending: Entries) -> Sequence[Pending[int, int]]:
        seen.append([e.item for e in pending])
        head = pending[0]
        if head.item == 99:
            return []  # neither served nor kept: the batcher must fail it
        head.resolve(head.item)
        return pending[1:]  # serve one per round

    b: MicroBatcher[int, int] = MicroBatcher(handler, "t")

    async def burst() -> list[asyncio.Future[int]]:
        return [asyncio.wrap_future(b.submit_in_loop(i)) for i in (1, 2, 3)]

    async def main() -> list[int]:
        futs = await burst()
        return list(await asyncio.gather(*futs))

    assert asyncio.run(main()) == [1, 2, 3]
    assert seen[:3] == [[1, 2, 3], [2, 3], [3]]
    with pytest.raises(RuntimeError, match="neither served nor kept"):
        b.submit(99).result(5)
    b.close()


def test_one_event_loop_tick_reaches_the_worker_as_one_round() -> None:
    b: MicroBatcher[int, int] = MicroBatcher(_double, "t")

    async def one(i: int) -> int:
        return await asyncio.wrap_future(b.submit_in_loop(i))

    async def main() -> list[int]:
        return list(await asyncio.gather(*(one(i) for i in range(8))))

    assert asyncio.run(main()) == [2 * i for i in range(8)]
    assert b.rounds == [8]
    b.close()


def test_close_serves_what_was_queued_then_refuses() -> None:
    gate = threading.Event()

    def handler(pending: Entries) -> Sequence[Pending[int, int]]:
        gate.wait(5)
        return _double(pending)

    b: MicroBatcher[int, int] = MicroBatcher(handler, "t")
    futures = [b.submit(i) for i in range(3)]
    gate.set()
    b.close()
    assert [f.result(5) for f in futures] == [0, 2, 4]
    with pytest.raises(BatcherClosed):
        b.submit(5)
    assert b.closed
    assert not any(t.name == "t" and t.is_alive() for t in threading.enumerate())


def test_cancelled_items_are_dropped_before_the_handler() -> None:
    gate = threading.Event()
    seen: list[list[int]] = []

    def handler(pending: Entries) -> Sequence[Pending[int, int]]:
        seen.append([e.item for e in pending])
        gate.wait(5)
        return _double(pending)

    b: MicroBatcher[int, int] = MicroBatcher(handler, "t")
    b.submit(0)
    while not seen:
        threading.Event().wait(0.01)
    doomed, kept = b.submit(1), b.submit(2)
    assert doomed.cancel()
    gate.set()
    assert kept.result(5) == 4
    assert seen == [[0], [2]]
    b.close()


def _round_of_four(b: MicroBatcher[int, int], gate: threading.Event,
                   started: threading.Event) -> None:
    """Serve a lone first item, then 4 items queued meanwhile as one round."""
    first = b.submit(0)
    assert started.wait(5)
    four = [b.submit(i) for i in range(1, 5)]
    gate.set()
    assert first.result(5) == 0 and [f.result(5) for f in four] == [2, 4, 6, 8]


def _come_back(b: MicroBatcher[int, int], items: list[int]) -> list[int]:
    """Submit ``items`` one by one, 30 ms apart (callers returning from their tools)."""
    futures = []
    for i in items:
        futures.append(b.submit(i))
        threading.Event().wait(0.03)
    return [f.result(10) for f in futures]


def test_callers_of_one_round_that_come_back_apart_are_regrouped() -> None:
    gate, started = threading.Event(), threading.Event()

    def handler(pending: Entries) -> Sequence[Pending[int, int]]:
        started.set()
        gate.wait(5)
        return _double(pending)

    b: MicroBatcher[int, int] = MicroBatcher(handler, "t", regroup_s=10.0)
    _round_of_four(b, gate, started)
    assert _come_back(b, [5, 6, 7, 8]) == [10, 12, 14, 16]
    assert b.rounds == [1, 4, 4]  # one round, not a round of the first one back
    # fewer come back than before: the round waits at most regroup_s, then serves them
    b.regroup_s = 0.2
    assert _come_back(b, [9, 10]) == [18, 20]
    assert b.rounds == [1, 4, 4, 2]
    b.close()

