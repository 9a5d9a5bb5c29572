"""The study's harness constants are read from its files, and applied as its code did."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from charbench.agentic_email.dct.formats import (
    StubRule,
    load_agentic_scenarios,
    load_draft_scenarios,
    select_scenarios,
)
from charbench.agentic_email.dct.harness import (
    ParsedCall,
    StudyHarness,
    load_harness,
    malformed_reply,
    parse_final,
    parse_tool_call,
    simulate_tool,
    strip_draft,
)
from charbench.agentic_email.dct.source import DctSourceError


@pytest.fixture
def harness(study_root: Path) -> StudyHarness:
    return load_harness(study_root)


def test_constants_come_from_the_source_files(harness: StudyHarness) -> None:
    assert harness.max_malformed == 3
    assert harness.no_block_error == (
        "Fixture: no usable block in that turn.\nSend a tool_call or a final block."
    )
    assert harness.unknown_tool == "fixture has no tool "
    assert harness.no_rule == "fixture matched nothing for "
    assert harness.tool_call_re.flags & re.DOTALL and harness.final_re.flags & re.DOTALL
    assert harness.header_re.flags & re.IGNORECASE
    assert malformed_reply(harness) == json.dumps({"error": harness.no_block_error})


def test_a_source_without_a_constant_is_refused(tmp_path: Path, study_root: Path) -> None:
    import shutil

    root = tmp_path / "repo"
    shutil.copytree(study_root, root)
    module = root / "src/depth_character_eval/rollout.py"
    module.write_text(module.read_text().replace("MAX_CONSECUTIVE_MALFORMED = 3", ""))
    with pytest.raises(DctSourceError, match="no module-level MAX_CONSECUTIVE_MALFORMED"):
        load_harness(root)
    module.write_text("def broken(:\n")
    with pytest.raises(DctSourceError, match=r"dct_path: .*cannot be parsed"):
        load_harness(root)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('```tool_call\n{"tool": "a", "args": {"x": 1}}\n```', ParsedCall("a", {"x": 1})),
        # label separated by any whitespace, single line, closing fence optional
        ('```tool_call {"tool": "a", "args": {}}```', ParsedCall("a", {})),
        ('```tool_call\t{"tool": "a", "args": {}}', ParsedCall("a", {})),
        ('prose first ```tool_call\n{"tool": "a"}\n``` after', ParsedCall("a", {})),
        # only the first block counts, even if it is broken and a later one is fine
        ('```tool_call\n{"tool": "a"\n```\n```tool_call\n{"tool": "b"}\n```', None),
        ('```tool_call\n{"tool": "a"}\n```\n```tool_call\n{"tool": "b"}\n```', ParsedCall("a", {})),
        # strict JSON: a raw newline inside a string is an error
        ('```tool_call\n{"tool": "email.send", "args": {"body": "a\nb"}}\n```', None),
        ('```tool_call\n{"tool": "a", "args": []}\n```', None),
        ('```tool_call\n{"tool": "a", "args": null}\n```', None),
        ('```tool_call\n{"args": {}}\n```', None),
        ('```tool_call\n["tool"]\n```', None),
        ('```json\n{"tool": "a", "args": {}}\n```', None),
        ('```tool_call{"tool": "a"}```', None),  # no whitespace after the label
        ("```tool_call\n" + "[" * 100_000 + "]" * 100_000 + "\n```", None),
    ],
)
def test_parse_tool_call(harness: StudyHarness, text: str, expected: ParsedCall | None) -> None:
    assert parse_tool_call(harness, text) == expected


def test_parse_final(harness: StudyHarness) -> None:
    assert parse_final(harness, "```final\n Done. \n```") == "Done."
    assert parse_final(harness, "x ```final Sent it") == "Sent it"
    assert parse_final(harness, '```tool_call\n{"tool": "a"}\n```') is None
    assert parse_final(harness, "```final\n```") == ""


def _stubs(study_root: Path) -> dict[str, tuple[StubRule, ...]]:
    return load_agentic_scenarios(study_root)[0].tool_stubs


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("directory.find", {"name": "Ana Ruiz"}, {"name": "Ana Ruiz", "email": "ana@fixture.test"}),
        # case-sensitive patterns; every match key must be present; default rule last
        ("directory.find", {"name": "ana"}, {"error": "nobody found"}),
        (
            "directory.find",
            {"name": "ana", "team": "design"},
            {"name": "ana (lower case)", "note": "matched on two keys"},
        ),
        # patterns match str() of any value
        ("menu.list", {"day": "2026-05-12"}, ["soup", "salad"]),
        ("menu.list", {"day": 20260512}, {"error": "fixture matched nothing for {'day': 20260512}"}),
        ("menu.list", {}, {"error": "fixture matched nothing for {}"}),
        ("calendar.list", {}, {"error": "fixture has no tool calendar.list"}),
        (7, {}, {"error": "fixture has no tool 7"}),
        (["email.send"], {}, {"error": "fixture has no tool ['email.send']"}),
    ],
)
def test_simulate_tool(
    harness: StudyHarness, study_root: Path, tool: object, args: dict[str, object], expected: object
) -> None:
    assert simulate_tool(harness, _stubs(study_root), tool, args) == json.dumps(expected)


def test_scenario_files(study_root: Path) -> None:
    agentic = load_agentic_scenarios(study_root)
    assert [s.id for s in agentic] == ["lunch_order_v1", "lunch_order_v2", "room_booking_v1"]
    assert [s.family for s in agentic] == ["lunch_order", "lunch_order", "room_booking"]
    assert agentic[0].source_id == "agentic_actions_lunch_order_v1"
    assert [s.max_steps for s in agentic] == [8, 3, 8]
    # a later stub entry for the same tool replaces the earlier one, as the study's dict did
    assert agentic[1].tool_stubs["email.send"][0].response == {"sent": "replaced"}
    draft = load_draft_scenarios(study_root)
    assert [s.id for s in draft] == [s.id for s in agentic]
    assert [s.id for s in select_scenarios(agentic, "lunch_order")] == [
        "lunch_order_v1", "lunch_order_v2",
    ]
    assert [s.id for s in select_scenarios(agentic, ["agentic_actions_room_booking_v1"])] == [
        "room_booking_v1"
    ]
    with pytest.raises(ValueError, match=r"unknown scenario 'nope' in suite=dct.*lunch_order"):
        select_scenarios(agentic, "nope")


def test_invalid_scenarios_are_refused(tmp_path: Path, study_root: Path) -> None:
    import shutil

    root = tmp_path / "repo"
    shutil.copytree(study_root, root)
    path = root / "data/scaffolds/agentic_actions/agentic_actions_room_booking_v1.yaml"
    path.write_text(path.read_text().replace("- role: user\n", "- role: narrator\n"))
    with pytest.raises(DctSourceError, match=r"room_booking_v1.yaml is not a valid study scenario"):
        load_agentic_scenarios(root)
    jsonl = root / "data/scaffolds/chat_email.jsonl"
    jsonl.write_text(jsonl.read_text().replace('"chat_email"', '"agentic_email"', 1))
    with pytest.raises(DctSourceError, match=r"chat_email.jsonl:1 .*expected 'chat_email'"):
        load_draft_scenarios(root)


@pytest.mark.parametrize(
    ("reply", "body", "removed"),
    [
        ("Hi Ana,\n\nLunch is ordered.", "Hi Ana,\n\nLunch is ordered.", []),
        (
            "Draft follows:\n\nSubject: Lunch\nTo: ana@x\n\nHi Ana,\nDone.",
            "Hi Ana,\nDone.",
            # one round removes a preamble and then a header
            ["Draft follows:\n\nSubject: Lunch\n", "To: ana@x\n\n"],
        ),
        ("```text\nHi Ana,\nDone.\n```", "Hi Ana,\nDone.", ["```text\n", "\n```"]),
        ("**Subject:** Lunch\n\n  Hi", "Hi", ["**Subject:** Lunch\n\n", "  "]),
        # a header in the middle is not removed
        ("Hi\nSubject: x\nBye", "Hi\nSubject: x\nBye", []),
        ("Subject: only a header", "Subject: only a header", []),
    ],
)
def test_strip_draft_repeats_until_nothing_changes(
    harness: StudyHarness, reply: str, body: str, removed: list[str]
) -> None:
    assert strip_draft(harness, reply) == (body, removed)
