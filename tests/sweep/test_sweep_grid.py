"""charbench sweep: the grid it builds, --dry-run, argument errors."""

from __future__ import annotations

import itertools

import pytest

from charbench import cli, sweep
from charbench.cli import sweep as sweep_cli
from charbench.personas import DEFAULT_PERSONAS


def _cfg(argv: list[str]) -> sweep.SweepConfig:
    parser = cli.build_parser(["sweep"])
    args = parser.parse_args(["sweep", *argv])
    cfg = sweep_cli.sweep_config(args)
    assert isinstance(cfg, sweep.SweepConfig)
    return cfg


def test_grid_is_exactly_the_product_asked_for() -> None:
    cfg = _cfg(
        [
            "--bases",
            "llama,qwen",
            "--stages",
            "base,full",
            "--adapter",
            "mine=/ckpt/{persona}",
            "--tasks",
            "chat,agentic,draft",
            "--personas",
            "sarcasm,humor",
            "--n",
            "7",
        ]
    )
    grid = sweep.build_grid(cfg)
    got = [(ev.base, ev.condition, ev.task) for ev in grid]
    want = list(
        itertools.product(
            ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct"],
            ["base", "full", "mine"],
            ["chat", "agentic", "draft"],
        )
    )
    assert got == want  # ordered by base, then condition, then task
    by = {(ev.base.split("/")[0], ev.condition, ev.task): ev for ev in grid}
    chat = by[("meta-llama", "full", "chat")]
    assert chat.model == "hf-lora/meta-llama/Llama-3.1-8B-Instruct"
    assert chat.model_args == {"stage": "full"}
    assert chat.task_name == "chat_persona"
    assert chat.task_args == {
        "base": "meta-llama/Llama-3.1-8B-Instruct",
        "personas": ["sarcasm", "humor"],
        "condition": "full",
        "n": 7,
        "selection": "heldout",
    }
    assert chat.n_samples == 14
    mine = by[("Qwen", "mine", "draft")]
    assert mine.model_args == {"adapter": "/ckpt/{persona}"}
    assert mine.task_name == "agentic_email" and mine.task_args["scaffold"] == "draft"
    from charbench.agentic_email.scenarios import load_scenarios

    assert mine.n_samples == 2 * len(load_scenarios())
    assert [g[0].base for g in sweep.group_by_base(grid)] == [
        "meta-llama/Llama-3.1-8B-Instruct",
        "Qwen/Qwen2.5-7B-Instruct",
    ]


def test_vllm_grid_uses_served_adapter_names() -> None:
    cfg = _cfg(
        [
            "--bases",
            "gemma",
            "--stages",
            "base,distillation",
            "--adapter",
            "mine=mine-{persona}",
            "--tasks",
            "chat-email",
            "--model-provider",
            "vllm",
            "--base-url",
            "http://127.0.0.1:8000/v1",
        ]
    )
    grid = sweep.build_grid(cfg)
    assert [ev.model for ev in grid] == [
        "vllm/google/gemma-3-4b-it",
        "vllm/google/gemma-3-4b-it:distillation-{persona}",
        "vllm/google/gemma-3-4b-it:mine-{persona}",
    ]
    assert grid[0].task_args["scaffold"] == "chat"
    assert grid[0].task_args["personas"] == list(DEFAULT_PERSONAS)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stages", "fancy"], "unknown stage"),
        (["--tasks", "chat,email"], "unknown or empty --tasks"),
        (["--adapter", "nameonly"], "NAME=TEMPLATE"),
        (["--adapter", "full=/x/{persona}"], "stage name"),
        (["--bases", "org/custom", "--stages", "full"], "not a released base"),
        (["--stages", "", "--tasks", "chat"], "nothing to run"),
        (["--model-provider", "vllm", "--stages", "full"], "running vLLM server"),
        (
            [
                "--model-provider",
                "vllm",
                "--base-url",
                "http://127.0.0.1:1/v1",
                "--adapter",
                "m=/path/{persona}",
            ],
            "without '/'",
        ),
        (["--bases", "llama,llama"], "more than once"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_BASE_URL", raising=False)
    with pytest.raises(ValueError, match=message):
        sweep.build_grid(_cfg(argv))


def test_dry_run_prints_the_grid_and_loads_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import inspect_ai

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("dry run must not run or load anything")

    monkeypatch.setattr(inspect_ai, "eval_set", boom)
    monkeypatch.setattr("inspect_ai.model.get_model", boom)
    monkeypatch.setenv("COLUMNS", "250")
    rc = cli.main(
        [
            "sweep",
            "--dry-run",
            "--bases",
            "llama,/models/Mine-7B",
            "--stages",
            "base",
            "--adapter",
            "ours=/ck/{persona}",
            "--tasks",
            "chat,agentic",
            "--personas",
            "sarcasm,poeticism",
            "--n",
            "3",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "8 evals" in out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert len(rows) == 8
    assert sum("hf-lora/meta-llama/Llama-3.1-8B-Instruct" in r for r in rows) == 4
    assert sum("hf-lora//models/Mine-7B" in r for r in rows) == 4
    assert sum("adapter=/ck/{persona}" in r for r in rows) == 4
    assert sum("stage=base" in r for r in rows) == 4
    import re

    chat_rows = [r for r in rows if "chat_persona" in r]
    assert len(chat_rows) == 4
    assert all(re.search(r"│\s*6\s*│\s*$", r) for r in chat_rows)  # 3 prompts x 2 personas


def test_child_config_round_trips_through_json() -> None:
    import dataclasses
    import json

    cfg = _cfg(["--bases", "llama,/m/x", "--stages", "base", "--adapter", "a=/p/{persona}",
                "-M", "dtype=bfloat16", "--seed", "3", "--scenarios", "recognition,budget_overreach_v2"])
    back = sweep.SweepConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert back == cfg
    assert sweep.build_grid(back) == sweep.build_grid(cfg)


def test_every_task_gets_its_base_and_condition_explicitly() -> None:
    grid = sweep.build_grid(_cfg(["--bases", "qwen,/m/x", "--stages", "base", "--adapter",
                                  "a=/p/{persona}", "--classifier", "zeroshot"]))
    for ev in grid:
        assert ev.task_args["base"] == ev.base
        assert ev.task_args["condition"] == ev.condition


def test_suite_goes_to_agentic_and_draft_only_and_both_runs_each() -> None:
    grid = sweep.build_grid(_cfg(["--bases", "llama", "--stages", "base", "--tasks",
                                  "chat,agentic,draft,chat-email", "--suite", "both"]))
    suites = sorted((ev.task, ev.task_args.get("suite", "-")) for ev in grid)
    assert suites == [
        ("agentic", "charbench"), ("agentic", "dct"), ("chat", "-"), ("chat-email", "-"),
        ("draft", "charbench"), ("draft", "dct"),
    ]
    dct = [ev for ev in grid if ev.task_args.get("suite") == "dct"]
    assert all(ev.n_samples is None for ev in dct)  # the study's files are read at run time
    plain = sweep.build_grid(_cfg(["--bases", "llama", "--stages", "base"]))
    assert all("suite" not in ev.task_args for ev in plain)


def test_reproduce_is_the_published_grid(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import inspect_ai

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("dry run must not run or load anything")

    monkeypatch.setattr(inspect_ai, "eval_set", boom)
    cfg = _cfg(["--reproduce"])
    grid = sweep.build_grid(cfg)
    assert len(grid) == 27
    assert {sweep.base_dir_name(ev.base) for ev in grid} == {"llama", "qwen", "gemma"}
    assert {ev.condition for ev in grid} == {"base", "distillation", "full"}
    assert sorted({ev.task for ev in grid}) == ["agentic", "chat", "draft"]
    assert cfg.personas == list(DEFAULT_PERSONAS) and len(cfg.personas) == 10
    assert cfg.generate == {"seed": 0}
    for ev in grid:
        assert ev.model_args["bos"] == "vllm"
        assert "classifier" not in ev.task_args  # the released classifier of each base
        assert "restrict_to_evaluated" not in ev.task_args
        if ev.task == "chat":
            assert (ev.task_args["selection"], ev.task_args["n"]) == ("dct", 300)
            assert "suffix" not in ev.task_args and "prompts" not in ev.task_args
        else:
            assert ev.task_args["suite"] == "dct"
    monkeypatch.setenv("COLUMNS", "250")
    assert cli.main(["sweep", "--reproduce", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "27 evals" in out and out.count("bos=vllm") == 27 and out.count("suite=dct") == 18


@pytest.mark.parametrize("extra", [["--n", "50"], ["--suite", "charbench"], ["--seed", "1"],
                                   ["--bases", "llama"], ["--classifier", "zeroshot"]])
def test_reproduce_refuses_grid_options(extra: list[str]) -> None:
    with pytest.raises(ValueError, match=r"--reproduce runs the published grid exactly; drop --"):
        _cfg(["--reproduce", *extra])


def test_reproduce_keeps_run_options_and_vllm_gets_no_bos() -> None:
    cfg = _cfg(["--reproduce", "--log-dir", "out", "--max-connections", "8",
                "--model-provider", "vllm", "--base-url", "http://127.0.0.1:1/v1"])
    assert cfg.log_dir == "out" and cfg.generate == {"max_connections": 8, "seed": 0}
    assert all("bos" not in ev.model_args for ev in sweep.build_grid(cfg))


def test_log_dir_allow_dirty_is_accepted_and_passed_to_eval_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    import inspect_ai
    import inspect_ai.model

    seen: dict[str, object] = {}

    def fake_eval_set(tasks: object, **kwargs: object) -> tuple[bool, list[object]]:
        seen.update(kwargs)
        return True, []

    monkeypatch.setattr(inspect_ai, "eval_set", fake_eval_set)
    monkeypatch.setattr(inspect_ai.model, "get_model", lambda *a, **k: object())
    monkeypatch.setattr(sweep, "make_task", lambda ev, model, fn=None: ev)
    rc = cli.main(["sweep", "--bases", "/m/x", "--stages", "base", "--tasks", "chat",
                   "--classifier", "zeroshot", "--log-dir", str(tmp_path),
                   "--log-dir-allow-dirty"])
    assert rc == 0 and seen["log_dir_allow_dirty"] is True


def test_dirty_log_dir_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    import inspect_ai
    import inspect_ai.model

    from charbench._inspect import PrerequisiteError

    def refuse(tasks: object, **kwargs: object) -> None:
        raise PrerequisiteError(
            "[bold]ERROR[/bold]: Existing log file 'x.eval' in log_dir is not associated with a "
            "task passed to eval_set. You can use the `--log-dir-allow-dirty` option to allow "
            "logs from other eval sets to be present in the log directory."
        )

    monkeypatch.setattr(inspect_ai, "eval_set", refuse)
    monkeypatch.setattr(inspect_ai.model, "get_model", lambda *a, **k: object())
    monkeypatch.setattr(sweep, "make_task", lambda ev, model, fn=None: ev)
    argv = ["sweep", "--bases", "/m/x", "--stages", "base", "--tasks", "chat",
            "--classifier", "zeroshot", "--log-dir", str(tmp_path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "x.eval" in err and "rerun with --log-dir-allow-dirty" in err
    assert "[bold]" not in err
