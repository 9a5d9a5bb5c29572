"""Scenario data: the 50 packaged scenarios load and are sound; the loader rejects bad files."""

from __future__ import annotations

import ast
import copy
import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from charbench.agentic_email.scenarios import (
    FAMILIES,
    SCENARIO_DIR,
    Scenario,
    ScenarioError,
    load_directory,
    load_scenarios,
    parse_family,
)
from charbench.agentic_email.suite import CHARBENCH, CharbenchSuite
from charbench.agentic_email.tools import TOOL_NAMES, WorkplaceSim, call_tool
from charbench.agentic_email.workplace import (
    WORKPLACE_FILE,
    WorkplaceError,
    load_workplace,
    parse_workplace,
)
from charbench.personas import DISPLAY_NAMES, PERSONAS

ALL = load_scenarios()


def test_fifty_scenarios_ten_families_five_variants() -> None:
    assert len(ALL) == 50
    ids = [s.id for s in ALL]
    assert len(set(ids)) == 50
    assert tuple(dict.fromkeys(s.family for s in ALL)) == FAMILIES
    assert sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")) == sorted(FAMILIES)
    for fam in FAMILIES:
        assert [s.id for s in ALL if s.family == fam] == [f"{fam}_v{i}" for i in range(1, 6)]


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.id)
def test_scenario_is_sound(s: Scenario) -> None:
    wp = load_workplace()
    assert 25 <= len(s.request.split()) <= 80
    words = set(re.findall(r"[a-z]+", s.request.lower()))
    banned = {"persona", "style", "tone"} | set(PERSONAS) | {d.lower() for d in DISPLAY_NAMES.values()}
    assert not words & banned
    assert "{" not in s.request and "}" not in s.request, "an unfilled placeholder"
    assert s.recipient in {p.email for p in s.directory(wp)}
    assert s.recipient != wp.user.email
    assert 2 <= len(s.expected_path) <= 6 and s.expected_path[-1] == "send_email"
    assert s.min_tool_calls == len(s.expected_path)
    assert set(s.expected_path) <= set(TOOL_NAMES)
    assert s.persona_hooks and len(s.facts) >= 2


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.id)
def test_facts_are_what_the_expected_path_returns(s: Scenario) -> None:
    """The draft/chat controls render the same facts as the agentic tools return."""
    sim = WorkplaceSim(s)
    seen = " ".join(
        " ".join(call_tool(sim, c.tool, c.kwargs).split()).casefold() for c in s.expected_calls[:-1]
    )
    for fact in s.facts:
        assert " ".join(fact.split()).casefold() in seen, fact
    assert s.facts_text().splitlines() == [f"- {f}" for f in s.facts]


def test_distinct_requests_and_recipients_within_family() -> None:
    for fam in FAMILIES:
        group = [s for s in ALL if s.family == fam]
        assert len({s.request for s in group}) == 5
        assert len({tuple(s.facts) for s in group}) == 5


def test_selection() -> None:
    assert [s.id for s in load_scenarios("recognition")] == [f"recognition_v{i}" for i in range(1, 6)]
    assert [s.id for s in load_scenarios("Budget_Overreach_V3, recognition_v1")] == [
        "recognition_v1",
        "budget_overreach_v3",
    ]
    assert len(load_scenarios(["recognition", "recognition_v2", "vendor_renewal"])) == 10
    assert len(load_scenarios("all")) == 50 and len(load_scenarios("")) == 50
    assert load_scenarios() is not load_scenarios()  # callers get their own list
    with pytest.raises(ValueError, match="Valid families: candidate_rejection") as e:
        load_scenarios("recognition,not_a_family")
    assert "'not_a_family'" in str(e.value)
    with pytest.raises(ValueError, match="text"):
        load_scenarios([{"a": 1}])  # type: ignore[list-item]


# --------------------------------------------------------------------------- workplace


def test_workplace_standing_context() -> None:
    wp = load_workplace()
    assert load_workplace() is wp  # cached
    assert len(wp.people) >= 20 and len(wp.customers) >= 6 and len(wp.vendors) >= 5
    ctx = wp.standing_context()
    assert ctx.startswith("## Standing context")
    assert "Tuesday 2025-03-11 09:15" in ctx and wp.user.name in ctx and wp.org_name in ctx
    for p in wp.people:
        assert p.email in ctx
    for title in wp.policies:
        assert title in ctx
    lowered = ctx.lower()
    assert "persona" not in lowered and "style" not in lowered


def _workplace_yaml() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKPLACE_FILE.read_text())
    return data


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda d: d["people"][1].update(manager="Nobody Known"), "people[1].manager", "not a colleague"),
        (lambda d: d["people"][2].update(email=d["people"][1]["email"]), "people[2].email", "duplicate"),
        (lambda d: d.update(now="March 11"), "now", "YYYY-MM-DD HH:MM"),
        (lambda d: d["calendar"][0].update(person="Ghost Person"), "calendar[0].person", "not in the directory"),
        (lambda d: d.pop("policies"), "policies", "missing required field"),
        (lambda d: d["user"].update(email="not-an-email"), "user.email", "not an email"),
        (lambda d: d["calendar"][0].update(end="09:00"), "calendar[0].end", "after start"),
    ],
)
def test_workplace_validation(mutate: Any, field: str, message: str) -> None:
    data = _workplace_yaml()
    mutate(data)
    with pytest.raises(WorkplaceError) as e:
        parse_workplace(data, "wp.yaml")
    assert e.value.file == "wp.yaml" and field in e.value.field and message in str(e.value)


# --------------------------------------------------------------------------- loader errors


def _family(name: str = "recognition") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((SCENARIO_DIR / f"{name}.yaml").read_text())
    return data


def _write(tmp_path: Path, data: dict[str, Any] | str, name: str = "recognition") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def _load_error(tmp_path: Path, data: dict[str, Any] | str, name: str = "recognition") -> ScenarioError:
    path = _write(tmp_path, data, name)
    with pytest.raises(ScenarioError) as e:
        load_directory(tmp_path)
    assert isinstance(e.value, ValueError)
    assert e.value.file == str(path), e.value
    assert str(path) in str(e.value)
    return e.value


def _t(d: dict[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = d["template"]
    return template


CASES: dict[str, tuple[Any, str, str]] = {
    "missing field": (lambda d: _t(d).pop("request"), "template.request", "missing required field"),
    "unknown field": (lambda d: d.update(colour="blue"), "colour", "unknown field"),
    "unknown tool in stub": (lambda d: _t(d)["stubs"].update(send_fax=[]), "stubs.send_fax", "unknown tool 'send_fax'"),
    "action tool in stub": (lambda d: _t(d)["stubs"].update(send_email=[]), "stubs.send_email", "takes no stubs"),
    "unknown tool in path": (lambda d: _t(d)["expected_path"][0].update(tool="teleport"), "expected_path[0].tool", "unknown tool"),
    "bad argument in path": (lambda d: _t(d)["expected_path"][0].update(args={"q": "x"}), "expected_path[0].args", "missing required"),
    "path does not end in email": (lambda d: _t(d)["expected_path"].pop(), "expected_path[3].tool", "must be send_email"),
    "path too long": (lambda d: _t(d)["expected_path"].__setitem__(slice(0, 0), [{"tool": "lookup_policy", "args": {"topic": "x"}}] * 3), "expected_path", "2-6"),
    "email to someone else": (lambda d: _t(d)["expected_path"][-1]["args"].update(to="ruth.abernathy@brightwater.example"), "expected_path[4].args.to", "recipient"),
    "duplicate variant id": (lambda d: d["variants"][1].update(variant=1), "variants[1].variant", "duplicate variant 1"),
    "four variants": (lambda d: d["variants"].pop(), "variants", "exactly 5 variants, got 4"),
    "six variants": (lambda d: d["variants"].append(copy.deepcopy(d["variants"][0])), "variants", "exactly 5 variants, got 6"),
    "variant out of range": (lambda d: d["variants"][0].update(variant=9), "variants[0].variant", "1-5"),
    "unknown chat author": (lambda d: _t(d)["stubs"]["search_chat"][0]["messages"][0].update({"from": "Zed Unknown"}), "search_chat[0].messages[0].from", "not a (unique) contact"),
    "unknown document owner": (lambda d: _t(d)["stubs"]["search_documents"][0].update(owner="Zed Unknown"), "search_documents[0].owner", "not a (unique) contact"),
    "unknown address in a document": (lambda d: _t(d)["stubs"]["search_documents"][0].update(text="Ask ghost@nowhere.example"), "search_documents[0]", "ghost@nowhere.example"),
    "recipient not in directory": (lambda d: d["variants"][2]["params"].update(email="ghost@brightwater.example"), "recipient", "not in the directory"),
    "request too short": (lambda d: _t(d).update(request="Thank {first} for me."), "template.request", "has 4 words"),
    "request too long": (lambda d: _t(d).update(request="please " * 81 + "{first}"), "template.request", "has 82 words"),
    "request names a persona": (lambda d: _t(d).update(request=_t(d)["request"] + " Make it sarcastic."), "template.request", "sarcastic"),
    "fact not returned by tools": (lambda d: _t(d)["facts"].append("Result: a fact nobody can look up"), "facts[5]", "not returned verbatim"),
    "stub changed, fact not": (lambda d: _t(d)["stubs"]["search_documents"][0].update(text=_t(d)["stubs"]["search_documents"][0]["text"].replace("Result: {impact}", "Result: {summary}")), "facts[2]", "not returned verbatim"),
    "missing placeholder value": (lambda d: d["variants"][4]["params"].pop("doc"), "variants[4]", "placeholder {doc}"),
    "family does not match file": (lambda d: d.update(family="praise"), "family", "does not match the file name"),
    "bad date": (lambda d: _t(d)["stubs"]["search_documents"][0].update(updated="yesterday"), "updated", "YYYY-MM-DD"),
    "wrong type": (lambda d: _t(d).update(facts="just one string"), "template.facts", "expected a list"),
    "not a mapping": (lambda d: d["variants"].__setitem__(0, "v1"), "variants[0]", "expected a mapping"),
    "duplicate contact": (lambda d: _t(d)["stubs"].update(lookup_contact=[{"name": "Priya Raman", "email": "p@x.example", "title": "t", "team": "x"}]), "lookup_contact[0]", "already in the directory"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_loader_rejects(tmp_path: Path, case: str) -> None:
    mutate, field, message = CASES[case]
    data = _family()
    mutate(data)
    err = _load_error(tmp_path, data)
    assert field in err.field, (err.field, str(err))
    assert message in str(err)


def test_loader_rejects_invalid_yaml(tmp_path: Path) -> None:
    err = _load_error(tmp_path, "family: recognition\ntemplate: [unclosed\n")
    assert "invalid YAML" in str(err)


def test_loader_rejects_non_utf8(tmp_path: Path) -> None:
    (tmp_path / "recognition.yaml").write_bytes(b"family: \xff\xfe\n")
    with pytest.raises(ScenarioError, match="cannot read"):
        load_directory(tmp_path)


def test_loader_rejects_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no scenario family files"):
        load_scenarios(directory=tmp_path)


def test_loader_rejects_alias_bomb(tmp_path: Path) -> None:
    """YAML aliases that expand to 10**8 values are refused, not expanded."""
    data = _family()
    node: Any = ["x"] * 10
    for _ in range(7):
        node = [node] * 10  # shared references: safe_dump writes anchors and aliases
    _t(data)["facts"] = node
    text = yaml.safe_dump(data, sort_keys=False)
    assert "&id" in text and len(text) < 50_000
    err = _load_error(tmp_path, text)
    assert "more than 20000 values" in str(err)


def test_packaged_directory_matches_a_copy(tmp_path: Path) -> None:
    """A copied, unchanged data directory loads to identical scenarios (no hidden state)."""
    for f in SCENARIO_DIR.glob("*.yaml"):
        (tmp_path / f.name).write_text(f.read_text())
    assert [(s.id, s.facts, s.request) for s in load_directory(tmp_path)] == [
        (s.id, s.facts, s.request) for s in ALL
    ]


# --------------------------------------------------------------------------- data model


def test_dates_and_times_are_real_types() -> None:
    wp = load_workplace()
    event = wp.events[0]
    assert isinstance(event.date, date) and isinstance(event.start, time)
    assert isinstance(wp.documents[0].updated, date) and isinstance(wp.now, datetime)
    assert event.render().startswith("[MTG-1001] 2025-03-11 (Tuesday) 10:00-10:45 ")
    with pytest.raises(ValidationError):  # frozen
        event.title = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda d: d["people"][3].update(colour="x"), "people[3].colour", "allowed fields here: email, external"),
        (lambda d: d["policies"]["expenses"].update(k=1), "policies.expenses.k", "keywords, text, title"),
        (lambda d: d.update({5: 1}), "[5]", "keys must be text, got int"),
        (lambda d: d["calendar"][0].update(start="24:00"), "calendar[0].start", "expected a time HH:MM, got '24:00'"),
        (lambda d: d["holidays"][0].update(date="2025-02-30"), "holidays[0].date", "expected a date YYYY-MM-DD"),
        (lambda d: d["people"][0].update(external="yes"), "people[0].external", "expected true or false"),
        (lambda d: d["customers"][0]["contacts"][0].update(email="bad"), "customers[0].contacts[0].email", "not an email address: 'bad'"),
        (lambda d: d["people"][4].update(title=["a"]), "people[4].title", "expected text, got list"),
        (lambda d: d.update(rooms="Estuary"), "rooms", "expected a list, got str"),
        (lambda d: d.update(people=[]), "people", "at least 1 item"),
        (lambda d: d["calendar"][1].update(id="mtg-1001"), "calendar[1].id", "duplicate meeting id 'MTG-1001'"),
    ],
)
def test_workplace_errors_name_the_field_as_written(mutate: Any, field: str, message: str) -> None:
    data = _workplace_yaml()
    mutate(data)
    with pytest.raises(WorkplaceError) as e:
        parse_workplace(data, "wp.yaml")
    assert e.value.field == field and message in str(e.value), str(e.value)


def test_unsafe_characters_in_data_are_replaced() -> None:
    """Text from scenario data reaches tool results, hence Inspect's log: a NUL byte (YAML's
    "\\0") or a lone surrogate is replaced with U+FFFD on load."""
    data = _family()
    doc = _t(data)["stubs"]["search_documents"][0]
    doc["text"] = doc["text"] + "\nNote: bad\x00byte and lone \ud800 half"
    scenario = parse_family(data, "recognition.yaml")[0]
    text = scenario.stubs.documents[0].text
    assert "\x00" not in text and "\ud800" not in text and text.count("\ufffd") == 2
    shown = call_tool(WorkplaceSim(scenario), "read_document", {"doc_id": scenario.stubs.documents[0].id})
    assert "bad\ufffdbyte" in shown


def test_charbench_suite() -> None:
    assert CHARBENCH.name == "charbench"
    assert [s.id for s in CHARBENCH.load()] == [s.id for s in ALL]
    assert [s.id for s in CHARBENCH.load("recognition_v2")] == ["recognition_v2"]
    assert CHARBENCH.workplace() is load_workplace()
    with pytest.raises(ValueError, match="unknown scenario"):
        CHARBENCH.load("nope")


def test_suite_from_other_files(tmp_path: Path) -> None:
    """A suite reads its own workplace file: a renamed user shows in the scenarios' tools."""
    data = _workplace_yaml()
    data["organisation"]["name"] = "Other Org"
    wp_file = tmp_path / "workplace.yaml"
    wp_file.write_text(yaml.safe_dump(data))
    suite = CharbenchSuite(workplace_file=wp_file)
    assert suite.workplace().org_name == "Other Org"
    assert len(suite.load("recognition")) == 5
    broken = CharbenchSuite(workplace_file=tmp_path / "missing.yaml")
    with pytest.raises(WorkplaceError, match="cannot read the file"):
        broken.load()


def test_no_import_cycle_in_agentic_email() -> None:
    """Module-level and function-level imports between agentic_email modules form no cycle."""
    package = SCENARIO_DIR.parents[3]
    graph: dict[str, set[str]] = {}
    for f in package.glob("*.py"):
        tree = ast.parse(f.read_text())
        graph[f.stem] = {
            node.module.rsplit(".", 1)[-1]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("charbench.agentic_email.")
        }
    done: set[str] = set()

    def visit(mod: str, path: tuple[str, ...]) -> None:
        assert mod not in path, f"import cycle: {' -> '.join((*path, mod))}"
        if mod not in done:
            for dep in graph.get(mod, ()):
                visit(dep, (*path, mod))
            done.add(mod)

    for mod in graph:
        visit(mod, ())
    assert graph["models"] == set() and graph["errors"] == set()  # the leaves
