"""Inspect tasks for ``bench/bench_smollm2.py``: one-shot chat and a multi-turn tool-shaped loop.

Not part of charbench: they exist so the benchmark runs the providers through Inspect's own
``eval`` the way a user's task would. No scorer: the benchmark reads token usage and times
from the log.
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessageUser
from inspect_ai.solver import Generate, Solver, TaskState, generate, solver

REQUESTS = [
    "Write a short note to the team about next quarter's budget.",
    "Explain in two sentences why the sky is blue.",
    "Give me three tips for a productive morning.",
    "Summarise the plot of a heist movie in one paragraph.",
    "Draft a polite reply declining a meeting invitation.",
    "What should I pack for a weekend hiking trip?",
    "Describe a sunset over the sea to someone who has never seen one.",
    "List the steps to make a cup of tea.",
]


def _samples(n: int) -> list[Sample]:
    return [Sample(id=i, input=f"{REQUESTS[i % len(REQUESTS)]} (request {i})")
            for i in range(n)]


@task
def oneshot(n: int = 32) -> Task:
    """``n`` independent single-turn chat samples."""
    return Task(dataset=_samples(n), solver=generate())


@solver
def _turns(turns: int) -> Solver:
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        for t in range(turns):
            state = await generate(state)
            if t < turns - 1:
                state.messages.append(ChatMessageUser(
                    content=f"[TOOL OUTPUT] step {t}: ok, 3 results found. Continue."))
        return state

    return solve


@task
def multiturn(n: int = 16, turns: int = 6) -> Task:
    """``n`` conversations of ``turns`` model turns, a tool-style user turn between them."""
    return Task(dataset=_samples(n), solver=_turns(turns))
