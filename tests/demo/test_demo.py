"""``charbench demo``: option validation, the plan, and the whole machinery end to end.

The end-to-end test runs the real demo code path (``charbench.cli.main(["demo", ...])``:
eval_set over chat_persona, agentic_email and the draft control, prompted and base
conditions, the zero-shot classifier, then the report) on a tiny random Qwen2-shaped model
built offline, so it checks the wiring, not the model's behaviour. The same run on the real
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


def test_defaults_plan_prompted_and_base_for_every_task() -> None:
    args = _parse([])
    plan = demo.build_plan(
        args.personas, args.n, args.scenarios, args.tasks, args.max_turns, args.classifier
    )
    assert [(ev.task, ev.condition) for ev in plan] == [
        (t, c) for t in ("chat", "agentic", "draft") for c in ("prompted", "base")
    ]
    for ev in plan:
        assert ev.task_args["persona_prompt"] is (ev.condition == "prompted")
        assert ev.task_args["condition"] == ev.condition
        assert ev.task_args["classifier"] == "zeroshot"
        assert ev.task_args["personas"] == list(demo.DEMO_PERSONAS)
    chat = plan[0]
    assert chat.task_name == "chat_persona"
    assert chat.task_args["prompts"] == "builtin"
    assert chat.n_samples == 3 * len(demo.DEMO_PERSONAS)
    agentic = plan[2]
    assert agentic.task_args["scaffold"] == "agentic"
    assert agentic.task_args["max_turns"] == 2
    # SmolLM2-135M never calls a tool unprompted: the demo forces send_email (labelled so)
    assert agentic.task_args["tool_choice"] == "send_email"
    assert agentic.n_samples == len(demo.DEMO_SCENARIOS) * len(demo.DEMO_PERSONAS)
    assert plan[4].task_args["scaffold"] == "draft"
    assert "max_turns" not in plan[4].task_args
    assert "tool_choice" not in plan[4].task_args


def test_disclaimer_says_when_the_agentic_eval_is_forced() -> None:
    forced = demo.disclaimer(None, "zeroshot", "send_email")
    assert "DEMONSTRATION" in forced and "--tool-choice send_email" in forced
    assert "email rate measures nothing" in forced
    assert "--tool-choice" not in demo.disclaimer(None, "zeroshot", "auto")
    plan = demo.build_plan(["loving"], 1, ["recognition_v1"], ["agentic"], 2, "zeroshot",
                           "auto")
    assert plan[0].task_args["tool_choice"] == "auto"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--personas", "sarcasm,grumpy"], "unknown persona"),
        (["--scenarios", "no_such_family"], "unknown scenario"),
        (["--tasks", "chat,poker"], "unknown or empty --tasks"),
        (["--n", "1000"], "larger than the prompts available"),
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
        "--personas", "sarcasm,poeticism", "--n", "2", "--scenarios", "recognition_v1",
        "--max-tokens", "12", "--max-turns", "2", "--display", "none",
    ])
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 0, f"demo exited {rc}; stderr: {captured.err[-3000:]}"

    logs = sorted(log_dir.glob("*.eval"))
    assert len(logs) == 6, [p.name for p in logs]
    from inspect_ai.log import read_eval_log

    seen = set()
    for path in logs:
        log = read_eval_log(str(path), header_only=True)
        assert log.status == "success", (path.name, log.error)
        meta = (log.eval.metadata or {})["charbench"]
        seen.add((meta["task"], meta["condition"]))
        assert meta["classifier"] == "zeroshot"
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
    assert str(png) in out
