"""hf-lora honours Inspect's ``tool_choice``: prefilled calls for ``any``, guided calls for a
named tool (the JSON is the provider's, each required value the model's)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, GenerateConfig, get_model
from inspect_ai.tool import ToolFunction, ToolInfo, ToolParam, ToolParams

from charbench.provider.chat import RAW_COMPLETION_KEY
from charbench.provider.engine import GenResult, GenSettings
from charbench.toolcalls import (
    forced_call_prefix,
    guided_call_fields,
    guided_call_head,
)

CONFIG = GenerateConfig(temperature=0, max_tokens=40)

SEND = ToolInfo(
    name="send_email",
    description="Send an email.",
    parameters=ToolParams(
        properties={
            "to": ToolParam(anyOf=[ToolParam(type="string"),
                                   ToolParam(type="array", items=ToolParam(type="string"))]),
            "subject": ToolParam(type="string"),
            "body": ToolParam(type="string"),
            "cc": ToolParam(type="string"),
        },
        required=["to", "subject", "body"],
    ),
)
LOOKUP = ToolInfo(
    name="lookup_contact",
    description="Find a colleague.",
    parameters=ToolParams(properties={"name_or_email": ToolParam(type="string")},
                          required=["name_or_email"]),
)
COUNT = ToolInfo(
    name="set_count",
    description="Set a number.",
    parameters=ToolParams(properties={"n": ToolParam(type="integer")}, required=["n"]),
)
PING = ToolInfo(name="ping", description="No arguments.", parameters=ToolParams())
MESSAGES: list[Any] = [ChatMessageSystem(content="You are an agent."),
                       ChatMessageUser(content="Thank Aisha.")]

# ------------------------------------------------------------------------------ pure helpers


def test_guided_fields_are_the_required_string_arguments_in_schema_order() -> None:
    assert guided_call_fields(SEND) == ["to", "subject", "body"]  # optional cc left out
    assert guided_call_fields(LOOKUP) == ["name_or_email"]
    assert guided_call_fields(PING) == []
    assert guided_call_fields(COUNT) is None  # an integer cannot be written as a string
    enum = ToolInfo(name="pick", description="", parameters=ToolParams(
        properties={"colour": ToolParam(type="string", enum=["red", "blue"])},
        required=["colour"]))
    assert guided_call_fields(enum) is None  # free text could leave the enum


def test_forced_prefix_per_choice_and_protocol() -> None:
    tools = [SEND, LOOKUP]
    assert forced_call_prefix("auto", tools, "json") == ""
    assert forced_call_prefix("none", tools, "json") == ""
    assert forced_call_prefix("any", [], "json") == ""
    assert forced_call_prefix("any", tools, "json") == '```json\n{"name": "'
    assert forced_call_prefix(ToolFunction("send_email"), tools, "json") == (
        '```json\n{"name": "send_email", "arguments": {"')
    assert forced_call_prefix(ToolFunction("ping"), [PING], "json") == (
        '```json\n{"name": "ping", "arguments": {}}')
    assert forced_call_prefix(ToolFunction("nope"), tools, "json") == ""
    assert forced_call_prefix("any", tools, "native", "qwen2") == '<tool_call>\n{"name": "'
    assert forced_call_prefix(ToolFunction("send_email"), tools, "native", "llama") == (
        '{"name": "send_email", "parameters": {"')
    # Gemma has no native format: the json protocol's block
    assert forced_call_prefix("any", tools, "native", "gemma3").startswith("```json")
    assert guided_call_head(SEND) == '```json\n{"name": "send_email", "arguments": {'


# ------------------------------------------------------------------------------ through hf-lora

Reply = Callable[[str, GenSettings], GenResult]


def _api_with(base: Path, monkeypatch: pytest.MonkeyPatch, reply: Reply,
              **model_args: Any) -> tuple[Any, list[tuple[str, GenSettings]]]:
    model = get_model(f"hf-lora/{base}", config=CONFIG, **model_args)
    api: Any = model.api
    seen: list[tuple[str, GenSettings]] = []

    def fake_batch(prompts: list[str], adapters: list[str],
                   settings: GenSettings) -> list[GenResult]:
        out = []
        for p in prompts:
            seen.append((p, settings))
            out.append(reply(p, settings))
        return out

    monkeypatch.setattr(api._base, "generate_batch", fake_batch)
    return api, seen


def test_any_prefills_the_call_opening_and_the_model_picks_the_tool(
    llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rest = 'lookup_contact", "arguments": {"name_or_email": "Aisha"}}\n```'
    api, seen = _api_with(llama_dir, monkeypatch,
                          lambda p, s: GenResult(rest, 100, 12, "stop", 0.01, 1))
    out, call = asyncio.run(api.generate(MESSAGES, [SEND, LOOKUP], "any", CONFIG))
    (prompt, _), = seen
    assert prompt.endswith('<|end_header_id|>\n\n```json\n{"name": "')
    (tc,) = out.message.tool_calls
    assert tc.function == "lookup_contact" and tc.parse_error is None
    assert tc.arguments == {"name_or_email": "Aisha"}
    assert call.request["tool_choice"] == "any"
    assert call.request["prefill"] == '```json\n{"name": "'
    assert call.response["completion"] == '```json\n{"name": "' + rest
    # the raw completion (prefill included) is what later turns re-render
    assert out.message.metadata[RAW_COMPLETION_KEY].startswith('```json\n{"name": "lookup')


def test_a_model_that_follows_the_shape_writes_the_call_in_one_generation(
    llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what the engine returns: text up to (not including) the stop "\n```"
    own = ('Aisha Karimi",\n  "subject" : "Thank you", "body": "She said \\"wow\\" and '
           'meant it.\nBest"}}')
    api, seen = _api_with(llama_dir, monkeypatch,
                          lambda p, s: GenResult(own, 500, 30, "stop", 0.01, 1))
    out, call = asyncio.run(api.generate(MESSAGES, [SEND], ToolFunction("send_email"), CONFIG))
    (prompt, settings), = seen
    assert prompt.endswith('```json\n{"name": "send_email", "arguments": {"to": "')
    assert settings.stop_seqs == ("\n```",) and settings.max_new_tokens == 40
    (tc,) = out.message.tool_calls
    assert tc.parse_error is None and tc.function == "send_email"
    assert tc.arguments == {"to": "Aisha Karimi", "subject": "Thank you",
                            "body": 'She said "wow" and meant it.\nBest'}
    completion = call.response["completion"]
    assert completion.startswith(guided_call_head(SEND)) and completion.endswith("}}\n```")
    body = json.loads(completion.removeprefix("```json\n").removesuffix("\n```"),
                      strict=False)["arguments"]["body"]
    assert body == 'She said "wow" and meant it.\nBest'
    assert call.request["guided_fields"] == ["to", "subject", "body"]
    assert call.request["tool_choice"] == "function:send_email"
    assert out.usage.output_tokens == 30 and out.usage.input_tokens == 500


def test_a_departure_is_dropped_and_the_expected_key_written(
    llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies = iter([
        GenResult('Aisha", "cc": "boss@example.com"}}', 500, 12, "stop", 0.01, 1),
        GenResult('Thanks!", "bdy": "oops"}}', 520, 9, "stop", 0.01, 1),
        GenResult("Well done, Aisha.", 540, 6, "stop", 0.01, 1),  # EOS inside the value
    ])
    api, seen = _api_with(llama_dir, monkeypatch, lambda p, s: next(replies))
    out, _ = asyncio.run(api.generate(MESSAGES, [SEND], ToolFunction("send_email"), CONFIG))
    prompts = [p for p, _ in seen]
    assert prompts[1].endswith('"to": "Aisha", "subject": "')
    assert prompts[2].endswith('"subject": "Thanks!", "body": "')
    assert [s.max_new_tokens for _, s in seen] == [40, 28, 19]  # one shared budget
    (tc,) = out.message.tool_calls
    assert tc.parse_error is None
    assert tc.arguments == {"to": "Aisha", "subject": "Thanks!", "body": "Well done, Aisha."}


@pytest.mark.parametrize(
    ("continuation", "fields", "kept", "nxt", "complete"),
    [
        ('a", "b": "x"}', ["a", "b"], 'a", "b": "x"', 2, True),
        ('a", "c": "x"}', ["a", "b"], 'a"', 1, True),
        ('a\\"b', ["a", "b"], 'a\\"b', 0, False),  # escaped quote: still inside
        ("unfinished", ["a"], "unfinished", 0, False),
        ('a"}}', ["a"], 'a"', 1, True),
        # a backslash that starts no JSON escape is escaped, so the call stays valid JSON
        ('C:\\zemp\\x", "b": "\\u00e9"', ["a", "b"], 'C:\\\\zemp\\\\x", "b": "\\u00e9"', 2,
         True),
        ("ends in \\", ["a"], "ends in ", 0, False),  # a dangling escape is dropped
    ],
)
def test_take_guided_values(continuation: str, fields: list[str], kept: str, nxt: int,
                            complete: bool) -> None:
    from charbench.toolcalls import take_guided_values

    assert take_guided_values(continuation, fields, 0) == (kept, nxt, complete)


def test_guided_value_that_hits_the_token_limit_is_reported_cut_off(
    llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, seen = _api_with(
        llama_dir, monkeypatch,
        lambda p, s: GenResult('aisha@example.com", "subject": "an endless subject', 100,
                               s.max_new_tokens, "max_tokens", 0.01, 1))
    out, call = asyncio.run(api.generate(MESSAGES, [SEND], ToolFunction("send_email"), CONFIG))
    assert len(seen) == 1
    (tc,) = out.message.tool_calls
    assert tc.parse_error is not None and "cut off" in tc.parse_error
    assert call.response["stop_reason"] == "max_tokens"


def test_end_of_sequence_ends_a_guided_value(
    llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the engine reports "stop" with no quote when the model emits its EOS token
    api, _ = _api_with(llama_dir, monkeypatch,
                       lambda p, s: GenResult("Aisha", 100, 3, "stop", 0.01, 1))
    out, _ = asyncio.run(api.generate(MESSAGES, [LOOKUP], ToolFunction("lookup_contact"),
                                      CONFIG))
    (tc,) = out.message.tool_calls
    assert tc.parse_error is None and tc.arguments == {"name_or_email": "Aisha"}


def test_tool_without_arguments_needs_no_generation(
    llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, seen = _api_with(llama_dir, monkeypatch,
                          lambda p, s: GenResult("unused", 1, 1, "stop", 0.0, 1))
    out, _ = asyncio.run(api.generate(MESSAGES, [PING], ToolFunction("ping"), CONFIG))
    assert seen == []
    (tc,) = out.message.tool_calls
    assert tc.function == "ping" and tc.arguments == {} and tc.parse_error is None


def test_non_string_arguments_fall_back_to_a_prefilled_name(
    llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, seen = _api_with(llama_dir, monkeypatch,
                          lambda p, s: GenResult('n": 3}}\n```', 100, 6, "stop", 0.01, 1))
    out, call = asyncio.run(api.generate(MESSAGES, [COUNT], ToolFunction("set_count"), CONFIG))
    (prompt, settings), = seen
    assert prompt.endswith('{"name": "set_count", "arguments": {"')
    assert settings.stop_seqs == ()
    (tc,) = out.message.tool_calls
    assert tc.arguments == {"n": 3} and tc.parse_error is None
    assert call.request["guided_fields"] is None


def test_native_protocol_prefills_the_family_format(
    qwen_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rest = 'lookup_contact", "arguments": {"name_or_email": "Sam"}}\n</tool_call>'
    api, seen = _api_with(qwen_dir, monkeypatch,
                          lambda p, s: GenResult(rest, 100, 12, "stop", 0.01, 1),
                          tool_protocol="native")
    out, _ = asyncio.run(api.generate(MESSAGES, [LOOKUP, SEND], "any", CONFIG))
    (prompt, _), = seen
    assert prompt.endswith('<tool_call>\n{"name": "')
    (tc,) = out.message.tool_calls
    assert tc.function == "lookup_contact" and tc.arguments == {"name_or_email": "Sam"}


def test_guided_call_on_a_real_tiny_model_is_well_formed_or_cut_off(llama_dir: Path) -> None:
    """No fakes: the random tiny llama writes the values through the real engine."""
    model = get_model(f"hf-lora/{llama_dir}", config=GenerateConfig(temperature=0,
                                                                   max_tokens=24))
    out = asyncio.run(model.generate(MESSAGES, [LOOKUP], tool_choice=ToolFunction(
        "lookup_contact")))
    (tc,) = out.message.tool_calls
    assert tc.function == "lookup_contact"
    assert tc.parse_error is None or "cut off" in tc.parse_error
    assert out.usage is not None and 0 < out.usage.output_tokens <= 24


def test_a_dangling_escape_at_the_end_of_a_value_is_dropped(
    llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _ = _api_with(llama_dir, monkeypatch,
                       lambda p, s: GenResult("Aisha\\", 100, 3, "stop", 0.01, 1))
    out, _ = asyncio.run(api.generate(MESSAGES, [LOOKUP], ToolFunction("lookup_contact"),
                                      CONFIG))
    (tc,) = out.message.tool_calls
    assert tc.parse_error is None and tc.arguments == {"name_or_email": "Aisha"}


def test_a_value_with_a_stray_backslash_still_gives_a_valid_call(
    llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a random tiny model wrote in CI: "\h" is no JSON escape
    api, _ = _api_with(llama_dir, monkeypatch,
                       lambda p, s: GenResult("ouldv\\h%a", 100, 8, "stop", 0.01, 1))
    out, _ = asyncio.run(api.generate(MESSAGES, [LOOKUP], ToolFunction("lookup_contact"),
                                      CONFIG))
    (tc,) = out.message.tool_calls
    assert tc.parse_error is None and tc.arguments == {"name_or_email": "ouldv\\h%a"}


def test_model_call_records_a_repaired_call(
    llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the model closed the fence but not the body string (finished with stop): the call is
    # recovered and the ModelCall says it was repaired
    rest = ('```json\n{"name": "send_email", "arguments": {"to": "aisha@x.com", '
            '"subject": "Thanks", "body": "Thank you, Aisha.\n```')
    api, _ = _api_with(llama_dir, monkeypatch,
                       lambda p, s: GenResult(rest, 100, 30, "stop", 0.01, 1))
    out, call = asyncio.run(api.generate(MESSAGES, [SEND, LOOKUP], "auto", CONFIG))
    (tc,) = out.message.tool_calls
    assert tc.parse_error is None and tc.arguments["body"] == "Thank you, Aisha."
    assert call.response["repaired"] == [
        "send_email: closed an unterminated string and 2 brackets at the end of the block"]
    well_formed = rest.replace("Aisha.\n```", 'Aisha."}}\n```')
    api, _ = _api_with(llama_dir, monkeypatch,
                       lambda p, s: GenResult(well_formed, 100, 30, "stop", 0.01, 1))
    _, call = asyncio.run(api.generate(MESSAGES, [SEND, LOOKUP], "auto", CONFIG))
    assert call.response["repaired"] is None
