"""A persona set file through both tasks, the zero-shot classifier and the sweep grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from inspect_ai.model import ChatMessageSystem

from charbench import agentic_email, chat_persona
from charbench.personas import builtin_set, load_persona_set


def _systems_seen(task: Any, tmp_path: Path) -> dict[str, str]:
    """Run ``task`` on a scripted model; the system prompt each persona's model saw."""
    from fixtures.scripted_models import reply, scripted_model
    from inspect_ai import eval as inspect_eval

    def script(turn: int, messages: list[Any], tools: list[Any]) -> Any:
        return reply("Arr, a short reply.")

    (log,) = inspect_eval(task, model=scripted_model(script), log_dir=str(tmp_path),
                          display="none")
    assert log.status == "success", log.error
    seen = {}
    for sample in log.samples or []:
        assert not any(isinstance(m, ChatMessageSystem) for m in sample.input)  # type: ignore[union-attr]
        first = sample.messages[0]
        assert isinstance(first, ChatMessageSystem)
        seen[sample.metadata["persona"]] = first.text
    return seen

DOC = {
    "name": "toy",
    "personas": [
        {"name": "pirate", "description": "You are a pirate. Arr, ships and treasure."},
        {"name": "poet", "description": "You speak in rhyming verse about the moon."},
        {"name": "robot", "description": "You are a robot. Beep boop, circuits."},
    ],
}


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("toy") / "toy.yaml"
    path.write_text(yaml.safe_dump(DOC))
    return path


@pytest.fixture(scope="module")
def toy_clf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures.tiny_classifier import build_tiny_classifier

    return build_tiny_classifier(tmp_path_factory.mktemp("toyclf") / "clf",
                                 labels=["pirate", "poet", "robot"])


def test_chat_persona_takes_a_persona_set_file(toy_file: Path, toy_clf: Path,
                                               tmp_path: Path) -> None:
    task = chat_persona(personas=[str(toy_file), "robot", "pirate"], prompts="builtin", n=2,
                        persona_prompt=True, classifier=str(toy_clf))
    samples = list(task.dataset)
    assert [s.id for s in samples] == ["pirate-0000", "robot-0000", "pirate-0001", "robot-0001"]
    # the prompted condition's system message (added by the task's first solver)
    assert _systems_seen(task, tmp_path)["robot"] == "You are a robot. Beep boop, circuits."
    meta = task.metadata["charbench"]  # type: ignore[index]
    assert meta["personas"] == ["pirate", "robot"]
    assert meta["persona_set"] == load_persona_set(toy_file).ref()


def test_the_sets_classifier_is_the_default(tmp_path: Path, toy_clf: Path) -> None:
    path = tmp_path / "with_clf.yaml"
    path.write_text(yaml.safe_dump({**DOC, "classifier": str(toy_clf)}))
    task = chat_persona(personas=str(path), prompts="builtin", n=1)
    assert task.metadata["charbench"]["classifier"] == str(toy_clf)  # type: ignore[index]


def test_a_classifier_that_does_not_cover_the_set_fails_before_loading(
    toy_file: Path, tmp_path: Path
) -> None:
    from fixtures.tiny_classifier import build_tiny_classifier

    clf = build_tiny_classifier(tmp_path / "clf2", labels=["pirate", "poet"])
    with pytest.raises(ValueError, match=r"cannot score persona\(s\) robot"):
        chat_persona(personas=str(toy_file), prompts="builtin", n=1, classifier=str(clf))
    with pytest.raises(ValueError, match=r"cannot score persona\(s\) robot"):
        agentic_email(personas=str(toy_file), scenarios="recognition_v1", classifier=str(clf))


def test_agentic_email_takes_a_persona_set_file(toy_file: Path, toy_clf: Path,
                                                tmp_path: Path) -> None:
    task = agentic_email(personas=str(toy_file), scenarios="recognition_v1", scaffold="draft",
                         persona_prompt=True, classifier=str(toy_clf))
    samples = list(task.dataset)
    assert [s.id for s in samples] == [f"{p}-recognition_v1" for p in ("pirate", "poet", "robot")]
    assert "You speak in rhyming verse about the moon." in _systems_seen(task, tmp_path)["poet"]
    assert task.metadata["charbench"]["persona_set"]["name"] == "toy"  # type: ignore[index]


def test_builtin_eval_metadata_records_the_oct_set() -> None:
    task = chat_persona(personas="sarcasm", prompts="builtin", n=1, classifier="zeroshot")
    assert task.metadata["charbench"]["persona_set"] == builtin_set().ref()  # type: ignore[index]


def test_zeroshot_scores_with_the_sets_descriptions(toy_file: Path) -> None:
    pytest.importorskip("sentence_transformers")
    from charbench.scoring import get_classifier

    persona_set = load_persona_set(toy_file)
    clf = get_classifier("zeroshot", device="cpu", descriptions=persona_set.descriptions)
    assert clf.labels == ["pirate", "poet", "robot"]
    (probs,) = clf.classify_batch(["Beep boop. My circuits compute the answer, human."])
    assert max(probs, key=probs.__getitem__) == "robot"
    # the built-in set's zero-shot classifier is another cached instance
    assert get_classifier("zeroshot", device="cpu").labels[0] == "sarcasm"


def test_the_sweep_passes_the_file_to_every_task(toy_file: Path) -> None:
    from charbench.sweep import SweepConfig, build_grid

    cfg = SweepConfig(bases=["/m"], stages=["base"], tasks=["chat", "draft"],
                      personas=["pirate", "poet"], persona_set=str(toy_file),
                      prompts="builtin", n=2, scenarios=["recognition_v1"])
    grid = build_grid(cfg)
    assert [ev.task_args["personas"] for ev in grid] == [[str(toy_file), "pirate", "poet"]] * 2
    assert grid[0].n_samples == 4
