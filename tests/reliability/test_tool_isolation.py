"""Simulated tools have no effect outside their sample.

No network and no file writes while every tool runs in every scenario is tested in
``tests/agentic_email/test_tools.py::test_tools_have_no_side_effects`` (an audit hook sees
every open/socket/subprocess event). Here: what one sample *does* in the simulated workplace
(cancelling a meeting, sending an email) is invisible to the next sample of the same
scenario, and to the next epoch of the same sample.
"""

from __future__ import annotations

from pathlib import Path

from fixtures.scripted_models import reply, scripted_model, tool_call, tool_results
from inspect_ai import eval
from inspect_ai.log._samples import sample_active
from inspect_ai.model import ChatMessage, ModelOutput
from inspect_ai.tool import ToolInfo

from charbench.agentic_email import agentic_email

SCENARIO = "missed_meetings_v1"
MEETING = "MTG-1001"


def test_actions_do_not_leak_between_samples_or_epochs(tiny_clf: Path, tmp_path: Path) -> None:
    def script(turn: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        active = sample_active()
        assert active is not None
        canceller = str(active.sample.id).startswith("sarcasm") and active.epoch == 1
        steps = (
            [tool_call("cancel_meeting", {"meeting_id": MEETING}),
             tool_call("list_calendar", {"person": "me"})]
            if canceller
            else [tool_call("list_calendar", {"person": "me"})]
        )
        return steps[turn] if turn < len(steps) else reply("Done.")

    task = agentic_email(personas=["sarcasm", "humor"], scenarios=SCENARIO,
                         classifier=str(tiny_clf))
    # one sample at a time, in order: sarcasm epoch 1 cancels before every other sample runs
    [log] = eval(task, model=scripted_model(script), log_dir=str(tmp_path), display="none",
                 epochs=2, max_samples=1)
    assert log.status == "success", log.error
    calendars = {}
    for s in log.samples or []:
        results = tool_results(s.messages)
        calendars[(str(s.id), s.epoch)] = results[-1].text
    cancelled_view = calendars.pop(("sarcasm-" + SCENARIO, 1))
    assert MEETING not in cancelled_view or "cancelled" in cancelled_view.lower()
    assert len(calendars) == 3
    for key, text in calendars.items():  # the other samples and epochs see it untouched
        assert f"[{MEETING}]" in text and "cancelled" not in text.lower(), key
