"""Fuzz the scenario and workplace loaders: mutated YAML texts and parsed structures.

Whatever the input, a loader either returns its data or raises its own validation error
(:class:`ScenarioError` / :class:`WorkplaceError`, a ``ValueError`` naming the file and the
field); nothing else may escape. Two drivers, both deterministic so a failure reproduces
exactly: a seeded mutator over the packaged family files (texts and structures), and
hypothesis (``derandomize=True``) putting arbitrary YAML values at arbitrary places of a
family file and of ``workplace.yaml``.

Set ``CHARBENCH_FUZZ_SCENARIOS`` to change the number of mutator inputs (default 5,000:
with the 100 hypothesis examples about 30-40 s; the old default of 100,000 took ~300 s and
found nothing the first few thousand do not reach).
"""

from __future__ import annotations

import copy
import os
import random
import time
from datetime import date
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charbench.agentic_email.scenarios import (
    SCENARIO_DIR,
    Scenario,
    ScenarioError,
    parse_family,
    parse_family_text,
)
from charbench.agentic_email.workplace import (
    WORKPLACE_FILE,
    Workplace,
    WorkplaceError,
    load_workplace,
    parse_workplace,
)

DEFAULT_TOTAL = 5000
TOTAL = int(os.environ.get("CHARBENCH_FUZZ_SCENARIOS", str(DEFAULT_TOTAL)))
TEXT_SHARE = 0.3

VALUES: list[Any] = [
    None,
    0,
    -1,
    5,
    7,
    3.5,
    float("nan"),
    True,
    False,
    "",
    "   ",
    "{",
    "}",
    "{nope}",
    "{{x}}",
    "{first",
    "x" * 5000,
    "ghost@nowhere.example",
    "dana.whitfield@brightwater.example",
    "2025-13-45",
    "25:99",
    "24:00",
    "09:00",
    "2025-03-11",
    date(2025, 3, 11),
    [],
    {},
    [None],
    {"a": 1},
    [[["deep"]]],
    "MTG-1005",
    "#general",
    "dm:x",
    "Dana Whitfield",
    "me",
    "send_email",
    "lookup_policy",
    "teleport",
    "üñí\u0000çødé",
    "sarcastic",
    "-1",
    "1e309",
    {"tool": "send_email", "args": {}},
    {"name": "X", "email": "x@y.example", "title": "t"},
]
TOKENS = [
    ":",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a",
    "!!python/object:os.system ",
    "!!binary ",
    "\t",
    "\x00",
    "'",
    '"',
    "#",
    "|",
    ">",
    "? ",
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "{x}",
    " ",
    "\n",
    "\ufeff",
    "@",
    "~",
    "null",
    "2025-03-11",
    "yes",
    "<<: *a\n",
    "!!set ",
    "\\u",
    "send_fax",
    "variant: 1\n",
    "  - ",
    "1e400",
    "0x1F",
]


def _paths(node: Any, out: list[tuple[Any, Any]], depth: int = 0) -> None:
    """Every (container, key) pair in a parsed YAML tree."""
    if depth > 20:
        return
    if isinstance(node, dict):
        for k in list(node):
            out.append((node, k))
            _paths(node[k], out, depth + 1)
    elif isinstance(node, list):
        for i in range(len(node)):
            out.append((node, i))
            _paths(node[i], out, depth + 1)


def mutate_structure(data: Any, rng: random.Random) -> Any:
    data = copy.deepcopy(data)
    for _ in range(rng.randint(1, 3)):
        slots: list[tuple[Any, Any]] = []
        _paths(data, slots)
        if not slots:
            return rng.choice(VALUES)
        parent, key = rng.choice(slots)
        op = rng.randrange(8)
        value = parent[key]
        if op == 0:
            del parent[key]
        elif op == 1:
            parent[key] = copy.deepcopy(rng.choice(VALUES))
        elif op == 2 and isinstance(value, str) and value:
            i = rng.randrange(len(value) + 1)
            parent[key] = value[:i] + rng.choice(TOKENS) + value[i + rng.randint(0, 3) :]
        elif op == 3 and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(value))
        elif op == 4 and isinstance(parent, dict):
            parent[rng.choice(["extra", "id", "tool", "from", "params", "family", 3])] = value
        elif op == 5:
            other_parent, other_key = rng.choice(slots)
            parent[key] = copy.deepcopy(other_parent[other_key])
        elif op == 6 and isinstance(value, list | dict):
            parent[key] = value  # shared reference: exercises aliases after a YAML round trip
        elif op == 7 and isinstance(value, list) and value:
            rng.shuffle(value)
    return data


def mutate_text(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(6)
        lines = text.split("\n")
        if op == 0 and len(lines) > 1:
            del lines[rng.randrange(len(lines))]
        elif op == 1:
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
        elif op == 2 and len(lines) > 1:
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 3:
            i = rng.randrange(len(lines))
            lines[i] = " " * rng.choice([1, 2, 3, 4, 8]) + lines[i]
        else:
            pos = rng.randrange(len(text) + 1)
            cut = rng.choice([0, 0, 1, 2, 10, 200])
            text = text[:pos] + rng.choice(TOKENS) + text[pos + cut :]
            continue
        text = "\n".join(lines)
    return text


def _check(
    kind: str,
    thunk: Any,
    file: str,
    failures: list[str],
    payload: Any,
    error: type[ValueError] = ScenarioError,
) -> str:
    try:
        result = thunk()
    except error as e:
        if not (isinstance(e, ValueError) and e.file == file and isinstance(e.field, str)):
            failures.append(f"{kind}: malformed ScenarioError {e!r}")
        if file not in str(e):
            failures.append(f"{kind}: message does not name the file: {e}")
        return "rejected"
    except Exception as e:  # anything else is a loader bug
        failures.append(f"{kind}: {type(e).__name__}: {e}\n--- input ---\n{str(payload)[:2000]}")
        return "crashed"
    if error is ScenarioError:
        assert isinstance(result, list) and all(isinstance(s, Scenario) for s in result)
    else:
        assert isinstance(result, Workplace)
    return "accepted"


@pytest.mark.slow
def test_fuzz_scenario_loader() -> None:
    wp = load_workplace()
    seeds = [
        (p.stem, p.name, p.read_text(encoding="utf-8")) for p in sorted(SCENARIO_DIR.glob("*.yaml"))
    ]
    parsed = {name: yaml.safe_load(text) for _, name, text in seeds}
    rng = random.Random(20250311)
    counts = {"accepted": 0, "rejected": 0, "crashed": 0}
    failures: list[str] = []
    n_text = int(TOTAL * TEXT_SHARE)
    start = time.perf_counter()
    for i in range(TOTAL):
        stem, name, text = seeds[i % len(seeds)]
        if i < n_text:
            mutated_text = mutate_text(text, rng)
            outcome = _check(
                "text",
                lambda t=mutated_text, n=name, s=stem: parse_family_text(
                    t, n, wp, expected_family=s
                ),
                name,
                failures,
                mutated_text,
            )
        else:
            data = mutate_structure(parsed[name], rng)
            outcome = _check(
                "structure",
                lambda d=data, n=name, s=stem: parse_family(d, n, wp, expected_family=s),
                name,
                failures,
                data,
            )
        counts[outcome] += 1
        if len(failures) >= 5:
            break
    elapsed = time.perf_counter() - start
    tried = sum(counts.values())
    print(
        f"\nscenario loader fuzz: {tried} inputs ({n_text} texts, {tried - n_text} structures) "
        f"in {elapsed:.0f}s: {counts}"
    )
    assert not failures, "\n\n".join(failures)
    assert tried == TOTAL >= DEFAULT_TOTAL or "CHARBENCH_FUZZ_SCENARIOS" in os.environ
    assert counts["rejected"] > 0 and counts["accepted"] > 0  # the mutator reaches both sides


# --------------------------------------------------------------------------- hypothesis

YAML_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.dates()
    | st.datetimes()
    | st.sampled_from([v for v in VALUES if isinstance(v, str)]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_FAMILY = SCENARIO_DIR / "recognition.yaml"


def _replace_at(data: Any, draw: st.DataObject) -> Any:
    """``data`` with one to three places (a value, a key, a list item) replaced or removed."""
    data = copy.deepcopy(data)
    for _ in range(draw.draw(st.integers(1, 3))):
        slots: list[tuple[Any, Any]] = []
        _paths(data, slots)
        if not slots:
            return draw.draw(YAML_VALUES)
        parent, key = draw.draw(st.sampled_from(slots))
        if draw.draw(st.booleans()):
            parent[key] = draw.draw(YAML_VALUES)
        else:
            del parent[key]
    return data


@pytest.mark.slow
@settings(derandomize=True, max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(draw=st.data())
def test_fuzz_hypothesis_values_anywhere(draw: st.DataObject) -> None:
    """Arbitrary YAML values anywhere in a family file and in the workplace: each loader
    returns its data or raises its own error naming the file."""
    wp = load_workplace()
    failures: list[str] = []
    family = _replace_at(yaml.safe_load(_FAMILY.read_text(encoding="utf-8")), draw)
    _check("family", lambda: parse_family(family, _FAMILY.name, wp, expected_family="recognition"),
           _FAMILY.name, failures, family)
    workplace = _replace_at(yaml.safe_load(WORKPLACE_FILE.read_text(encoding="utf-8")), draw)
    _check("workplace", lambda: parse_workplace(workplace, "wp.yaml"), "wp.yaml", failures,
           workplace, WorkplaceError)
    assert not failures, "\n\n".join(failures)
