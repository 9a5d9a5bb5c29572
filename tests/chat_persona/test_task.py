"""chat_persona construction: samples, metadata, and every bad input rejected up front."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from inspect_ai.model import ChatMessageSystem, ChatMessageUser

from charbench import chat_persona
from charbench.chat_persona.prompts import SUFFIXES
from charbench.chat_persona.task import persona_system, sample_id
from charbench.personas import DEFAULT_PERSONAS, PERSONA_DESCRIPTIONS


def test_samples_ids_and_metadata(tiny_clf: Path) -> None:
    task = chat_persona(
        personas=["humor", "sarcasm"], prompts="builtin", n=3, classifier=str(tiny_clf)
    )
    samples = list(task.dataset)
    # grouped by prompt, personas in label order within a prompt
    assert [s.id for s in samples] == [
        "sarcasm-0000", "humor-0000", "sarcasm-0001", "humor-0001", "sarcasm-0002", "humor-0002",
    ]
    s = samples[3]
    assert s.target == "humor"
    assert s.metadata == {
        "persona": "humor",
        "personas": ["sarcasm", "humor"],
        "cluster": "builtin-00001",
        "task": "chat_persona",
        "prompt_id": "builtin-00001",
        "row": 1,
        "selection": "heldout",
        "suffix": "none",
        "persona_prompt": False,
        "sanitized": 0,
    }
    assert isinstance(s.input, list) and len(s.input) == 1  # no system prompt
    assert isinstance(s.input[0], ChatMessageUser)
    assert s.input[0].text == samples[2].input[0].text  # same prompt for both personas
    assert task.config.temperature == 0.7 and task.config.top_p == 0.95
    assert task.config.max_tokens == 512
    meta = task.metadata["charbench"]
    assert meta["task"] == "chat" and meta["classifier"] == str(tiny_clf)
    assert meta["personas"] == ["sarcasm", "humor"] and meta["suffix"] == "none"
    assert meta["selection"] == "builtin:heldout" and meta["persona_prompt"] is False
    assert meta["restrict"] is False


def test_default_personas_and_generation_settings(tiny_clf: Path) -> None:
    task = chat_persona(
        prompts="builtin", n=2, classifier=str(tiny_clf), temperature=0.2, top_p=0.5,
        max_tokens=64,
    )
    assert len(task.dataset) == 2 * len(DEFAULT_PERSONAS)
    assert "misalignment" not in {s.metadata["persona"] for s in task.dataset}  # type: ignore[index]
    assert (task.config.temperature, task.config.top_p, task.config.max_tokens) == (0.2, 0.5, 64)


def test_suffix_all_multiplies_samples(tiny_clf: Path) -> None:
    task = chat_persona(
        personas="sarcasm,poeticism", prompts="builtin", n=2, suffix="all",
        classifier=str(tiny_clf),
    )
    samples = list(task.dataset)
    assert len(samples) == 2 * 2 * 9
    ids = [s.id for s in samples]
    assert len(set(ids)) == len(ids)
    assert "sarcasm-0000" in ids and "poeticism-0001-v7" in ids
    by_id = {s.id: s for s in samples}
    v3 = by_id["poeticism-0001-v3"]
    assert v3.metadata is not None and v3.metadata["suffix"] == "v3"
    assert v3.metadata["cluster"] == by_id["sarcasm-0001"].metadata["cluster"]  # type: ignore[index]
    assert v3.input[0].text.endswith("\n" + SUFFIXES["v3"])  # type: ignore[union-attr]
    assert task.metadata["charbench"]["suffix"] == "all"


def test_single_suffix(tiny_clf: Path) -> None:
    task = chat_persona(
        personas="sarcasm", prompts="builtin", n=1, suffix="v1", classifier=str(tiny_clf)
    )
    (s,) = list(task.dataset)
    assert s.id == sample_id("sarcasm", 0, "v1") == "sarcasm-0000-v1"
    assert s.input[0].text.endswith("\n(DO NOT ROLEPLAY. Respond naturally only.)")  # type: ignore[union-attr]


def test_persona_prompt_condition(tiny_clf: Path) -> None:
    task = chat_persona(
        personas="loving,mathematical", prompts="builtin", n=1, persona_prompt=True,
        classifier=str(tiny_clf),
    )
    for s in task.dataset:
        # the input is the request; the solver adds the description as the system message
        assert isinstance(s.input, list) and [m.role for m in s.input] == ["user"]
        assert s.metadata["persona_prompt"] is True  # type: ignore[index]
        (system,) = persona_system()(SimpleNamespace(metadata=s.metadata))  # type: ignore[arg-type]
        assert isinstance(system, ChatMessageSystem)
        assert system.text == PERSONA_DESCRIPTIONS[s.metadata["persona"]]  # type: ignore[index]


@pytest.fixture
def nothing_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a classifier or model would be loaded or the Hub contacted."""
    import transformers

    # (``charbench.chat_persona`` is the task function at package level, so import the
    # submodule with from-import rather than ``import charbench.chat_persona.dataset as``.)
    from charbench.chat_persona import dataset
    from charbench.scoring import classifiers

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("loaded something before validating the arguments")

    monkeypatch.setattr(classifiers, "get_classifier", forbidden)
    monkeypatch.setattr(dataset, "load_pure_dove", forbidden)
    for cls in ("AutoModelForSequenceClassification", "AutoModelForCausalLM", "AutoModel"):
        monkeypatch.setattr(getattr(transformers, cls), "from_pretrained", forbidden)


@pytest.mark.usefixtures("nothing_loads")
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"personas": "sarcasm,wizard"}, r"unknown persona\(s\) 'wizard'; valid personas are sarcasm, humor"),
        ({"personas": ["humor", "Gandalf"]}, r"unknown persona\(s\) 'gandalf'"),
        ({"selection": "first"}, r"unknown selection 'first'; valid selections are dct, oct, heldout"),
        ({"suffix": "v9"}, r"unknown suffix 'v9'; valid suffixes are none, v0, v1, .*v7, all"),
        ({"n": 0}, r"n must be >= 1"),
        ({"n": "ten"}, r"n must be an integer"),
        ({"n": 10_000}, r"n=10000 is larger than the prompts available: builtin has \d+"),
        ({"resample": "block"}, r"unknown resample 'block'; valid values are cluster, row"),
        ({"persona_prompt": "yes"}, r"persona_prompt must be true or false"),
        ({"reuse_generations": 1}, r"reuse_generations must be true or false"),
        ({"temperature": -0.1}, r"temperature must be >= 0"),
        ({"top_p": 1.5}, r"top_p must be between 0.0 and 1.0"),
        ({"max_tokens": 0}, r"max_tokens must be >= 1"),
        ({"prompts": "/nonexistent/prompts.jsonl"}, r"prompts file '/nonexistent/prompts.jsonl' not found"),
        ({"classifier": ["org/a", "org/b"]}, r"classifier must be"),
        ({"classifier": None}, r"no classifier given and no model"),
    ],
)
def test_bad_input_is_a_value_error_before_anything_loads(
    kwargs: dict[str, Any], message: str, tiny_clf: Path
) -> None:
    args: dict[str, Any] = {"prompts": "builtin", "n": 2, "classifier": str(tiny_clf), **kwargs}
    with pytest.raises(ValueError, match=message):
        chat_persona(**args)


@pytest.mark.usefixtures("nothing_loads")
def test_persona_errors_come_before_the_hub(tiny_clf: Path) -> None:
    # prompts=None would read Pure-Dove; the bad persona must be reported first
    with pytest.raises(ValueError, match="unknown persona"):
        chat_persona(personas="nobody", classifier=str(tiny_clf))


@pytest.mark.usefixtures("nothing_loads")
def test_malformed_prompts_file(tmp_path: Path, tiny_clf: Path) -> None:
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "fine"}\nnot json\n')
    with pytest.raises(ValueError, match=r"line 2 is not valid JSON"):
        chat_persona(prompts=str(bad), classifier=str(tiny_clf), n=1)


@pytest.mark.usefixtures("nothing_loads")
def test_classifier_labels_must_cover_personas(tiny_clf_missing_poeticism: Path) -> None:
    spec = str(tiny_clf_missing_poeticism)
    with pytest.raises(ValueError, match=r"cannot score persona\(s\) poeticism: its labels are sarcasm"):
        chat_persona(prompts="builtin", n=2, classifier=spec)
    # without poeticism the same classifier is fine
    task = chat_persona(personas="sarcasm,humor", prompts="builtin", n=2, classifier=spec)
    assert len(task.dataset) == 4


@pytest.mark.usefixtures("nothing_loads")
def test_unreadable_classifier(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"could not read the config of classifier"):
        chat_persona(prompts="builtin", n=2, classifier=str(tmp_path / "no-such-classifier"))
