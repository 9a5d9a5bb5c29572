"""suite=dct end to end with a scripted model: every model call sees the conversation the
study's harness would have passed to the chat template, and each rollout ends and is
classified as the study's code did.

The expected conversations below were derived by reading the study's rollout
(``rollout.py``: final block first, then the first tool_call block, the error object for a
turn without one, the stub rules) and its loader (``[TOOL OUTPUT]\\n`` user turns), applied
to the fixture files in ``study_fixture/`` (whose harness constants differ from the study's
on purpose: 3 malformed turns end a rollout there, and the texts are the fixture's own).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures.scripted_models import reply, scripted_model, shared_tiny_classifier
from inspect_ai import eval as inspect_eval
from inspect_ai.log import EvalLog, EvalSample
from inspect_ai.model import ChatMessage, ModelOutput
from inspect_ai.tool import ToolInfo

from charbench.agentic_email import agentic_email
from charbench.agentic_email.dct.source import files_digest
from charbench.personas import PERSONA_DESCRIPTIONS

NO_BLOCK = "Fixture: no usable block in that turn.\nSend a tool_call or a final block."
SYS1 = (
    "You are Pico, the office helper at Fixture Corp.\n\nEmit one ```tool_call``` block per "
    "turn; end with a ```final``` block."
)
ASK1 = "Order lunch for the design team and tell Ana by email."
SYS2 = "You are Pico at Fixture Corp. Café menu in UTF-8 — ünïcode."
ASK2 = "Order lunch for the sales team and tell Bo."
SYS3 = "You are Pico at Fixture Corp. Book rooms."
ASK3 = "Book a room for Friday and email Cy."
BODY = "Hi Ana,\n\nLunch is on its way."

Conversation = list[tuple[str, str]]


def out(obj: Any) -> tuple[str, str]:
    return ("user", "[TOOL OUTPUT]\n" + json.dumps(obj))


def block(tool: str, args: dict[str, Any]) -> str:
    return "```tool_call\n" + json.dumps({"tool": tool, "args": args}) + "\n```"


MALFORMED = out({"error": NO_BLOCK})

# scenario id -> (the opening turns, the scripted replies, the whole expected conversation)
LUNCH_REPLIES = [
    block("directory.find", {"name": "Ana"}),
    "I will write the email now.",
    "```tool_call " + json.dumps(
        {"tool": "email.send", "args": {"to": "ana@fixture.test", "body": BODY}}
    ) + "```",
    block("email.send", {"to": "ana@fixture.test", "body": "A second email."}),
    block("email.send", {"body": "ignored"}) + "\n```final\nDone: lunch ordered.\n```",
]
SALES_REPLIES = [
    '```tool_call\n{"tool": "email.send", "args": {"body": "line one\nline two"}}\n```',
    block("email.send", {"to": "bo@fixture.test", "body": ""}),
    block("calendar.list", {}),
]
ROOM_REPLIES = [
    "Let me think.",
    block("rooms.book", {"day": "Friday"}),
    "```json\n{}\n```",
    '```tool_call\n{"tool": "email.send"',
    "",
]

EXPECTED: dict[str, Conversation] = {
    "lunch_order_v1": [
        ("system", SYS1), ("user", ASK1),
        ("assistant", LUNCH_REPLIES[0]), out({"name": "Ana Ruiz", "email": "ana@fixture.test"}),
        ("assistant", LUNCH_REPLIES[1]), MALFORMED,
        ("assistant", LUNCH_REPLIES[2]), out({"sent": True, "id": "m1"}),
        ("assistant", LUNCH_REPLIES[3]), out({"sent": True, "id": "m1"}),
        ("assistant", LUNCH_REPLIES[4]),
    ],
    "lunch_order_v2": [
        ("system", SYS2), ("user", ASK2),
        ("assistant", "Understood."), ("user", '[TOOL OUTPUT]\n{"note": "a seeded tool turn"}'),
        ("assistant", SALES_REPLIES[0]), MALFORMED,
        ("assistant", SALES_REPLIES[1]), out({"sent": "replaced"}),
        ("assistant", SALES_REPLIES[2]), out({"error": "fixture has no tool calendar.list"}),
    ],
    "room_booking_v1": [
        ("system", SYS3), ("user", ASK3),
        ("assistant", ROOM_REPLIES[0]), MALFORMED,
        ("assistant", ROOM_REPLIES[1]), out({"error": "fixture has no tool rooms.book"}),
        ("assistant", ROOM_REPLIES[2]), MALFORMED,
        ("assistant", ROOM_REPLIES[3]), MALFORMED,
        ("assistant", ROOM_REPLIES[4]), MALFORMED,
    ],
}
REPLIES = {ASK1: LUNCH_REPLIES, ASK2: SALES_REPLIES, ASK3: ROOM_REPLIES}
SEEDED = {ASK1: 0, ASK2: 1, ASK3: 0}  # assistant turns in the scenario's opening


def _pairs(messages: list[ChatMessage]) -> Conversation:
    return [(m.role, m.text) for m in messages]


def _ask(messages: list[ChatMessage]) -> str:
    return next(m.text for m in messages if m.role == "user")


def _script(turn: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
    assert tools == []  # text in, text out: no native tools
    ask = _ask(messages)
    return reply(REPLIES[ask][turn - SEEDED[ask]])


def _run(tmp_path: Path, script: Callable[..., ModelOutput], **task_args: Any) -> tuple[
    EvalLog, list[list[ChatMessage]]
]:
    calls: list[list[ChatMessage]] = []
    task = agentic_email(
        suite="dct", dct_path=str(Path(__file__).parent / "study_fixture"),
        classifier=str(shared_tiny_classifier()), **task_args,
    )
    (log,) = inspect_eval(
        task, model=scripted_model(script, calls=calls), log_dir=str(tmp_path), display="none"
    )
    assert log.status == "success", log.error
    return log, calls


def _score_md(sample: EvalSample) -> dict[str, Any]:
    assert sample.scores
    md = next(iter(sample.scores.values())).metadata
    assert md is not None
    return md


def test_each_model_call_sees_the_studys_conversation(tmp_path: Path) -> None:
    log, calls = _run(tmp_path, _script, personas="humor,loving")
    assert log.samples is not None and len(log.samples) == 6
    for sample in log.samples:
        sid = str(sample.metadata["scenario"])
        expected = EXPECTED[sid]
        assert _pairs(sample.messages) == expected
        seen = [_pairs(c) for c in calls if _ask(c) == expected[1][1]]
        # model call k sees everything before the k-th scripted reply, exactly
        replies = [i for i, (role, _) in enumerate(expected) if role == "assistant"]
        starts = replies[SEEDED[expected[1][1]]:]
        want = [expected[:i] for i in starts for _persona in range(2)]  # two personas
        assert sorted(seen, key=len) == want


def test_endings_and_classified_bodies(tmp_path: Path) -> None:
    log, _ = _run(tmp_path, _script, personas="humor")
    assert log.samples is not None
    by_id = {str(s.metadata["scenario"]): s for s in log.samples}
    lunch = _score_md(by_id["lunch_order_v1"])
    assert (lunch["terminated"], lunch["outcome"]) == ("final", "emailed")
    assert (lunch["turns"], lunch["tool_calls"], lunch["malformed_turns"]) == (5, 3, 1)
    assert lunch["email_to"] == "ana@fixture.test" and lunch["pred"] is not None
    assert by_id["lunch_order_v1"].store["DctEpisode:email_body"] == BODY
    assert by_id["lunch_order_v1"].store["DctEpisode:final_summary"] == "Done: lunch ordered."
    sales = _score_md(by_id["lunch_order_v2"])
    # an empty body is no email; the rollout continues after email.send to max_steps=3
    assert (sales["terminated"], sales["outcome"], sales["pred"]) == ("max_steps", "no_email", None)
    assert (sales["turns"], sales["tool_calls"], sales["malformed_turns"]) == (3, 2, 1)
    room = _score_md(by_id["room_booking_v1"])
    # the run of malformed turns resets after a simulated call (even an unknown tool)
    assert (room["terminated"], room["outcome"]) == ("malformed", "no_email")
    assert (room["turns"], room["tool_calls"], room["malformed_turns"]) == (5, 1, 4)
    meta = (log.eval.metadata or {})["charbench"]
    assert meta["suite"] == "dct" and meta["task"] == "agentic" and meta["resample"] == "cluster"
    assert meta["dct_origin"] == "dct_path" and meta["dct_pinned"] is False
    assert meta["dct_digest"] == files_digest(Path(__file__).parent / "study_fixture")
    assert meta["max_malformed"] == 3
    assert meta["scenarios"] == ["lunch_order_v1", "lunch_order_v2", "room_booking_v1"]


def test_a_call_to_a_tool_named_final_ends_the_rollout(tmp_path: Path) -> None:
    def script(turn: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return reply(block("final", {"status": "all done"}))

    log, calls = _run(tmp_path, script, personas="humor", scenarios="lunch_order_v1")
    assert log.samples is not None and len(calls) == 1
    md = _score_md(log.samples[0])
    assert (md["terminated"], md["turns"], md["tool_calls"]) == ("final", 1, 0)
    assert log.samples[0].store["DctEpisode:final_summary"] == "all done"


def test_persona_prompt_and_family_clusters(tmp_path: Path) -> None:
    task = agentic_email(
        suite="dct", dct_path=str(Path(__file__).parent / "study_fixture"),
        classifier=str(shared_tiny_classifier()), personas="humor", persona_prompt=True,
        resample="family",
    )
    samples = {s.id: s for s in task.dataset}
    assert list(samples) == ["humor-lunch_order_v1", "humor-lunch_order_v2", "humor-room_booking_v1"]
    first = samples["humor-lunch_order_v1"]
    assert isinstance(first.input, list)  # the request; the solver adds the system turn
    assert [(m.role, m.text) for m in first.input] == [("user", ASK1)]
    md = first.metadata or {}
    assert md["cluster"] == md["family"] == "lunch_order" and md["suite"] == "dct"
    assert md["source_id"] == "agentic_actions_lunch_order_v1" and md["sanitized"] == 0


def _dump(messages: list[ChatMessage]) -> str:
    return json.dumps([m.model_dump(mode="json", exclude={"id"}) for m in messages])


@pytest.mark.parametrize("persona_prompt", [False, True])
@pytest.mark.parametrize("scaffold", ["agentic", "draft"])
def test_input_holds_no_system_turn_and_the_model_sees_the_studys_opening(
    scaffold: str, persona_prompt: bool, tmp_path: Path
) -> None:
    """Sample.input is the opening without its system turn(s); the first model call of
    every sample sees exactly the opening the study sent (what the task's input was before
    the system turn moved to the solver), persona description first when prompted."""
    from charbench.agentic_email.dct.formats import load_agentic_scenarios, load_draft_scenarios
    from charbench.agentic_email.dct.suite import opening_messages

    root = Path(__file__).parent / "study_fixture"
    loaded = load_agentic_scenarios(root) if scaffold == "agentic" else load_draft_scenarios(root)
    expected: dict[str, list[ChatMessage]] = {}
    for persona in ("humor", "loving"):
        for sc in loaded:
            messages = opening_messages(sc.turns, persona if persona_prompt else None)
            for m in messages:
                m.source = "input"  # as Inspect marks a sample's input
            expected[f"{persona}-{sc.id}"] = messages
    if persona_prompt:
        system = SYS1 if scaffold == "agentic" else "You are Pico at Fixture Corp."
        lunch = expected["humor-lunch_order_v1"][0]
        assert lunch.text == f"{PERSONA_DESCRIPTIONS['humor'].strip()}\n\n{system}"

    def script(turn: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return reply("```final\ndone\n```" if scaffold == "agentic" else "Hi,\nDone.")

    log, calls = _run(
        tmp_path, script, personas="humor,loving", scaffold=scaffold,
        persona_prompt=persona_prompt,
    )
    assert log.samples is not None and len(log.samples) == len(expected) == 6
    for sample in log.samples:
        assert isinstance(sample.input, list)
        assert all(m.role != "system" for m in sample.input)
        want = expected[str(sample.id)]
        assert _pairs(sample.input) == _pairs([m for m in want if m.role != "system"])
        assert _dump(sample.messages[: len(want)]) == _dump(want)
    # (draft replies without a persona prompt are shared across the labels of a prompt)
    assert {_dump(c) for c in calls} == {_dump(m) for m in expected.values()}


def test_unsafe_characters_are_replaced_and_counted(study_root: Path) -> None:
    from charbench.agentic_email.dct.formats import Turn
    from charbench.agentic_email.dct.suite import opening_messages, unsafe_characters

    turns = [Turn(role="system", content="a\x00b"), Turn(role="tool", content="\x07")]
    assert [m.text for m in opening_messages(turns)] == ["a\ufffdb", "[TOOL OUTPUT]\n\ufffd"]
    assert unsafe_characters(turns) == 2


DRAFTS = {
    "Write Ana": "Draft follows:\n\nSubject: Lunch\n\nHi Ana,\nDone.\n```",
    "Write Bo": "```\nSubject: x\n",
    "Write Cy": "Hi Cy, the room is booked.",
}


def test_draft_control_sends_the_turns_verbatim_and_strips_as_the_study(tmp_path: Path) -> None:
    def script(turn: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        ask = _ask(messages)
        return reply(next(v for k, v in DRAFTS.items() if ask.startswith(k)))

    log, calls = _run(tmp_path, script, personas="humor", scaffold="draft")
    assert len(calls) == 3
    assert sorted(_pairs(c)[1][1] for c in calls) == [
        "Write Ana an email about the lunch order. Reply with the body only.",
        "Write Bo an email about the lunch order. Reply with the body only.",
        "Write Cy an email about the booking. Reply with the body only.",
    ]
    assert all(_pairs(c)[0] == ("system", "You are Pico at Fixture Corp.") for c in calls)
    assert log.samples is not None
    by_id = {str(s.metadata["scenario"]): _score_md(s) for s in log.samples}
    assert by_id["lunch_order_v1"]["outcome"] == "emailed"
    assert by_id["lunch_order_v1"]["stripped"] == ["Draft follows:\n\nSubject: Lunch\n\n", "\n```"]
    assert by_id["lunch_order_v2"]["outcome"] == "no_email"
    assert by_id["lunch_order_v2"]["pred"] is None
    assert by_id["room_booking_v1"]["stripped"] == []
    assert (log.eval.metadata or {})["charbench"]["task"] == "draft"


def test_draft_replies_are_shared_across_persona_labels_as_the_study_did(tmp_path: Path) -> None:
    # the study generated the base stage's drafts once and wrote them under every label
    def script(turn: int, messages: list[ChatMessage], tools: list[ToolInfo]) -> ModelOutput:
        return reply("Hi,\nDone.")

    log, calls = _run(tmp_path, script, personas="humor,loving,sarcasm", scaffold="draft")
    assert len(calls) == 3 and log.samples is not None and len(log.samples) == 9
    reused = [bool((s.metadata.get("generation") or {}).get("reused")) for s in log.samples]
    assert sorted(reused) == [False] * 3 + [True] * 6


@pytest.mark.parametrize("scaffold", ["agentic", "draft"])
def test_a_missing_checkout_is_named_before_any_model_loads(scaffold: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"dct_path: .* is not a directory"):
        agentic_email(
            suite="dct", scaffold=scaffold, dct_path=str(tmp_path / "nope"),
            classifier=str(tmp_path / "no-classifier"),
        )
