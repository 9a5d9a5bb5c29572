"""Fixtures for the report tests: real Inspect logs written by tiny scripted evals.

:func:`scripted_log` runs Inspect's ``eval()`` on a small local task whose samples and
scores follow charbench's contracts (docs/architecture.md: sample metadata, Score metadata,
eval metadata), with predictions and outcomes chosen by the test. The logs are real ``.eval``
files read back by ``charbench report`` like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Task, eval, task
from inspect_ai.dataset import Sample
from inspect_ai.log import EvalLog
from inspect_ai.scorer import Score, Scorer, Target, mean, scorer
from inspect_ai.solver import Generate, Solver, TaskState, solver

Pred = Callable[[str, str], "str | None"]
"""(persona, cluster) -> predicted persona, or None for nothing classified."""


@solver
def _scripted_solver() -> Solver:
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        if state.metadata.get("_error"):
            raise RuntimeError(f"scripted failure of {state.sample_id}")
        return state

    return solve


@scorer(metrics=[mean()])
def _scripted_scorer(classifier: str, restrict: bool) -> Scorer:
    async def score(state: TaskState, target: Target) -> Score:
        m = state.metadata
        pred = m["_pred"]
        return Score(
            value=1.0 if pred == m["persona"] else 0.0,
            answer=pred or "",
            metadata={
                "gold": m["persona"],
                "pred": pred,
                "labels": m["personas"],
                "cluster": m["cluster"],
                "classifier": classifier,
                "restrict": restrict,
                "outcome": m["_outcome"],
                "probs": {},
            },
        )

    return score


def scripted_log(
    log_dir: Path,
    *,
    base: str,
    condition: str,
    task_name: str,
    personas: list[str],
    clusters: list[str],
    pred: Pred,
    outcome: Callable[[str, str], str] | None = None,
    errors: set[tuple[str, str]] = frozenset(),  # type: ignore[assignment]
    only_personas: list[str] | None = None,
    classifier: str = "tiny-clf",
    restrict: bool = False,
    suffix: str | None = "none",
    epochs: int = 1,
    extra_meta: dict[str, Any] | None = None,
) -> EvalLog:
    """Write one real Inspect log of a charbench-shaped eval and return it.

    Args:
        log_dir: where the ``.eval`` file goes.
        base, condition, task_name: the eval metadata cell.
        personas: evaluated personas (label set).
        clusters: prompt/scenario ids; one sample per (persona, cluster).
        pred: scripted prediction per (persona, cluster) (None: nothing classified).
        outcome: scripted outcome per (persona, cluster); default ``replied`` for chat and
            ``emailed``/``no_email`` (by pred) for agentic tasks.
        errors: (persona, cluster) pairs whose sample raises (an errored sample).
        only_personas: write samples of these personas only (a per-persona log).
        classifier, restrict, suffix: eval metadata pooling keys.
        epochs: Inspect epochs (each epoch is another row).
        extra_meta: overrides merged into the ``charbench`` eval metadata.
    """
    agentic = task_name != "chat"

    def default_outcome(p: str, c: str) -> str:
        if not agentic:
            return "replied" if pred(p, c) is not None else "empty"
        return "emailed" if pred(p, c) is not None else "no_email"

    out_fn = outcome or default_outcome
    samples = []
    for p in only_personas or personas:
        for c in clusters:
            samples.append(
                Sample(
                    id=f"{p}-{c}",
                    input=f"prompt {c}",
                    target=p,
                    metadata={
                        "persona": p,
                        "personas": personas,
                        "cluster": c,
                        "task": "chat_persona" if not agentic else "agentic_email",
                        "_pred": pred(p, c),
                        "_outcome": out_fn(p, c),
                        "_error": (p, c) in errors,
                    },
                )
            )
    meta: dict[str, Any] = {
        "task": task_name,
        "base": base,
        "condition": condition,
        "classifier": classifier,
        "restrict": restrict,
        "personas": personas,
        "persona_prompt": False,
    }
    if not agentic:
        meta.update(suffix=suffix, selection="heldout")
    meta.update(extra_meta or {})

    @task(name=f"scripted_{task_name.replace('-', '_')}")
    def scripted() -> Task:
        return Task(
            dataset=samples,
            solver=_scripted_solver(),
            scorer=_scripted_scorer(classifier, restrict),
            metadata={"charbench": meta},
        )

    logs = eval(
        scripted(),
        model="mockllm/model",
        log_dir=str(log_dir),
        display="none",
        epochs=epochs,
        fail_on_error=False,
        log_level="error",
    )
    return logs[0]


@pytest.fixture
def make_log() -> Callable[..., EvalLog]:
    """The :func:`scripted_log` writer."""
    return scripted_log
