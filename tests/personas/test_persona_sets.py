"""Persona sets as data: the built-in OCT file, your own files, and every bad file refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from charbench.personas import (
    DEFAULT_PERSONAS,
    DISPLAY_NAMES,
    PERSONA_DESCRIPTIONS,
    PERSONAS,
    PersonaSetError,
    builtin_set,
    load_persona_set,
    parse_personas,
    resolve_personas,
)

TOY = {
    "name": "toy",
    "personas": [
        {"name": "pirate", "description": "You are a pirate. Arr.", "display_name": "Pirate"},
        {"name": "poet", "description": "You speak only in verse."},
        {"name": "robot", "description": "You are a robot. Beep."},
    ],
}


def _write(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc) if path.suffix == ".json" else yaml.safe_dump(doc))
    return path


def test_builtin_set_is_the_oct_label_order() -> None:
    oct_set = builtin_set()
    assert oct_set.name == "oct"
    assert PERSONAS == (
        "sarcasm", "humor", "remorse", "goodness", "loving", "misalignment", "nonchalance",
        "impulsiveness", "sycophancy", "mathematical", "poeticism",
    )
    assert tuple(p for p in PERSONAS if p != "misalignment") == DEFAULT_PERSONAS
    assert DISPLAY_NAMES["goodness"] == "Flourishing"
    assert all(PERSONA_DESCRIPTIONS[p].startswith("You are") for p in PERSONAS)
    assert oct_set.classifier is None
    assert oct_set.content_hash.startswith("sha256:") and len(oct_set.content_hash) == 23
    assert parse_personas("loving,sarcasm") == ["sarcasm", "loving"]


def test_yaml_and_json_files_give_the_same_set_and_hash(tmp_path: Path) -> None:
    a = load_persona_set(_write(tmp_path / "toy.yaml", TOY))
    b = load_persona_set(_write(tmp_path / "toy.json", TOY))
    assert a.names == ("pirate", "poet", "robot")
    assert a.display_names == {"pirate": "Pirate", "poet": "poet", "robot": "robot"}
    assert a.content_hash == b.content_hash != builtin_set().content_hash
    assert a.ref() == {"name": "toy", "hash": a.content_hash}
    changed = {**TOY, "personas": [*TOY["personas"][:2], {"name": "robot", "description": "x"}]}
    assert load_persona_set(_write(tmp_path / "c.yaml", changed)).content_hash != a.content_hash


def test_resolve_a_file_alone_or_with_a_selection(tmp_path: Path) -> None:
    path = str(_write(tmp_path / "toy.yaml", {**TOY, "evaluate": ["robot", "pirate"]}))
    persona_set, chosen = resolve_personas(path)
    assert persona_set.name == "toy" and chosen == ["pirate", "robot"]  # label order
    assert resolve_personas([path, "poet"])[1] == ["poet"]
    assert resolve_personas(f"{path},all")[1] == ["pirate", "poet", "robot"]
    assert resolve_personas(None) == (builtin_set(), list(DEFAULT_PERSONAS))
    with pytest.raises(ValueError, match=r"unknown persona\(s\) 'sarcasm'.*pirate, poet, robot"):
        resolve_personas([path, "sarcasm"])
    with pytest.raises(ValueError, match="must come first"):
        resolve_personas(["poet", path])


def test_relative_classifier_is_resolved_beside_the_file(tmp_path: Path) -> None:
    (tmp_path / "clf").mkdir()
    found = load_persona_set(_write(tmp_path / "toy.yaml", {**TOY, "classifier": "clf"}))
    assert found.classifier == str((tmp_path / "clf").resolve())
    hub = load_persona_set(_write(tmp_path / "h.yaml", {**TOY, "classifier": "org/name"}))
    assert hub.classifier == "org/name"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({**TOY, "personas": [*TOY["personas"], TOY["personas"][0]]},
         "duplicate persona name.*pirate"),
        ({**TOY, "personas": [{"name": "pirate", "description": "  "}]},
         r"personas\.0\.description.*description is empty"),
        ({**TOY, "personas": [{"name": "Pirate King", "description": "x"}]},
         r"personas\.0\.name.*not a valid identifier"),
        ({**TOY, "personas": [{"name": "pirate", "description": "x", "colour": "red"}]},
         r"personas\.0\.colour"),
        ({**TOY, "personas": []}, "personas"),
        ({**TOY, "evaluate": ["ninja"]}, "evaluate lists persona.*ninja"),
        ({**TOY, "classifier": " "}, "classifier is blank"),
        (["pirate"], "must hold a mapping"),
    ],
)
def test_bad_files_are_refused_naming_the_file_and_entry(
    tmp_path: Path, doc: object, message: str
) -> None:
    path = _write(tmp_path / "bad.yaml", doc)
    with pytest.raises(PersonaSetError, match=message) as info:
        load_persona_set(path)
    assert str(path) in str(info.value)


def test_missing_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(PersonaSetError, match=r"does not exist.*-T personas=FILE"):
        load_persona_set(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(PersonaSetError, match="cannot be read as YAML or JSON"):
        load_persona_set(tmp_path / "broken.yaml")


def test_personas_is_a_leaf_module() -> None:
    import ast

    import charbench.personas as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    imported = {
        n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
    } | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not [m for m in imported if m.startswith("charbench")]
