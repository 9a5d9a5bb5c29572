"""The shared-generation machinery of charbench._generation (concurrency and errors)."""

from __future__ import annotations

from typing import Any

import anyio
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig, get_model

from charbench._generation import SharedGenerationError, SharedResults, generation_key


def test_concurrent_callers_share_one_run() -> None:
    calls = 0

    async def factory() -> str:
        nonlocal calls
        calls += 1
        await anyio.sleep(0.05)
        return "reply"

    async def main() -> list[tuple[str, str | None]]:
        shared = SharedResults()
        results: list[tuple[str, str | None]] = []

        async def one(i: int) -> None:
            await anyio.sleep(0.001 * i)
            results.append(await shared.get_or_run("k", factory, owner=f"s{i}", consumers=10))

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(one, i)
        assert len(shared) == 0  # freed after its 10 consumers
        return results

    results = anyio.run(main)
    assert calls == 1
    assert {v for v, _ in results} == {"reply"}
    producers = [p for _, p in results]
    assert producers.count(None) == 1  # exactly one caller generated
    assert set(producers) - {None} == {"s0"}  # the others name it


def test_late_consumer_gets_finished_result_until_all_consumed() -> None:
    calls = 0

    async def factory() -> int:
        nonlocal calls
        calls += 1
        return calls

    async def main() -> None:
        shared = SharedResults()
        assert await shared.get_or_run("k", factory, owner="a", consumers=2) == (1, None)
        assert len(shared) == 1
        assert await shared.get_or_run("k", factory, owner="b", consumers=2) == (1, "a")
        assert len(shared) == 0
        # all consumers served: the next request is a new experiment
        assert await shared.get_or_run("k", factory, owner="c", consumers=2) == (2, None)

    anyio.run(main)


def test_failure_reaches_waiters_of_that_key_only_and_does_not_poison() -> None:
    attempts = 0

    async def failing() -> str:
        nonlocal attempts
        attempts += 1
        await anyio.sleep(0.05)
        if attempts == 1:
            raise ConnectionError("provider down")
        return "second try"

    async def fine() -> str:
        await anyio.sleep(0.1)
        return "other prompt"

    async def main() -> dict[str, Any]:
        shared = SharedResults()
        out: dict[str, Any] = {}

        async def call(name: str, key: str, fn: Any) -> None:
            try:
                out[name] = await shared.get_or_run(key, fn, owner=name, consumers=3)
            except Exception as e:
                out[name] = e

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "leader", "a", failing)
            await anyio.sleep(0.01)
            tg.start_soon(call, "waiter", "a", failing)
            tg.start_soon(call, "b-leader", "b", fine)
            tg.start_soon(call, "b-waiter", "b", fine)
        assert len(shared) == 1  # "b" still expects one consumer; "a" was dropped on failure
        # a later request for the failed key generates afresh
        out["retry"] = await shared.get_or_run("a", failing, owner="retry", consumers=3)
        return out

    out = anyio.run(main)
    assert isinstance(out["leader"], ConnectionError)
    assert isinstance(out["waiter"], SharedGenerationError)
    assert "'leader'" in str(out["waiter"]) and "provider down" in str(out["waiter"])
    assert isinstance(out["waiter"].__cause__, ConnectionError)
    assert out["b-leader"] == ("other prompt", None)
    assert out["b-waiter"] == ("other prompt", "b-leader")
    assert out["retry"] == ("second try", None)


def test_cancelled_producer_is_replaced_by_a_waiter() -> None:
    started: list[str] = []

    def factory_for(name: str) -> Any:
        async def factory() -> str:
            started.append(name)
            await anyio.sleep(0.2)
            return f"made by {name}"

        return factory

    async def main() -> dict[str, Any]:
        shared = SharedResults()
        out: dict[str, Any] = {}

        async def leader() -> None:
            with anyio.move_on_after(0.05):  # e.g. the sample's time limit
                await shared.get_or_run("k", factory_for("leader"), owner="leader")
            out["leader"] = "cancelled"

        async def waiter() -> None:
            await anyio.sleep(0.01)
            out["waiter"] = await shared.get_or_run("k", factory_for("waiter"), owner="waiter")

        async with anyio.create_task_group() as tg:
            tg.start_soon(leader)
            tg.start_soon(waiter)
        return out

    out = anyio.run(main)
    assert out == {"leader": "cancelled", "waiter": ("made by waiter", None)}
    assert started == ["leader", "waiter"]


def test_generation_key_identity() -> None:
    model = get_model("mockllm/model")
    user = ChatMessageUser(content="hello")
    cfg = GenerateConfig(temperature=0.7)
    key = generation_key(model, [user], cfg, epoch=1, scope="eval-1")
    # message ids do not matter
    assert key == generation_key(model, [ChatMessageUser(content="hello")], cfg, epoch=1, scope="eval-1")
    others = [
        generation_key(model, [user], cfg, epoch=2, scope="eval-1"),
        generation_key(model, [user], cfg, epoch=1, scope="eval-2"),
        generation_key(model, [user], GenerateConfig(temperature=0.8), epoch=1, scope="eval-1"),
        generation_key(model, [ChatMessageUser(content="hello!")], cfg, epoch=1, scope="eval-1"),
        generation_key(
            model, [ChatMessageSystem(content="be sarcastic"), user], cfg, epoch=1, scope="eval-1"
        ),
        generation_key(get_model("mockllm/other"), [user], cfg, epoch=1, scope="eval-1"),
    ]
    assert len({key, *others}) == len(others) + 1

