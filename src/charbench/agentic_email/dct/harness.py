"""The study's harness constants, read from its source, and the pure steps of its rollout.

The study's rollout (``src/depth_character_eval/rollout.py``) and its draft scoring script
(``scripts/classifier_f1_chat_email.py``) hold, as module constants and inline literals,
everything that decides what a model sees and what gets classified: the patterns of the
fenced ``tool_call`` and ``final`` blocks, the error text sent back after a turn without a
parseable block, the limit of consecutive such turns, the error objects of the tool
simulator, and the header/preamble/fence patterns of the draft control. charbench ships
none of that text: :func:`load_harness` reads it from the study's files with :mod:`ast`
(never executing them) into a :class:`StudyHarness`, and fails with a
:class:`~charbench.agentic_email.dct.source.DctSourceError` if the files do not have the
expected shape.

The functions below apply those constants exactly as the study's code did:

- :func:`parse_final`: the first ``final`` block's stripped content, or ``None``.
- :func:`parse_tool_call`: the first ``tool_call`` block, its content stripped and read
  with :func:`json.loads` (strict: a raw newline inside a string is an error); it must be
  an object with ``"tool"``; a missing ``"args"`` becomes ``{}``; ``"args"`` must be an
  object. Anything else is ``None`` (a turn without a parseable block).
- :func:`simulate_tool`: the scenario's rules of that tool in file order; a rule with
  ``match`` applies when every key is in the arguments and its shell-style pattern matches
  ``str(value)`` case-sensitively (:func:`fnmatch.fnmatchcase`); the ``default`` rule (the
  last one marked so) applies after all others; the result is ``json.dumps`` of the
  response, or of the study's error object for an unknown tool or no matching rule.
- :func:`strip_draft`: preamble then header removed at the start, repeated until nothing
  changes, then a trailing fence removed and leading whitespace stripped.

Two inputs crashed the study's code, and are given a defined answer here (README, table of
differences): a ``tool`` value that is a JSON array or object (unhashable: the study raised
``TypeError``) gets the unknown-tool error; JSON nested deeply enough to exhaust Python's
recursion limit is a turn without a parseable block.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charbench.agentic_email.dct.source import DRAFT_SCRIPT, ROLLOUT_MODULE, DctSourceError

__all__ = [
    "TOOL_OUTPUT_PREFIX",
    "ParsedCall",
    "StudyHarness",
    "load_harness",
    "malformed_reply",
    "parse_final",
    "parse_tool_call",
    "simulate_tool",
    "strip_draft",
]

TOOL_OUTPUT_PREFIX = "[TOOL OUTPUT]\n"
"""How the study's loader rendered every tool result: a user turn with this prefix."""


@dataclass(frozen=True)
class StudyHarness:
    """The study's harness constants (read by :func:`load_harness`).

    Attributes:
        tool_call_re: Pattern of a fenced ``tool_call`` block (group 1: its content).
        final_re: Pattern of a fenced ``final`` block (group 1: its content).
        no_block_error: Error text sent back after a turn without a parseable block.
        max_malformed: Consecutive such turns that end the rollout.
        unknown_tool: Prefix of the simulator's error for a tool without stubs.
        no_rule: Prefix of the simulator's error when no rule matched the arguments.
        header_re, preamble_re, trailing_fence_re: The draft control's stripping patterns.
    """

    tool_call_re: re.Pattern[str]
    final_re: re.Pattern[str]
    no_block_error: str
    max_malformed: int
    unknown_tool: str
    no_rule: str
    header_re: re.Pattern[str]
    preamble_re: re.Pattern[str]
    trailing_fence_re: re.Pattern[str]


@dataclass(frozen=True)
class ParsedCall:
    """A parsed ``tool_call`` block: the ``tool`` value (any JSON value) and ``args``."""

    tool: Any
    args: dict[str, Any]


def _bad(path: Path, what: str) -> DctSourceError:
    return DctSourceError(
        f"dct_path: {path} does not have the study's shape ({what}); use the repository at "
        "the pinned commit (-T dct_path=DIR, or leave dct_path unset to download it)"
    )


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError) as err:
        raise _bad(path, f"cannot be parsed: {err}") from err


def _assigned(module: ast.Module, name: str, path: Path) -> ast.expr:
    for node in module.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id == name:
                return node.value
    raise _bad(path, f"no module-level {name}")


def _literal(node: ast.expr, kind: type, path: Path, name: str) -> Any:
    try:
        value = ast.literal_eval(node)
    except ValueError as err:
        raise _bad(path, f"{name} is not a literal") from err
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _bad(path, f"{name} is not a {kind.__name__}")
    return value


def _flags(node: ast.expr, path: Path, name: str) -> int:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _flags(node.left, path, name) | _flags(node.right, path, name)
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "re"
        and isinstance(getattr(re, node.attr, None), re.RegexFlag)
    ):
        return int(getattr(re, node.attr))
    raise _bad(path, f"{name} has flags that are not re.<FLAG>")


def _regex(module: ast.Module, name: str, path: Path) -> re.Pattern[str]:
    node = _assigned(module, name, path)
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compile"
        and node.args
    ):
        raise _bad(path, f"{name} is not re.compile(...)")
    pattern = _literal(node.args[0], str, path, name)
    flag_nodes = list(node.args[1:2]) + [k.value for k in node.keywords if k.arg == "flags"]
    flags = 0
    for flag_node in flag_nodes:
        flags |= _flags(flag_node, path, name)
    return re.compile(pattern, flags)


def _error_prefixes(module: ast.Module, path: Path) -> tuple[str, str]:
    """The constant heads of the two f-strings in ``simulate_tool`` (unknown tool, no rule)."""
    func = next(
        (n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "simulate_tool"),
        None,
    )
    if func is None:
        raise _bad(path, "no simulate_tool function")
    found = sorted(
        (n for n in ast.walk(func) if isinstance(n, ast.JoinedStr)),
        key=lambda n: (n.lineno, n.col_offset),
    )
    heads: list[str] = []
    for node, var in zip(found, ("tool_name", "args"), strict=False):
        parts = node.values
        if not (
            len(parts) == 2
            and isinstance(parts[0], ast.Constant)
            and isinstance(parts[0].value, str)
            and isinstance(parts[1], ast.FormattedValue)
            and isinstance(parts[1].value, ast.Name)
            and parts[1].value.id == var
            and parts[1].conversion == -1
            and parts[1].format_spec is None
        ):
            raise _bad(path, "simulate_tool's error messages are not f'<text>{name}'")
        heads.append(parts[0].value)
    if len(found) != 2:
        raise _bad(path, f"simulate_tool has {len(found)} f-strings, expected 2")
    return heads[0], heads[1]


def load_harness(root: Path) -> StudyHarness:
    """Read the harness constants from the study's files under ``root``.

    Raises:
        DctSourceError: a file is missing, does not parse, or lacks a constant.
    """
    rollout_path, draft_path = root / ROLLOUT_MODULE, root / DRAFT_SCRIPT
    rollout, draft = _parse(rollout_path), _parse(draft_path)
    max_malformed = _literal(
        _assigned(rollout, "MAX_CONSECUTIVE_MALFORMED", rollout_path),
        int, rollout_path, "MAX_CONSECUTIVE_MALFORMED",
    )
    if max_malformed < 1:
        raise _bad(rollout_path, "MAX_CONSECUTIVE_MALFORMED < 1")
    unknown_tool, no_rule = _error_prefixes(rollout, rollout_path)
    return StudyHarness(
        tool_call_re=_regex(rollout, "TOOL_CALL_RE", rollout_path),
        final_re=_regex(rollout, "FINAL_RE", rollout_path),
        no_block_error=_literal(
            _assigned(rollout, "NO_FENCED_BLOCK_ERROR", rollout_path),
            str, rollout_path, "NO_FENCED_BLOCK_ERROR",
        ),
        max_malformed=max_malformed,
        unknown_tool=unknown_tool,
        no_rule=no_rule,
        header_re=_regex(draft, "_HEADER_RE", draft_path),
        preamble_re=_regex(draft, "_PREAMBLE_RE", draft_path),
        trailing_fence_re=_regex(draft, "_TRAILING_FENCE_RE", draft_path),
    )


def parse_final(harness: StudyHarness, text: str) -> str | None:
    """The stripped content of the first ``final`` block of ``text``, or ``None``."""
    found = harness.final_re.search(text)
    return None if found is None else found.group(1).strip()


def parse_tool_call(harness: StudyHarness, text: str) -> ParsedCall | None:
    """The first ``tool_call`` block of ``text`` as the study read it, or ``None``."""
    found = harness.tool_call_re.search(text)
    if found is None:
        return None
    try:
        obj = json.loads(found.group(1).strip())
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or "tool" not in obj:
        return None
    args = obj.get("args", {})
    if not isinstance(args, dict):
        return None
    return ParsedCall(tool=obj["tool"], args=args)


def malformed_reply(harness: StudyHarness) -> str:
    """The tool-output text after a turn without a parseable block."""
    return json.dumps({"error": harness.no_block_error})


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _matches(match: Mapping[str, str] | None, args: Mapping[str, Any]) -> bool:
    if match is None:
        return False
    return all(
        key in args and fnmatch.fnmatchcase(str(args[key]), str(pattern))
        for key, pattern in match.items()
    )


def simulate_tool(
    harness: StudyHarness,
    stubs: Mapping[str, Sequence[Any]],
    tool: Any,
    args: dict[str, Any],
) -> str:
    """The JSON text the study's simulator returned for a call.

    Args:
        harness: The study's constants (its error texts).
        stubs: Tool name -> rules (objects with ``match``, ``default`` and ``response``),
            in file order.
        tool: The call's ``tool`` value (any JSON value).
        args: The call's arguments.

    Returns:
        ``json.dumps`` of the first matching rule's response, else of the default rule's
        (the last rule marked ``default``), else of the study's error object.
    """
    if not _hashable(tool) or tool not in stubs:
        return json.dumps({"error": f"{harness.unknown_tool}{tool}"})
    default = None
    for rule in stubs[tool]:
        if rule.default:
            default = rule
        elif _matches(rule.match, args):
            return json.dumps(rule.response)
    if default is not None:
        return json.dumps(default.response)
    return json.dumps({"error": f"{harness.no_rule}{args}"})


def strip_draft(harness: StudyHarness, text: str) -> tuple[str, list[str]]:
    """The draft reply as the study's scoring script classified it.

    Returns:
        ``(body, removed)``: the text after stripping, and each removed piece in order.
    """
    removed: list[str] = []
    out = text
    while True:
        new = harness.preamble_re.sub("", out, count=1)
        new = harness.header_re.sub("", new, count=1)
        if new == out:
            break
        removed.append(out[: len(out) - len(new)] if out.endswith(new) else out)
        out = new
    tail = harness.trailing_fence_re.sub("", out)
    if tail != out:
        removed.append(out[len(tail):] if out.startswith(tail) else out)
    body = tail.lstrip()
    if len(body) != len(tail):
        removed.append(tail[: len(tail) - len(body)])
    return body, removed
