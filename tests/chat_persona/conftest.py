"""Fixtures of the chat_persona tests: a Pure-Dove-shaped dataset and prompt files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

N_DOVE_ROWS = 1200
EMPTY_CONVERSATION_ROWS = frozenset({3, 17, 520, 777})
EMPTY_INPUT_ROWS = frozenset({5, 501, 640})


def make_dove_rows(n: int = N_DOVE_ROWS) -> list[dict[str, Any]]:
    """Pure-Dove-shaped rows; a few with an empty conversation or an empty first input."""
    rows: list[dict[str, Any]] = []
    for i in range(n):
        if i in EMPTY_CONVERSATION_ROWS:
            conv: list[dict[str, str]] = []
        elif i in EMPTY_INPUT_ROWS:
            conv = [{"input": "", "output": "..."}]
        else:
            conv = [
                {"input": f"dove question {i}", "output": f"answer {i}"},
                {"input": f"follow-up {i}", "output": "more"},
            ]
        rows.append({"source": "fake", "conversation": conv})
    return rows


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def dove_rows() -> list[dict[str, Any]]:
    return make_dove_rows()


@pytest.fixture
def dove_file(tmp_path: Path, dove_rows: list[dict[str, Any]]) -> Path:
    return write_jsonl(tmp_path / "Pure-Dove.jsonl", dove_rows)


@pytest.fixture(scope="session")
def tiny_clf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared tiny ModernBERT persona classifier (real 11 labels, random weights)."""
    from fixtures.tiny_classifier import build_tiny_classifier

    return build_tiny_classifier(tmp_path_factory.mktemp("chat_clf") / "clf")


@pytest.fixture(scope="session")
def tiny_clf_missing_poeticism(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures.tiny_classifier import build_tiny_classifier_missing_label

    return build_tiny_classifier_missing_label(
        tmp_path_factory.mktemp("chat_clf_missing") / "clf", missing="poeticism"
    )
