"""charbench sweep: the grid it builds, --dry-run, argument errors."""

from __future__ import annotations

import itertools

import pytest

from charbench import cli, sweep
from charbench.personas import DEFAULT_PERSONAS


def _cfg(argv: list[str]) -> sweep.SweepConfig:
    parser = cli.build_parser(with_demo=False)
    args = parser.parse_args(["sweep", *argv])
    cfg = cli.sweep_config(args)
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


def test_child_argv_replaces_bases() -> None:
    argv = ["--bases", "llama,qwen", "--n", "3", "--tasks=chat"]
    assert cli._argv_for_base(argv, "qwen") == ["--n", "3", "--tasks=chat", "--bases", "qwen"]
    assert cli._argv_for_base(["--bases=llama,qwen"], "x") == ["--bases", "x"]
