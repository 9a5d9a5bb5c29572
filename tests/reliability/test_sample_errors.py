"""One bad sample fails that sample only; a systematic fault stops the eval.

charbench's tasks set ``fail_on_error=0.05`` (:data:`charbench.reliability.
SAMPLE_ERROR_TOLERANCE`): a tool or the scorer raising on one sample records that sample
with its error, every other sample finishes, the log is ``success``, ``charbench report``
counts the error per cell and leaves it out of the statistics, and ``eval_retry`` re-runs
only the errored samples. When errors reach 5% of the samples the eval fails.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import eval, eval_retry
from inspect_ai.log import EvalLog
from inspect_ai.log._samples import sample_active
from reliab_support import read_calls

from charbench.agentic_email.tools import WorkplaceSim
from charbench.chat_persona import chat_persona
from charbench.reliability import SAMPLE_ERROR_TOLERANCE
from charbench.report import build_report

agentic_task = importlib.import_module("charbench.agentic_email.task")

PERSONAS = ["sarcasm", "humor"]
FAMILIES = ["budget_overreach", "recognition", "vendor_renewal", "new_hire_welcome",
            "missed_meetings"]  # 25 scenarios x 2 personas = 50 samples
N = 50
BAD_TOOL = "humor-recognition_v2"
BAD_SCORE = "sarcasm-vendor_renewal_v3"


def _task_args(clf: Path) -> dict[str, Any]:
    return {"personas": PERSONAS, "scenarios": FAMILIES, "classifier": str(clf),
            "restrict_to_evaluated": True}


def _task(clf: Path) -> Any:
    return agentic_task.agentic_email(**_task_args(clf))


def _active_id() -> str | None:
    active = sample_active()
    return None if active is None else str(active.sample.id)


def _break_one_tool_and_one_score(monkeypatch: pytest.MonkeyPatch) -> None:
    real_lookup = WorkplaceSim.lookup_contact
    real_text = agentic_task.email_text

    def lookup(self: WorkplaceSim, name_or_email: str) -> str:
        if _active_id() == BAD_TOOL:
            raise RuntimeError("simulated tool crash")
        return real_lookup(self, name_or_email)

    async def text(state: Any) -> Any:
        if str(state.sample_id) == BAD_SCORE:
            raise RuntimeError("simulated scorer crash")
        return await real_text(state)

    monkeypatch.setattr(WorkplaceSim, "lookup_contact", lookup)
    monkeypatch.setattr(agentic_task, "email_text", text)


def test_tasks_default_to_the_documented_error_policy(tiny_clf: Path) -> None:
    assert SAMPLE_ERROR_TOLERANCE == 0.05
    assert _task(tiny_clf).fail_on_error == SAMPLE_ERROR_TOLERANCE
    chat = chat_persona(personas=PERSONAS, prompts="builtin", n=2, classifier=str(tiny_clf))
    assert chat.fail_on_error == SAMPLE_ERROR_TOLERANCE


def _errors(log: EvalLog) -> dict[str, str]:
    return {str(s.id): s.error.message for s in log.samples or [] if s.error is not None}


def test_one_bad_tool_and_one_bad_score_fail_only_their_samples(
    tiny_clf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_one_tool_and_one_score(monkeypatch)
    calls = tmp_path / "calls.jsonl"
    model_args = {"calls_file": str(calls)}
    log_dir = tmp_path / "logs"
    # by registry name, so the task is built inside the eval (as `inspect eval` does)
    [log] = eval("charbench/agentic_email", task_args=_task_args(tiny_clf),
                 model="reliab/{persona}", model_args=model_args,
                 log_dir=str(log_dir), display="none", max_connections=10)
    assert log.status == "success", log.error
    samples = log.samples or []
    assert len(samples) == N
    errors = _errors(log)
    assert set(errors) == {BAD_TOOL, BAD_SCORE}
    assert "simulated tool crash" in errors[BAD_TOOL]
    assert "simulated scorer crash" in errors[BAD_SCORE]
    for s in samples:  # every other sample finished and was scored
        if str(s.id) not in errors:
            score = next(iter((s.scores or {}).values()))
            assert (score.metadata or {})["outcome"] == "emailed", s.id

    report = build_report(log_dir, n_boot=20, write=False)
    [row] = report.summary.to_dict("records")
    assert row["n_errors"] == 2 and row["n_total"] == N - 2
    assert any("2 sample(s) errored" in note for note in report.notes)

    # the fault fixed, eval_retry re-runs the two errored samples and nothing else
    monkeypatch.undo()
    first_calls = len(read_calls(calls))
    [retried] = eval_retry(log, log_dir=str(log_dir), display="none")
    assert retried.status == "success" and not _errors(retried)
    assert len(retried.samples or []) == N
    again = {c["sample"] for c in read_calls(calls)[first_calls:]}
    assert again == {BAD_TOOL, BAD_SCORE}
    report = build_report(log_dir, n_boot=20, write=False)
    rows = report.summary.to_dict("records")
    assert len(rows) == 1, (report.summary.T, report.notes, report.logs)
    assert rows[0]["n_errors"] == 0 and rows[0]["n_total"] == N


def test_a_systematic_fault_fails_the_eval(
    tiny_clf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lookup(self: WorkplaceSim, name_or_email: str) -> str:
        raise RuntimeError("directory service down")

    monkeypatch.setattr(WorkplaceSim, "lookup_contact", lookup)
    [log] = eval(_task(tiny_clf), model="reliab/{persona}", log_dir=str(tmp_path),
                 display="none", max_connections=2)
    assert log.status == "error"
    assert log.error is not None and "directory service down" in log.error.message
