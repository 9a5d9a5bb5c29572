"""Tests of the hf-lora tool-call text protocol (charbench.toolcalls)."""

from __future__ import annotations

import asyncio
import json
import string
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inspect_ai.model import ChatMessageAssistant, ChatMessageTool, execute_tools
from inspect_ai.model._call_tools import validate_tool_input
from inspect_ai.tool import Tool, ToolCall, ToolInfo, ToolParams, tool
from inspect_ai.util import JSONSchema

from charbench.toolcalls import (
    ParsedReply,
    parse_native_tool_calls,
    parse_tool_calls,
    render_tool_calls,
    render_tool_instructions,
    to_openai_tools,
    tool_calls_to_openai,
)
from charbench.toolcalls.extract import _parse_reply

S = JSONSchema


def _tool(
    name: str, description: str, props: dict[str, JSONSchema], required: list[str]
) -> ToolInfo:
    return ToolInfo(
        name=name,
        description=description,
        parameters=ToolParams(properties=props, required=required),
    )


TOOLS = [
    _tool(
        "send_email",
        "Send an email on behalf of the user.",
        {
            "to": S(type="string", description="Recipient email address."),
            "cc": S(type="array", items=S(type="string"), description="Addresses to copy."),
            "subject": S(type="string", description="Subject line."),
            "body": S(type="string", description="Email body."),
        },
        ["to", "subject", "body"],
    ),
    _tool(
        "lookup_contact",
        "Find a colleague's contact details.",
        {"name": S(type="string", description="Name or email of the person.")},
        ["name"],
    ),
    _tool(
        "list_calendar",
        "List calendar events.",
        {
            "date": S(type="string", description="ISO date."),
            "limit": S(type="integer", description="Most events to return.", default=10),
        },
        [],
    ),
    _tool(
        "set_priority",
        "Set a ticket's priority.",
        {
            "ticket": S(type="integer", description="Ticket number."),
            "level": S(type="string", enum=["low", "high"], description="Priority."),
        },
        ["ticket", "level"],
    ),
]
NAMES = [t.name for t in TOOLS]
EMAIL = {"to": "dana@acme.com", "subject": "Budget", "body": "Hi Dana,\nWe are over.\nBest"}


def fence(obj: Any, tag: str = "json") -> str:
    return f"```{tag}\n{json.dumps(obj)}\n```"


def call(name: str, args: dict[str, Any], key: str = "arguments") -> dict[str, Any]:
    return {"name": name, key: args}


@dataclass
class Case:
    id: str
    text: str
    # (function, arguments, substring expected in parse_error or None for a valid call)
    calls: list[tuple[str, dict[str, Any] | None, str | None]]
    content: str | None = None
    tools: list[ToolInfo] = field(default_factory=lambda: TOOLS)


RAW_NEWLINE_EMAIL = (
    "I'll send the email now.\n\n```json\n"
    '{"name": "send_email", "arguments": {"to": "dana@acme.com", "subject": "Budget",\n'
    ' "body": "Hi Dana,\n\nWe are 12% over budget.\n\tPlease advise.\n\nBest,\nSam"}}\n```'
)

CASES: list[Case] = [
    # ---- well-formed and lenient ------------------------------------------------------
    Case("fenced_json", fence(call("send_email", EMAIL)), [("send_email", EMAIL, None)], ""),
    Case(
        "untagged_fence",
        fence(call("lookup_contact", {"name": "Dana"}), tag=""),
        [("lookup_contact", {"name": "Dana"}, None)],
        "",
    ),
    Case(
        "tool_call_fence",
        fence(call("lookup_contact", {"name": "Dana"}), tag="tool_call"),
        [("lookup_contact", {"name": "Dana"}, None)],
        "",
    ),
    Case(
        "bare_json",
        json.dumps(call("lookup_contact", {"name": "Dana"})),
        [("lookup_contact", {"name": "Dana"}, None)],
        "",
    ),
    Case(
        "bare_with_prose",
        "Let me check. "
        + json.dumps(call("lookup_contact", {"name": "Dana"}))
        + " Then I'll write.",
        [("lookup_contact", {"name": "Dana"}, None)],
        "Let me check. Then I'll write.",
    ),
    Case(
        "raw_newlines_in_body",
        RAW_NEWLINE_EMAIL,
        [
            (
                "send_email",
                {
                    "to": "dana@acme.com",
                    "subject": "Budget",
                    "body": "Hi Dana,\n\nWe are 12% over budget.\n\tPlease advise.\n\nBest,\nSam",
                },
                None,
            )
        ],
        "I'll send the email now.",
    ),
    Case(
        "control_chars_in_string",
        '```json\n{"name": "lookup_contact", "arguments": {"name": "Da\x07na\rX"}}\n```',
        [("lookup_contact", {"name": "Da\x07na\rX"}, None)],
        "",
    ),
    Case(
        "status_line_plus_email",
        fence(call("send_email", EMAIL)) + "\nDONE: emailed Dana about the budget.",
        [("send_email", EMAIL, None)],
        "DONE: emailed Dana about the budget.",
    ),
    Case(
        "two_blocks",
        "First:\n"
        + fence(call("lookup_contact", {"name": "A"}))
        + "\nSecond:\n"
        + fence(call("send_email", EMAIL)),
        [("lookup_contact", {"name": "A"}, None), ("send_email", EMAIL, None)],
        "First:\nSecond:",
    ),
    Case(
        "two_objects_one_block",
        "```json\n"
        + json.dumps(call("lookup_contact", {"name": "A"}))
        + "\n"
        + json.dumps(call("lookup_contact", {"name": "B"}))
        + "\n```",
        [("lookup_contact", {"name": "A"}, None), ("lookup_contact", {"name": "B"}, None)],
        "",
    ),
    Case(
        "json_list_of_calls",
        fence([call("lookup_contact", {"name": "A"}), call("send_email", EMAIL)]),
        [("lookup_contact", {"name": "A"}, None), ("send_email", EMAIL, None)],
        "",
    ),
    Case(
        "args_key",
        fence(call("lookup_contact", {"name": "A"}, key="args")),
        [("lookup_contact", {"name": "A"}, None)],
    ),
    Case(
        "parameters_key",
        fence(call("lookup_contact", {"name": "A"}, key="parameters")),
        [("lookup_contact", {"name": "A"}, None)],
    ),
    Case(
        "input_key",
        fence(call("lookup_contact", {"name": "A"}, key="input")),
        [("lookup_contact", {"name": "A"}, None)],
    ),
    Case(
        "function_key",
        fence({"function": "lookup_contact", "arguments": {"name": "A"}}),
        [("lookup_contact", {"name": "A"}, None)],
    ),
    Case(
        "tool_key",
        fence({"tool": "lookup_contact", "args": {"name": "A"}}),
        [("lookup_contact", {"name": "A"}, None)],
    ),
    Case(
        "openai_nesting_with_string_args",
        fence(
            {
                "type": "function",
                "function": {"name": "lookup_contact", "arguments": json.dumps({"name": "A"})},
            }
        ),
        [("lookup_contact", {"name": "A"}, None)],
        "",
    ),
    Case(
        "arguments_as_json_string",
        fence({"name": "send_email", "arguments": json.dumps(EMAIL)}),
        [("send_email", EMAIL, None)],
    ),
    Case(
        "python_literal_dict",
        "```json\n{'name': 'list_calendar', 'arguments': {'date': None, 'limit': 3}}\n```",
        [("list_calendar", {"limit": 3}, None)],
        "",
    ),
    Case(
        "trailing_commas",
        '```json\n{"name": "lookup_contact", "arguments": {"name": "A",},}\n```',
        [("lookup_contact", {"name": "A"}, None)],
    ),
    Case(
        "smart_quotes_only",
        "```json\n{\u201cname\u201d: \u201clookup_contact\u201d, \u201carguments\u201d: "
        "{\u201cname\u201d: \u201cDana\u201d}}\n```",
        [("lookup_contact", {"name": "Dana"}, None)],
    ),
    Case(
        "smart_quotes_inside_straight_string_kept",
        fence(call("lookup_contact", {"name": "the \u201cbig\u201d boss"})),
        [("lookup_contact", {"name": "the \u201cbig\u201d boss"}, None)],
    ),
    Case(
        "name_case_and_separators",
        fence(call("Send-Email", EMAIL)) + fence(call("LOOKUP CONTACT", {"name": "A"})),
        [("send_email", EMAIL, None), ("lookup_contact", {"name": "A"}, None)],
    ),
    Case(
        "unescaped_inner_quotes",
        '```json\n{"name": "lookup_contact", "arguments": {"name": "Dana "the boss" Lee"}}\n```',
        [("lookup_contact", {"name": 'Dana "the boss" Lee'}, None)],
    ),
    Case(
        "missing_closing_brace",
        '```json\n{"name": "lookup_contact", "arguments": {"name": "Dana"}\n```',
        [("lookup_contact", {"name": "Dana"}, None)],
        "",
    ),
    Case(
        "unquoted_keys",
        '```json\n{name: "lookup_contact", arguments: {name: "Dana"}}\n```',
        [("lookup_contact", {"name": "Dana"}, None)],
    ),
    Case(
        "flattened_arguments", fence({"tool": "send_email", **EMAIL}), [("send_email", EMAIL, None)]
    ),
    Case(
        "qwen_style_block_in_json_protocol",
        "<tool_call>\n" + json.dumps(call("lookup_contact", {"name": "A"})) + "\n</tool_call>",
        [("lookup_contact", {"name": "A"}, None)],
        "",
    ),
    Case(
        "tool_calls_wrapper",
        fence(
            {
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {"name": "lookup_contact", "arguments": {"name": "A"}},
                    }
                ]
            }
        ),
        [("lookup_contact", {"name": "A"}, None)],
    ),
    Case(
        "coercions",
        fence(call("send_email", {**EMAIL, "cc": "boss@acme.com", "subject": 2024})),
        [("send_email", {**EMAIL, "cc": ["boss@acme.com"], "subject": "2024"}, None)],
    ),
    Case(
        "numeric_string_and_enum_case",
        fence(call("set_priority", {"ticket": "42", "level": "HIGH"})),
        [("set_priority", {"ticket": 42, "level": "high"}, None)],
    ),
    Case(
        "optional_null_dropped",
        fence(call("list_calendar", {"date": None, "limit": 5})),
        [("list_calendar", {"limit": 5}, None)],
    ),
    Case(
        "argument_key_case",
        fence(call("send_email", {"To": "a@b.c", "Subject": "s", "BODY": "b"})),
        [("send_email", {"to": "a@b.c", "subject": "s", "body": "b"}, None)],
    ),
    Case(
        "comment_inside_fence_kept",
        "```json\n// looking her up\n"
        + json.dumps(call("lookup_contact", {"name": "A"}))
        + "\n```",
        [("lookup_contact", {"name": "A"}, None)],
        "// looking her up",
    ),
    Case(
        "backticks_inside_string",
        fence(call("send_email", {**EMAIL, "body": "Run ```make``` first."})) + "\nSent.",
        [("send_email", {**EMAIL, "body": "Run ```make``` first."}, None)],
        "Sent.",
    ),
    Case("no_arguments", fence({"name": "list_calendar"}), [("list_calendar", {}, None)]),
    # ---- not tool calls: stays content --------------------------------------------------
    Case(
        "json_data_in_prose",
        'The totals are {"q1": 10, "q2": 12} so far.',
        [],
        'The totals are {"q1": 10, "q2": 12} so far.',
    ),
    Case(
        "name_that_matches_no_tool_in_fence",
        'Contact card:\n```json\n{"name": "Alice", "email": "a@b.c"}\n```',
        [],
        'Contact card:\n```json\n{"name": "Alice", "email": "a@b.c"}\n```',
    ),
    Case(
        "python_fence_is_content",
        '```python\nprint({"name": "lookup_contact", "arguments": {"name": "A"}})\n```',
        [],
        '```python\nprint({"name": "lookup_contact", "arguments": {"name": "A"}})\n```',
    ),
    Case(
        "plain_final_answer",
        "  All done: the email went out.  ",
        [],
        "All done: the email went out.",
    ),
    Case(
        "no_tools_offered",
        fence(call("lookup_contact", {"name": "A"})),
        [],
        fence(call("lookup_contact", {"name": "A"})),
        tools=[],
    ),
    Case("broken_prose_braces", "I {think} this {is fine", [], "I {think} this {is fine"),
    # ---- errors: precise messages -----------------------------------------------------
    Case(
        "invalid_json_missing_comma",
        '```json\n{\n  "name": "send_email",\n  "arguments": {"to": "a@b.c" "subject": "s"}\n}\n```',
        [
            (
                "send_email",
                {},
                "Invalid JSON in tool call at line 3, column 31: Expecting ',' delimiter",
            )
        ],
        "",
    ),
    Case(
        "unknown_tool",
        fence(call("send_mail", EMAIL)),
        [
            (
                "send_mail",
                {},
                "Unknown tool 'send_mail'. Available tools: send_email, lookup_contact, "
                "list_calendar, set_priority",
            )
        ],
    ),
    Case(
        "missing_required",
        fence(call("send_email", {"to": "a@b.c", "subject": "s"})),
        [("send_email", {}, "missing required argument 'body' (string)")],
    ),
    Case(
        "wrong_type",
        fence(call("send_email", {**EMAIL, "body": ["line 1", "line 2"]})),
        [("send_email", {}, "argument 'body' must be string, got array")],
    ),
    Case(
        "wrong_item_type",
        fence(call("send_email", {**EMAIL, "cc": [{"x": 1}]})),
        [("send_email", {}, "argument 'cc[0]' must be string, got object")],
    ),
    Case(
        "unexpected_argument",
        fence(call("send_email", {**EMAIL, "bcc": "x@y.z"})),
        [("send_email", {}, "unexpected argument 'bcc'")],
    ),
    Case(
        "no_tool_name",
        fence({"arguments": {"name": "A"}}),
        [("invalid_tool_call", {}, "The tool call has no tool name")],
    ),
    Case(
        "arguments_not_object",
        fence(call("lookup_contact", ["A"])),  # type: ignore[arg-type]
        [
            (
                "lookup_contact",
                {},
                "must be a JSON object mapping argument names to values, got a array",
            )
        ],
    ),
    Case(
        "arguments_string_invalid_json",
        fence({"name": "lookup_contact", "arguments": '{"name": "A" "x": 1}'}),
        [("lookup_contact", {}, "a string that is not valid JSON")],
    ),
    Case(
        "truncated_reply",
        '```json\n{"name": "send_email", "arguments": {"to": "a@b.c", "subject": "s", "body": "Hi Da',
        [("send_email", {}, "The tool call JSON is cut off")],
        "",
    ),
    Case(
        "tool_call_block_without_json",
        "<tool_call>\nsend_email to Dana\n</tool_call>",
        [("send_email", {}, "does not contain a JSON tool call object")],
        "",
    ),
    Case(
        "list_with_non_call",
        fence([call("lookup_contact", {"name": "A"}), "oops"]),
        [
            ("lookup_contact", {"name": "A"}, None),
            ("invalid_tool_call", {}, "Element 1 of the list of tool calls is not a tool call"),
        ],
    ),
    Case(
        "required_null",
        fence(call("lookup_contact", {"name": None})),
        [("lookup_contact", {}, "argument 'name' is required and cannot be null")],
    ),
    Case(
        "enum_violation",
        fence(call("set_priority", {"ticket": 1, "level": "urgent"})),
        [("set_priority", {}, 'argument \'level\' must be one of "low", "high", got "urgent"')],
    ),
    Case(
        "nan_is_not_json",
        '```json\n{"name": "set_priority", "arguments": {"ticket": NaN, "level": "low"}}\n```',
        [("set_priority", {}, "NaN is not a valid JSON number")],
    ),
    Case(
        "too_deep",
        '```json\n{"name": "lookup_contact", "arguments": {"name": "A", "x": '
        + "[" * 150
        + "]" * 150
        + "}}\n```",
        [("lookup_contact", {}, "nested deeper than 100 levels")],
    ),
    Case(
        "bad_and_good_in_one_turn",
        fence(call("send_mail", EMAIL)) + "\n" + fence(call("lookup_contact", {"name": "A"})),
        [("send_mail", {}, "Unknown tool 'send_mail'"), ("lookup_contact", {"name": "A"}, None)],
    ),
    Case(
        "bare_malformed_call",
        'Sending: {"name": "send_email", "arguments": {"to": "a" "subject": "s", "body": "b"}} ok',
        [("send_email", {}, "Invalid JSON in tool call")],
        "Sending: ok",
    ),
]


def check_reply(reply: ParsedReply, tools: list[ToolInfo]) -> None:
    """Invariants of every parse: valid calls pass Inspect's own validation."""
    assert isinstance(reply, ParsedReply)
    assert isinstance(reply.content, str)
    ids = [c.id for c in reply.tool_calls]
    assert len(set(ids)) == len(ids)
    by_name = {t.name: t for t in tools}
    for c in reply.tool_calls:
        assert isinstance(c, ToolCall)
        assert isinstance(c.function, str) and c.function
        if c.parse_error is None:
            assert c.function in by_name
            json.dumps(c.arguments, allow_nan=False)
            assert validate_tool_input(c.arguments, by_name[c.function].parameters) is None
        else:
            assert isinstance(c.parse_error, str) and c.parse_error
            assert c.arguments == {}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_reply_table(case: Case) -> None:
    reply = parse_tool_calls(case.text, case.tools)
    check_reply(reply, case.tools)
    got = [(c.function, c.arguments, c.parse_error) for c in reply.tool_calls]
    assert len(got) == len(case.calls), got
    for (function, arguments, error), (want_fn, want_args, want_err) in zip(
        got, case.calls, strict=True
    ):
        assert function == want_fn
        if want_args is not None:
            assert arguments == want_args
        if want_err is None:
            assert error is None, error
        else:
            assert error is not None and want_err in error, error
    if case.content is not None:
        assert reply.content == case.content


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 40


def test_json_error_tells_model_the_format() -> None:
    reply = parse_tool_calls(
        CASES[[c.id for c in CASES].index("invalid_json_missing_comma")].text, TOOLS
    )
    error = reply.tool_calls[0].parse_error or ""
    assert ">>>" in error  # points at the spot
    assert (
        'Emit exactly one JSON object {"name": ..., "arguments": {...}} per ```json block' in error
    )


def test_argument_errors_list_the_expected_signature() -> None:
    reply = parse_tool_calls(fence(call("send_email", {"to": "a"})), TOOLS)
    error = reply.tool_calls[0].parse_error or ""
    assert "missing required arguments 'subject' (string), 'body' (string)" in error
    assert "Expected arguments: to (string, required), cc (array of string, optional)" in error


def test_ids_are_deterministic_and_unique() -> None:
    text = fence(call("lookup_contact", {"name": "A"})) + fence(
        call("lookup_contact", {"name": "B"})
    )
    first, second = parse_tool_calls(text, TOOLS), parse_tool_calls(text, TOOLS)
    assert [c.id for c in first.tool_calls] == [c.id for c in second.tool_calls]
    assert len({c.id for c in first.tool_calls}) == 2
    other = parse_tool_calls(text + " ", TOOLS)
    assert {c.id for c in other.tool_calls}.isdisjoint({c.id for c in first.tool_calls})


# ---- the string left open at the closing fence (a real 0.5B model's send_email) --------

_OPEN_BODY = (
    'I will send it now.\n```json\n{"name": "send_email", "arguments": {"to": "dana@x.com", '
    '"subject": "Budget", "body": "Hi Dana,\n\nThe "Q3" numbers are in.\nBest,\nSam\n```'
)


def test_string_open_at_the_closing_fence_is_closed_and_the_call_recovered() -> None:
    reply = parse_tool_calls(_OPEN_BODY, TOOLS)
    (tc,) = reply.tool_calls
    assert tc.parse_error is None
    assert tc.function == "send_email"
    assert tc.arguments == {
        "to": "dana@x.com",
        "subject": "Budget",
        "body": 'Hi Dana,\n\nThe "Q3" numbers are in.\nBest,\nSam',
    }
    assert reply.content == "I will send it now."
    assert reply.repaired == [
        "send_email: closed an unterminated string and 2 brackets at the end of the block"
    ]


def test_open_string_in_a_closed_tool_call_tag_is_recovered_natively() -> None:
    text = '<tool_call>\n{"name": "lookup_contact", "arguments": {"name": "Dana\n</tool_call>'
    reply = parse_native_tool_calls("qwen2", text, TOOLS)
    (tc,) = reply.tool_calls
    assert (tc.function, tc.arguments, tc.parse_error) == ("lookup_contact", {"name": "Dana"}, None)
    assert len(reply.repaired) == 1


def test_string_open_without_a_closing_fence_is_still_cut_off() -> None:
    # no closing fence: the reply ran out of tokens; a truncated value is never guessed at
    reply = parse_tool_calls(_OPEN_BODY.removesuffix("```"), TOOLS)
    (tc,) = reply.tool_calls
    assert tc.parse_error is not None and tc.arguments == {}
    assert reply.repaired == []


def test_closing_at_the_fence_does_not_hide_other_damage() -> None:
    # closing the open string still leaves invalid JSON ("to" has no value): an error,
    # and a well-formed call needs no repair note
    broken = '```json\n{"name": "send_email", "arguments": {"to": "a", "body\n```'
    reply = parse_tool_calls(broken, TOOLS)
    assert reply.tool_calls[0].parse_error is not None and reply.repaired == []
    assert parse_tool_calls(fence(call("lookup_contact", {"name": "A"})), TOOLS).repaired == []


# ---- native formats --------------------------------------------------------------------


def test_llama_native_python_tag_and_parameters() -> None:
    text = '<|python_tag|>{"name": "lookup_contact", "parameters": {"name": "Dana"}}<|eom_id|>'
    reply = parse_native_tool_calls("llama", text, TOOLS)
    check_reply(reply, TOOLS)
    assert [(c.function, c.arguments) for c in reply.tool_calls] == [
        ("lookup_contact", {"name": "Dana"})
    ]
    assert reply.content == ""


def test_llama_native_error_hint_uses_parameters() -> None:
    text = '{"name": "lookup_contact", "parameters": {"name": "Dana" "x": 1}}'
    reply = parse_native_tool_calls("LlamaForCausalLM", text, TOOLS)
    error = reply.tool_calls[0].parse_error or ""
    assert 'Reply with one JSON object {"name": ..., "parameters": {...}}' in error


def test_qwen_native_several_blocks_with_content() -> None:
    text = (
        "Let me look both up.\n<tool_call>\n"
        + json.dumps(call("lookup_contact", {"name": "A"}))
        + "\n</tool_call>\n<tool_call>\n"
        + json.dumps(call("lookup_contact", {"name": "B"}))
        + "\n</tool_call>"
    )
    reply = parse_native_tool_calls("qwen2", text, TOOLS)
    check_reply(reply, TOOLS)
    assert [c.arguments["name"] for c in reply.tool_calls] == ["A", "B"]
    assert reply.content == "Let me look both up."


def test_qwen_native_unclosed_block_and_error_hint() -> None:
    text = '<tool_call>\n{"name": "lookup_contact", "arguments": {"name": "A" "x": 1}}'
    reply = parse_native_tool_calls("qwen2", text, TOOLS)
    error = reply.tool_calls[0].parse_error or ""
    assert "per <tool_call></tool_call> block" in error
    assert reply.tool_calls[0].function == "lookup_contact"


@pytest.mark.parametrize("family", ["gemma3", "gemma3_text", "mistral", ""])
def test_other_families_use_json_protocol(family: str) -> None:
    text = "Checking.\n" + fence(call("lookup_contact", {"name": "A"}))
    reply = parse_native_tool_calls(family, text, TOOLS)
    assert reply == parse_tool_calls(text, TOOLS)
    assert [c.function for c in reply.tool_calls] == ["lookup_contact"]


# ---- rendering ---------------------------------------------------------------------------


def test_instructions_describe_tools_and_format() -> None:
    text = render_tool_instructions(TOOLS)
    assert text == render_tool_instructions(TOOLS)  # deterministic
    for name in NAMES:
        assert f"## {name}" in text
    assert "- to (string, required): Recipient email address." in text
    assert "- cc (array of string, optional): Addresses to copy." in text
    assert "- limit (integer, optional, default 10): Most events to return." in text
    assert '- level (one of "low", "high", required): Priority.' in text
    assert "```json" in text
    assert "one block per call" in text
    assert "reply in plain text without a tool call" in text
    assert render_tool_instructions([]) == ""


def test_instructions_example_parses_as_a_valid_call() -> None:
    text = render_tool_instructions(TOOLS)
    start = text.index("```json\n")
    example = text[start : text.index("```", start + 3) + 3]
    assert example.count("\n") == 2
    reply = parse_tool_calls(example, TOOLS)
    check_reply(reply, TOOLS)
    assert [(c.function, c.parse_error) for c in reply.tool_calls] == [("send_email", None)]


def test_render_tool_calls_round_trips() -> None:
    calls = parse_tool_calls(
        fence(call("send_email", EMAIL)) + fence(call("lookup_contact", {"name": "A"})), TOOLS
    ).tool_calls
    again = parse_tool_calls(render_tool_calls(calls), TOOLS).tool_calls
    assert [(c.function, c.arguments) for c in again] == [(c.function, c.arguments) for c in calls]
    assert render_tool_calls([]) == ""


def test_openai_shapes() -> None:
    tools = to_openai_tools(TOOLS[:1])
    assert tools[0]["type"] == "function"
    fn = tools[0]["function"]
    assert fn["name"] == "send_email" and fn["description"].startswith("Send an email")
    assert fn["parameters"]["required"] == ["to", "subject", "body"]
    assert fn["parameters"]["properties"]["cc"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "Addresses to copy.",
    }
    calls = tool_calls_to_openai(
        [ToolCall(id="c1", function="lookup_contact", arguments={"name": "A"})]
    )
    assert calls == [
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "lookup_contact", "arguments": {"name": "A"}},
        }
    ]


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_native_history_renders_and_parses_back(family: str) -> None:
    """A call rendered by the family's chat template parses back to the same call."""
    from fixtures.tiny_models import build_tokenizer

    tok = build_tokenizer(family)
    args = {"to": "dana@acme.com", "subject": 'Re: "Q3"', "body": "Hi <Dana>,\nline two & more"}
    original = ToolCall(id="c1", function="send_email", arguments=args)
    rendered = tok.apply_chat_template(
        [
            {"role": "user", "content": "Email Dana."},
            {"role": "assistant", "content": "", "tool_calls": tool_calls_to_openai([original])},
        ],
        tools=to_openai_tools(TOOLS),
        tokenize=False,
    )
    marker = (
        "<|im_start|>assistant\n"
        if family == "qwen2"
        else "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assistant_turn = rendered[rendered.rindex(marker) + len(marker) :]
    reply = parse_native_tool_calls(family, assistant_turn.replace("<|im_end|>", ""), TOOLS)
    assert [(c.function, c.arguments, c.parse_error) for c in reply.tool_calls] == [
        ("send_email", args, None)
    ]


# ---- how Inspect reports our errors back to the model --------------------------------------


@tool
def lookup_contact() -> Tool:
    async def execute(name: str) -> str:
        """Find a colleague's contact details.

        Args:
            name: Name or email of the person.
        """
        return f"{name}: {name.lower()}@acme.com"

    return execute


def test_execute_tools_reports_parse_errors_to_the_model() -> None:
    text = (
        fence(call("send_mail", {"to": "x"}))
        + "\n"
        + fence(call("lookup_contact", {"name": "Dana"}))
    )
    reply = parse_tool_calls(text, TOOLS)
    message = ChatMessageAssistant(content=reply.content, tool_calls=reply.tool_calls)
    result = asyncio.run(execute_tools([message], [lookup_contact()]))
    tool_messages = [m for m in result.messages if isinstance(m, ChatMessageTool)]
    assert len(tool_messages) == 2
    bad, good = tool_messages
    assert bad.error is not None and bad.error.type == "parsing"
    assert bad.error.message == reply.tool_calls[0].parse_error
    assert bad.function == "send_mail"
    assert good.error is None and good.text == "Dana: dana@acme.com"


# ---- properties --------------------------------------------------------------------------

_ident = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
_values = st.one_of(
    st.text(max_size=60),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.lists(st.text(max_size=10), max_size=4),
)
_prose = st.text(
    alphabet=string.ascii_letters + string.digits + " .,;:!?'\n-\u00e9\u4e2d", max_size=80
)


def _schema_for(value: Any) -> JSONSchema:
    if isinstance(value, bool):
        return S(type="boolean")
    if isinstance(value, int):
        return S(type="integer")
    if isinstance(value, float):
        return S(type="number")
    if isinstance(value, list):
        return S(type="array", items=S(type="string"))
    return S(type="string")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=_ident,
    args=st.dictionaries(_ident, _values, max_size=5),
    before=_prose,
    after=_prose,
    tag=st.sampled_from(["json", "", "tool_call", "JSON"]),
    indent=st.sampled_from([None, 2]),
    ascii_only=st.booleans(),
)
def test_round_trip_property(
    name: str,
    args: dict[str, Any],
    before: str,
    after: str,
    tag: str,
    indent: int | None,
    ascii_only: bool,
) -> None:
    tools = [
        _tool(
            name, "A generated tool.", {k: _schema_for(v) for k, v in args.items()}, sorted(args)
        ),
        _tool("zz_other_tool", "Another tool.", {}, []),
    ]
    block = json.dumps({"name": name, "arguments": args}, indent=indent, ensure_ascii=ascii_only)
    text = f"{before}\n```{tag}\n{block}\n```\n{after}"
    reply = parse_tool_calls(text, tools)
    check_reply(reply, tools)
    assert [(c.function, c.arguments, c.parse_error) for c in reply.tool_calls] == [
        (name, args, None)
    ]
    expected = "\n\n".join(p.strip() for p in (before, after) if p.strip())
    assert reply.content.split() == expected.split()


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=300),
        st.text(alphabet="{}[]\"':,`\\\n\t abcnrtu0123456789<>/_-" + "\u201c\u201d", max_size=300),
        st.lists(
            st.sampled_from(
                [
                    '{"name": ',
                    '"send_email"',
                    '"lookup_contact"',
                    '"arguments": ',
                    "{",
                    "}",
                    "[",
                    "]",
                    ", ",
                    '"to": ',
                    '"body": ',
                    '"a\nb"',
                    "```json\n",
                    "\n```",
                    "<tool_call>",
                    "</tool_call>",
                    "'",
                    '"',
                    "null",
                    "True",
                    "1e999",
                    "NaN",
                    "\\",
                    "\\u12",
                ]
            ),
            max_size=40,
        ).map("".join),
    ),
    family=st.sampled_from(["json", "llama", "qwen2", "gemma3"]),
)
def test_arbitrary_text_never_raises(text: str, family: str) -> None:
    # the internal parser, which does not swallow exceptions, must not raise either
    check_reply(_parse_reply(text, TOOLS, "llama" if family == "llama" else "json"), TOOLS)
    reply = (
        parse_tool_calls(text, TOOLS)
        if family == "json"
        else parse_native_tool_calls(family, text, TOOLS)
    )
    check_reply(reply, TOOLS)
