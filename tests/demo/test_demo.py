"""``charbench demo``: option validation, the plan, and the whole machinery end to end.

The end-to-end test runs the real demo code path (``charbench.cli.main(["demo", ...])``:
the classifier's chat data, the MiniLM classifier trained on it, the evaluation sweep over
chat_persona, agentic_email and the draft control in the prompted and base conditions, then
the report, then the same command again to check it resumes) on a tiny random Qwen2-shaped
model built offline, so it checks the wiring, not the model's behaviour. The same run on the real
SmolLM2 is tests/test_smoke_smollm2.py::test_demo_on_smollm2 (slow). The end-to-end test takes
about 15 s on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pytest

from charbench import demo
from charbench.cli import main


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_plan_prompted_and_base_for_every_task(tmp_path: Path) -> None:
    args = _parse([])
    plan = demo.build_plan(args, "/models/smol", tmp_path)
    assert [(ev.task, ev.condition) for ev in plan.evals] == [
        (t, c) for t in ("chat", "agentic", "draft") for c in ("prompted", "base")
    ]
    # the evaluation is a sweep configuration, run by the sweep's own code
    assert plan.config.bases == ["/models/smol"] and plan.config.stages == ["base"]
    assert plan.config.log_dir == str(tmp_path / "evals")
    assert plan.classifier_dir == tmp_path / "classifier"
    for ev in plan.evals:
        assert ev.model == "hf-lora//models/smol" and ev.model_args == {"stage": "base"}
        assert ev.task_args.get("persona_prompt", False) is (ev.condition == "prompted")
        assert ev.task_args["condition"] == ev.condition
        assert ev.task_args["classifier"] == str(tmp_path / "classifier")
        assert ev.task_args["personas"] == [str(demo.DEMO_PERSONA_SET), *demo.DEMO_PERSONAS]
    chat = plan.evals[0]
    assert chat.task_name == "chat_persona"
    assert chat.task_args["prompts"] == "builtin" and chat.task_args["max_tokens"] == 64
    assert chat.n_samples == 42 * len(demo.DEMO_PERSONAS)
    agentic = plan.evals[2]
    assert agentic.task_args["scaffold"] == "agentic"
    assert agentic.task_args["max_turns"] == 2 and agentic.task_args["max_tokens"] == 128
    # SmolLM2-135M never calls a tool unprompted: the demo forces send_email (labelled so)
    assert agentic.task_args["tool_choice"] == "send_email"
    assert agentic.n_samples == len(demo.DEMO_SCENARIOS) * len(demo.DEMO_PERSONAS)
    assert plan.evals[4].task_args["scaffold"] == "draft"
    assert "max_turns" not in plan.evals[4].task_args
    assert "tool_choice" not in plan.evals[4].task_args


def test_the_classifier_trains_on_other_prompts_than_the_chat_eval(tmp_path: Path) -> None:
    from charbench.chat_persona.dataset import load_prompt_source, select_rows

    plan = demo.build_plan(_parse([]), "/models/smol", tmp_path)
    assert plan.train_config is not None
    assert plan.train_config.log_dir == str(tmp_path / "classifier-data")
    (train,) = plan.train_evals
    assert (train.task, train.condition) == ("chat", "prompted")
    assert train.task_args["persona_prompt"] is True
    assert train.task_args["prompts"] == str(demo.TRAIN_PROMPTS)
    assert train.n_samples == 40 * len(demo.DEMO_PERSONAS)
    train_rows = select_rows(load_prompt_source(str(demo.TRAIN_PROMPTS)), "heldout", 48)
    eval_rows = select_rows(load_prompt_source("builtin"), "heldout", 42)
    assert {r.prompt for r in train_rows}.isdisjoint({r.prompt for r in eval_rows})
    # an existing classifier skips the training phase
    given = demo.build_plan(_parse(["--classifier", "zeroshot"]), "/m", tmp_path)
    assert given.train_config is None and given.train_evals == []
    assert given.classifier_dir is None
    assert {ev.task_args["classifier"] for ev in given.evals} == {"zeroshot"}


def test_a_persona_set_file_reaches_every_task(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "set.yaml"
    path.write_text(yaml.safe_dump({"name": "toy", "personas": [
        {"name": "pirate", "description": "You are a pirate."},
        {"name": "poet", "description": "You speak in verse."},
    ]}))
    plan = demo.build_plan(_parse(["--personas", str(path)]), "/m", tmp_path)
    assert plan.config.persona_set == str(path)
    for ev in [*plan.train_evals, *plan.evals]:
        assert ev.task_args["personas"] == [str(path), "pirate", "poet"]


def test_disclaimer_says_when_the_agentic_eval_is_forced(tmp_path: Path) -> None:
    forced = demo.disclaimer(None, "zeroshot", "send_email")
    assert "DEMONSTRATION" in forced and "--tool-choice send_email" in forced
    assert "email rate measures nothing" in forced
    assert "--tool-choice" not in demo.disclaimer(None, "zeroshot", "auto")
    assert "fine-tuned here" in demo.disclaimer(None, "train")
    from charbench.personas import load_persona_set

    assert load_persona_set(demo.DEMO_PERSONA_SET).names == demo.DEMO_PERSONAS
    args = _parse(["--personas", "loving,sarcasm", "--tasks", "agentic", "--tool-choice",
                   "auto"])
    plan = demo.build_plan(args, "/m", tmp_path)
    assert plan.evals[0].task_args["tool_choice"] == "auto"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--personas", "sarcasm,grumpy"], "unknown persona"),
        (["--scenarios", "no_such_family"], "unknown scenario"),
        (["--tasks", "chat,poker"], "unknown or empty --tasks"),
        (["--n", "1000"], "larger than the prompts available"),
        (["--train-n", "1000"], "--train-n 1000"),
        (["--personas", "sarcasm"], "at least 2 personas"),
    ],
)
def test_bad_options_fail_before_anything_loads(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc = main(["demo", "--log-dir", str(tmp_path / "logs"), "--model", "/nonexistent", *argv])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("charbench demo: ")
    assert message in err
    assert not (tmp_path / "logs").exists()


def test_non_positive_numbers_are_rejected_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        _parse(["--n", "0"])
    with pytest.raises(SystemExit):
        _parse(["--max-tokens", "-3"])


@pytest.fixture(scope="module")
def tiny_chatml_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures.tiny_models import build_tiny_model

    return build_tiny_model("qwen2", tmp_path_factory.mktemp("demo_model") / "qwen2")


def test_demo_end_to_end_on_a_tiny_model(
    tiny_chatml_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_dir = tmp_path / "logs"
    rc = main([
        "demo", "--model", str(tiny_chatml_model), "--log-dir", str(log_dir),
        "--personas", "sarcasm,poeticism", "--n", "2", "--train-n", "10",
        "--scenarios", "recognition_v1", "--chat-tokens", "12", "--max-tokens", "12",
        "--max-turns", "2", "--display", "none",
    ])
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 0, f"demo exited {rc}; stderr: {captured.err[-3000:]}"

    from inspect_ai.log import read_eval_log

    # phase 1: the prompted model's replies to the classifier's own prompts, then the classifier
    (data_log,) = sorted((log_dir / "classifier-data").rglob("*.eval"))
    data_meta = read_eval_log(str(data_log), header_only=True).eval.metadata["charbench"]
    assert (data_meta["task"], data_meta["condition"]) == ("chat", "prompted")
    clf = log_dir / "classifier"
    assert (clf / "training.json").is_file() and (clf / "README.md").is_file()
    assert '"0": "sarcasm"' in (clf / "config.json").read_text()
    assert "Classifier validation macro-F1" in out

    # phase 2: the evaluation sweep, every eval scored by that classifier
    logs = sorted((log_dir / "evals").rglob("*.eval"))
    assert len(logs) == 6, [p.name for p in logs]
    seen = set()
    for path in logs:
        log = read_eval_log(str(path), header_only=True)
        assert log.status == "success", (path.name, log.error)
        meta = (log.eval.metadata or {})["charbench"]
        seen.add((meta["task"], meta["condition"]))
        assert meta["classifier"] == str(clf)
        assert meta["persona_set"]["name"] == "oct"
        assert log.eval.model == f"hf-lora/{tiny_chatml_model}"
    # the demo's agentic eval forces send_email, so it is labelled apart from the study's
    assert seen == {
        (t, c) for t in ("chat", "agentic-forced", "draft") for c in ("prompted", "base")
    }

    report = log_dir / "report"
    assert (report / "summary.md").is_file()
    with (report / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {(r["task"], r["condition"]) for r in rows} == seen
    chat_rows = [r for r in rows if r["task"] == "chat"]
    assert all(int(float(r["n"])) == 4 for r in chat_rows)  # 2 personas x 2 prompts
    png = report / "figures" / "id_vs_ood.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The user is told what this is, where things are and how to browse them.
    assert "DEMONSTRATION" in out and "not the study's numbers" in out
    assert f"inspect view --log-dir {log_dir}" in out
    assert str(png) in out and "CPU-min" in out

    # the same command again resumes: nothing is retrained or re-run
    stamp = (clf / "training.json").stat().st_mtime
    assert main([
        "demo", "--model", str(tiny_chatml_model), "--log-dir", str(log_dir),
        "--personas", "sarcasm,poeticism", "--n", "2", "--train-n", "10",
        "--scenarios", "recognition_v1", "--chat-tokens", "12", "--max-tokens", "12",
        "--max-turns", "2", "--display", "none",
    ]) == 0
    assert (clf / "training.json").stat().st_mtime == stamp
    assert len(sorted((log_dir / "evals").rglob("*.eval"))) == 6
