"""charbench.contracts: a leaf module, old metadata read with today's meaning, one reading."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

import charbench.contracts as contracts
from charbench.contracts import EvalMeta, PersonaSet, ScoreFields


def test_contracts_is_a_leaf() -> None:
    imported: list[str] = []
    for node in ast.walk(ast.parse(Path(contracts.__file__).read_text())):
        if isinstance(node, ast.Import):
            imported += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append(node.module or "")
    assert "pydantic" in imported
    assert not [m for m in imported if m.startswith("charbench")]


def test_task_labels_are_one_list() -> None:
    assert contracts.TASK_LABELS == (
        "chat", "agentic", "draft", "chat-email", "agentic-any", "agentic-forced"
    )
    assert set(contracts.SCAFFOLD_LABELS.values()) | set(contracts.FORCED_LABELS.values()) == (
        contracts.EMAIL_TASKS
    )
    assert contracts.CHAT not in contracts.EMAIL_TASKS


def test_old_eval_metadata_means_what_it_meant() -> None:
    old = {"task": "agentic", "base": "b", "condition": "full", "personas": "sarcasm,humor",
           "classifier": "c", "restrict": False, "scaffold": "agentic"}
    meta = EvalMeta.model_validate(old)
    assert meta.personas == ("sarcasm", "humor")
    assert (meta.suite, meta.persona_set, meta.text_tool_calls, meta.resample) == (
        "charbench", PersonaSet(name="oct", hash=None), False, None
    )
    assert meta.email_task and meta.model_extra == {"scaffold": "agentic"}
    new = EvalMeta.model_validate(old | {"suite": "dct", "persona_set": {"name": "x", "hash": "h"}})
    assert new.suite == "dct" and new.persona_set.hash == "h"
    assert EvalMeta.model_validate(new.as_task_metadata()["charbench"]) == new
    with pytest.raises(ValidationError, match="suite"):
        EvalMeta.model_validate(old | {"suite": "other"})
    with pytest.raises(ValidationError, match="resample"):
        EvalMeta.model_validate(old | {"resample": "prompt"})


def test_score_fields_read_with_one_set_of_fallbacks() -> None:
    sample = {"persona": "humor", "personas": ["sarcasm", "humor"], "cluster": "sc1",
              "family": "budget"}
    # a minimal old score: labels, cluster and family come from the sample
    f = ScoreFields.read({"gold": "humor", "pred": ""}, sample, "humor-sc1")
    assert (f.gold, f.pred, f.labels, f.cluster, f.family) == (
        "humor", None, ("sarcasm", "humor"), "sc1", "budget"
    )
    assert (f.epoch, f.replicate, f.text, f.outcome, f.unit_family) == (1, 0, None, "", "budget")
    # nothing at all: the sample id is the cluster, the family falls back to it
    bare = ScoreFields.read({"gold": "humor", "labels": ["humor"]}, None, "s9")
    assert bare.cluster == "sample:s9" and bare.unit_family == "sample:s9"
    assert bare.row_key("s9") != bare.model_copy(update={"replicate": 1}).row_key("s9")
    with pytest.raises(ValueError, match="'gold'"):
        ScoreFields.read({"pred": "x"}, {}, "s")
    with pytest.raises(ValueError, match="'labels'"):
        ScoreFields.read({"gold": "x"}, {}, "s")
