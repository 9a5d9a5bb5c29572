"""charbench train-classifier: data from logs, split by prompt, a trained checkpoint that works."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import pytest
from conftest import TOPICS, VOCAB, reply_text, write_chat_log

from charbench.scoring import get_classifier, macro_f1
from charbench.training import (
    DataError,
    TrainSettings,
    check_enough,
    collect_replies,
    split_by_prompt,
    train_classifier,
)
from charbench.training.classifier_command import add_parser, run

PERSONAS = list(VOCAB)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["train-classifier", *argv])


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clf_logs")
    ref = {"name": "toy", "hash": "sha256:0000"}
    write_chat_log(root / "a", topics=TOPICS[:6], personas=PERSONAS, seed=1, persona_set=ref,
                   replies_per_prompt=2)
    # the second log has no Score.metadata["text"]: the completion is used
    write_chat_log(root / "b", topics=TOPICS[6:10], personas=PERSONAS, seed=2, persona_set=ref,
                   with_text=False, replies_per_prompt=2)
    return root


def test_collect_and_split_by_prompt(logs: Path) -> None:
    data = collect_replies([logs])
    assert data.labels == PERSONAS
    assert data.counts() == {p: 20 for p in PERSONAS}
    assert data.persona_set == {"name": "toy", "hash": "sha256:0000"}
    assert len(data.logs) == 2 and data.models == ["mockllm/model"] * 2
    assert all(r.text.startswith("Well, ") for r in data.replies)
    train, val = split_by_prompt(data, 0.3, seed=0)
    assert {r.group for r in train}.isdisjoint({r.group for r in val})
    assert len(train) + len(val) == 60 and val
    # the same seed gives the same split
    assert split_by_prompt(data, 0.3, seed=0)[1] == val


def test_too_little_data_says_how_many(logs: Path) -> None:
    data = collect_replies([logs])
    _, val = split_by_prompt(data, 0.3)
    with pytest.raises(DataError, match=r"needs at least 50 replies per persona; pirate has 20"):
        check_enough(data, val, min_per_persona=50)


def test_trained_minilm_beats_chance_on_held_out_prompts(
    logs: Path, minilm: Path, tmp_path: Path
) -> None:
    out = tmp_path / "clf"
    rc = run(_args(str(logs), "--out", str(out), "--base", "minilm", "--epochs", "8",
                   "--lr", "1e-4", "--val-fraction", "0.3", "--max-length", "64",
                   "--min-per-persona", "10"))
    assert rc == 0
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "pirate", "1": "poet", "2": "robot"}
    record = json.loads((out / "training.json").read_text())
    assert record["labels"] == PERSONAS
    assert sum(map(sum, record["validation"]["confusion"]["matrix"])) == sum(
        record["counts"]["validation"].values()
    )
    card = (out / "README.md").read_text()
    assert "Macro-F1" in card and "| pirate |" in card and "transformers" in card
    # prompts the classifier has never seen, scored through charbench's own classifier
    rng = random.Random(7)
    texts = [(p, reply_text(p, t, rng)) for t in TOPICS[10:] for p in PERSONAS for _ in range(3)]
    clf = get_classifier(str(out), device="cpu")
    probs = clf.classify_batch([t for _, t in texts])
    pred = [max(pr, key=pr.__getitem__) for pr in probs]
    assert macro_f1([p for p, _ in texts], pred, PERSONAS) > 0.7  # chance is 1/3


def test_same_seed_same_weights(logs: Path, tmp_path: Path) -> None:
    from fixtures.tiny_classifier import build_tiny_classifier
    from safetensors.torch import load_file

    base = build_tiny_classifier(tmp_path / "base", labels=["a", "b"])
    data = collect_replies([logs])
    train, val = split_by_prompt(data, 0.3)
    settings = TrainSettings(base=str(base), epochs=1, seed=3, device="cpu")
    r1 = train_classifier(data, train, val, tmp_path / "one", settings)
    r2 = train_classifier(data, train, val, tmp_path / "two", settings)
    w1 = load_file(str(tmp_path / "one" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "two" / "model.safetensors"))
    assert w1.keys() == w2.keys() and all((w1[k] == w2[k]).all() for k in w1)
    assert r1.val_pred == r2.val_pred and r1.labels == PERSONAS


def test_bad_inputs_fail_before_training(logs: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert run(_args(str(logs), "--out", str(tmp_path / "full"))) == 2
    assert "--out" in capsys.readouterr().err
    assert run(_args(str(logs), "--out", str(tmp_path / "o"), "--epochs", "0")) == 2
    assert "--epochs must be positive" in capsys.readouterr().err
    assert run(_args(str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run(_args(str(logs), "--out", str(tmp_path / "o"), "--min-per-persona", "21")) == 2
    assert "at least 21 replies per persona; pirate has 20" in capsys.readouterr().err
    # an encoder that cannot be loaded (offline, not cached) names --base
    assert run(_args(str(logs), "--out", str(tmp_path / "o"), "--min-per-persona", "5",
                     "--base", str(tmp_path / "no_encoder"))) == 2
    assert "--base" in capsys.readouterr().err


def test_logs_of_two_persona_sets_are_refused(tmp_path: Path) -> None:
    write_chat_log(tmp_path / "a", topics=TOPICS[:2], personas=PERSONAS,
                   persona_set={"name": "toy", "hash": "sha256:1"})
    write_chat_log(tmp_path / "b", topics=TOPICS[2:4], personas=PERSONAS,
                   persona_set={"name": "toy", "hash": "sha256:2"})
    with pytest.raises(DataError, match="different persona sets"):
        collect_replies([tmp_path])


def test_agentic_logs_are_not_training_data(tmp_path: Path) -> None:
    write_chat_log(tmp_path, topics=TOPICS[:2], personas=PERSONAS, task_name="agentic")
    with pytest.raises(DataError, match="none of the logs is a chat_persona log"):
        collect_replies([tmp_path])


def test_registered_as_a_charbench_subcommand(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from charbench.cli import main

    assert main(["train-classifier", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "charbench train-classifier: log directory" in capsys.readouterr().err
