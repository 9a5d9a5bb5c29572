"""Fuzzing the hf-lora tool-call parser (issue 7, "Hostile or broken inputs").

Two generators, at least 100,000 inputs in all:

* a deterministic mutation fuzzer over realistic agent replies (well-formed and broken
  calls, fences, ``<tool_call>`` blocks, Llama ``<|python_tag|>`` output, multi-line
  email bodies), applying random deletions, insertions of JSON-significant tokens,
  duplications, truncations, splices, quote swaps, control characters and lone
  surrogates;
* hypothesis, building replies from arbitrary JSON values with random sloppiness.

Every input goes through the internal parser (which does not swallow exceptions) and the
public entry points. The assertions: nothing raises, and every result is a valid tool
call (declared tool, JSON-serialisable arguments that pass Inspect's own schema
validation) or carries a parse error. The number of inputs tried is printed.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inspect_ai.model._call_tools import validate_tool_input
from inspect_ai.tool import ToolCall, ToolInfo, ToolParams
from inspect_ai.util import JSONSchema
from pydantic import TypeAdapter

from charbench.toolcalls import (
    ParsedReply,
    parse_native_tool_calls,
    parse_tool_calls,
)
from charbench.toolcalls.extract import _parse_reply

S = JSONSchema
MUTATED_INPUTS = 100_000
HYPOTHESIS_INPUTS = 500


def _tool(name: str, props: dict[str, JSONSchema], required: list[str]) -> ToolInfo:
    return ToolInfo(
        name=name,
        description=f"The {name} tool.",
        parameters=ToolParams(properties=props, required=required),
    )


TOOLS = [
    _tool("lookup_contact", {"name_or_email": S(type="string")}, ["name_or_email"]),
    _tool("list_calendar", {"date": S(type="string"), "limit": S(type="integer")}, []),
    _tool("cancel_event", {"event_id": S(type="string")}, ["event_id"]),
    _tool(
        "send_chat", {"channel": S(type="string"), "text": S(type="string")}, ["channel", "text"]
    ),
    _tool("search_chat", {"query": S(type="string")}, ["query"]),
    _tool(
        "send_email",
        {
            "to": S(type="string"),
            "cc": S(type="array", items=S(type="string")),
            "subject": S(type="string"),
            "body": S(type="string"),
        },
        ["to", "subject", "body"],
    ),
    _tool(
        "hr_policy",
        {"topic": S(type="string", enum=["leave", "expenses", "conduct"])},
        ["topic"],
    ),
]
BY_NAME = {t.name: t for t in TOOLS}
_CALL_ADAPTER = TypeAdapter(ToolCall)

BODY = 'Hi Priya,\n\nThanks for the "Atlas" draft.\n\tThree notes below.\n\nBest,\nSam'
EMAIL = {"to": "priya@acme.com", "cc": ["lee@acme.com"], "subject": "Atlas review", "body": BODY}
SEEDS = [
    "```json\n" + json.dumps({"name": "send_email", "arguments": EMAIL}) + "\n```\nDONE: sent.",
    "I'll look her up first.\n```json\n"
    + json.dumps({"name": "lookup_contact", "arguments": {"name_or_email": "Priya"}}, indent=2)
    + "\n```",
    '```json\n{"name": "send_email", "arguments": {"to": "priya@acme.com", "subject": "Hi",'
    ' "body": "Line one\nLine two\n\n-- Sam"}}\n```',
    "<tool_call>\n"
    + json.dumps({"name": "search_chat", "arguments": {"query": "atlas"}})
    + "\n</tool_call>\n<tool_call>\n"
    + json.dumps({"name": "list_calendar", "arguments": {"limit": 3}})
    + "\n</tool_call>",
    "<|python_tag|>" + json.dumps({"name": "cancel_event", "parameters": {"event_id": "ev-7"}}),
    "```json\n["
    + json.dumps({"name": "hr_policy", "args": {"topic": "leave"}})
    + ", "
    + json.dumps({"tool": "send_chat", "input": {"channel": "#ops", "text": "ok"}})
    + "]\n```",
    "```\n{'name': 'send_chat', 'arguments': {'channel': '#ops', 'text': 'Ship it',},}\n```",
    '```json\n{"function": {"name": "search_chat", "arguments": "{\\"query\\": \\"q3\\"}"}}\n```',
    'Here are the numbers {"q1": 3, "q2": [1, 2]} and nothing else.',
    "```json\n{\u201cname\u201d: \u201chr_policy\u201d, \u201carguments\u201d: {\u201ctopic\u201d:"
    " \u201cexpenses\u201d}}\n```",
    '```json\n{"name": "send_mail", "arguments": {"to": "x"}}\n```',
    '```json\n{"name": "send_email", "arguments": {"to": "a" "subject": "b"}}\n```',
    '{"name": "send_email", "arguments": {"to": "a", "subject": "s", "body": "cut off mid',
    "Status: all done, nothing more to do.",
    "```python\nprint('hello')\n```\n```json\n"
    + json.dumps({"name": "lookup_contact", "arguments": {"name_or_email": 'Dana "D" Lee'}})
    + "\n```",
    "```tool_call\nsend_email(to='x')\n```",
    "```json\n"
    + json.dumps({"name": "list_calendar", "arguments": {"limit": "5", "date": None}})
    + "\n```",
]
TOKENS = [
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    ":",
    ",",
    "\\",
    "\\n",
    "\n",
    "\t",
    "\x00",
    "\x1b",
    "```",
    "```json\n",
    "<tool_call>",
    "</tool_call>",
    "<|python_tag|>",
    '"name": ',
    '"arguments": ',
    '"send_email"',
    '"lookup_contact"',
    "null",
    "true",
    "None",
    "NaN",
    "-Infinity",
    "1e999",
    "9" * 5000,
    "\\ud800",
    "\ud800",
    "\udfff",
    "\u201c",
    "\u201d",
    "\u00e9",
    "\U0001f600",
    "[" * 300,
    "{" * 200,
    '{"a":' * 150,
]


def check_reply(reply: ParsedReply) -> None:
    assert isinstance(reply, ParsedReply)
    assert isinstance(reply.content, str)
    ids = [c.id for c in reply.tool_calls]
    assert len(set(ids)) == len(ids)
    for c in reply.tool_calls:
        assert isinstance(c, ToolCall)
        assert isinstance(c.function, str) and c.function
        if c.parse_error is None:
            assert c.function in BY_NAME, c.function
            json.dumps(c.arguments, allow_nan=False)
            _CALL_ADAPTER.dump_json(c)  # serialisable into the eval log
            assert validate_tool_input(c.arguments, BY_NAME[c.function].parameters) is None
        else:
            assert isinstance(c.parse_error, str) and c.parse_error.strip()
            assert c.arguments == {}
            c.parse_error.encode("utf-8")  # readable text for the model, no lone surrogates
            _CALL_ADAPTER.dump_json(c)


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        n = len(text)
        i, j = sorted((rng.randint(0, n), rng.randint(0, n)))
        op = rng.randrange(9)
        if op == 0:
            text = text[:i] + text[j:]
        elif op == 1:
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        elif op == 2:
            text = text[:j] + text[i:j] + text[j:]
        elif op == 3:
            text = text[:i]
        elif op == 4:
            other = rng.choice(SEEDS)
            text = text[:i] + other[rng.randint(0, len(other)) :]
        elif op == 5:
            old, new = rng.choice(
                [('"', "'"), ('"', "\u201c"), ("'", '"'), ("\\n", "\n"), (",", "")]
            )
            text = text.replace(old, new)
        elif op == 6 and n:
            k = rng.randrange(n)
            text = (
                text[:k]
                + chr(rng.choice([rng.randrange(32), rng.randrange(0x10FFFF)]))
                + text[k + 1 :]
            )
        elif op == 7:
            text = (
                rng.choice(["```json\n", "<tool_call>\n", "", "```\n"])
                + text
                + rng.choice(["\n```", "\n</tool_call>", "", " trailing prose"])
            )
        else:
            text = text[:i] + text[i:j][::-1] + text[j:]
    return text


@pytest.mark.slow
def test_fuzz_mutated_replies(capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(0)
    protocols = ["json", "llama", "qwen"]
    started = time.perf_counter()
    tried = errors = valid = 0
    for k in range(MUTATED_INPUTS):
        text = mutate(rng, rng.choice(SEEDS))
        reply = _parse_reply(text, TOOLS, protocols[k % 3])  # type: ignore[arg-type]
        check_reply(reply)
        if k % 20 == 0:  # the public wrappers too (llama strips its special tokens first)
            check_reply(parse_tool_calls(text, TOOLS))
            check_reply(parse_native_tool_calls("llama", text, TOOLS))
        tried += 1
        errors += sum(c.parse_error is not None for c in reply.tool_calls)
        valid += sum(c.parse_error is None for c in reply.tool_calls)
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\nfuzz tool protocol (mutation): {tried} inputs tried in {elapsed:.1f}s, "
            f"{valid} valid calls, {errors} parse errors, 0 exceptions"
        )
    assert tried >= MUTATED_INPUTS and valid > 0 and errors > 0


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=6,
)


_prose = st.sampled_from(
    ["", "On it.\n", "Let me check {first}. ", "\nDONE: sent the email.", " [1] ", "\u00e9\u4e2d "]
)


@st.composite
def _replies(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from([*BY_NAME, "Send-Email", "unknown_tool", ""]))
    args = draw(
        st.dictionaries(
            st.sampled_from(["to", "body", "query", "limit", "topic", "x"]),
            _json_values,
            max_size=4,
        )
    )
    key = draw(st.sampled_from(["arguments", "args", "parameters", "input", "function"]))
    obj: Any = (
        {"name": name, key: args}
        if key != "function"
        else {"function": {"name": name, "arguments": json.dumps(args)}}
    )
    body = json.dumps(
        obj, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1]))
    )
    damage = draw(st.sampled_from(["none", "newlines", "truncate", "quotes", "comma"]))
    if damage == "newlines":
        body = body.replace("\\n", "\n").replace("\\t", "\t")
    elif damage == "truncate":
        body = body[: draw(st.integers(0, len(body)))]
    elif damage == "quotes":
        body = body.replace('"', "'")
    elif damage == "comma":
        body = body.replace("}", ",}")
    wrap = draw(
        st.sampled_from(["```json\n{}\n```", "{}", "<tool_call>\n{}\n</tool_call>", "x {} y"])
    )
    before, after = draw(_prose), draw(_prose)
    return before + wrap.replace("{}", body, 1) + after


@pytest.mark.slow
def test_fuzz_hypothesis_replies(capsys: pytest.CaptureFixture[str]) -> None:
    tried = 0

    @settings(
        max_examples=HYPOTHESIS_INPUTS,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(text=_replies(), protocol=st.sampled_from(["json", "llama", "qwen"]))
    def run(text: str, protocol: str) -> None:
        nonlocal tried
        tried += 1
        check_reply(_parse_reply(text, TOOLS, protocol))  # type: ignore[arg-type]

    run()
    with capsys.disabled():
        print(f"\nfuzz tool protocol (hypothesis): {tried} inputs tried, 0 exceptions")
    assert tried >= HYPOTHESIS_INPUTS // 2
