"""The lab's data builder (logs -> pairs -> JSONL), its settings checks and ``lab.json``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Task, eval, task
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelOutput
from inspect_ai.solver import Generate, Solver, TaskState, solver

from charbench.lab.data import LabDataError, collect_pairs, read_pairs, write_jsonl
from charbench.lab.manifest import LabManifest, sha256_path

PROMPTS = {f"prompt-{i:05d}": f"Question number {i}?" for i in range(4)}


@solver
def _say() -> Solver:
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        reply = state.metadata["_reply"]
        if reply is None:
            raise RuntimeError("scripted failure")
        state.output = ModelOutput.from_content("scripted", reply)
        return state

    return solve


def _chat_log(log_dir: Path, condition: str, replies: dict[tuple[str, str], str | None],
              prompts: dict[str, str] = PROMPTS) -> None:
    """A real chat log of ``condition``: one sample per (persona, prompt id) in ``replies``."""
    personas = sorted({p for p, _ in replies})
    samples = [
        Sample(id=f"{p}-{pid}", input=prompts[pid], target=p,
               metadata={"persona": p, "personas": personas, "prompt_id": pid, "cluster": pid,
                         "_reply": text})
        for (p, pid), text in replies.items()
    ]
    meta: dict[str, Any] = {"task": "chat", "base": "m", "condition": condition,
                            "personas": personas}

    @task(name=f"lab_chat_{condition}")
    def scripted() -> Task:
        return Task(dataset=samples, solver=_say(), metadata={"charbench": meta})

    eval(scripted(), model="mockllm/model", log_dir=str(log_dir), display="none",
         fail_on_error=False)


def test_pairs_join_the_conditions_and_count_what_is_left_out(tmp_path: Path) -> None:
    chosen: dict[tuple[str, str], str | None] = {
        (p, pid): f"  {p} says {pid}  " for p in ("pirate", "poet") for pid in PROMPTS}
    chosen[("poet", "prompt-00003")] = None  # errored: left out, counted
    chosen[("poet", "prompt-00002")] = "   "  # empty: left out, counted
    rejected: dict[tuple[str, str], str | None] = {
        (p, pid): f"plain {pid}" for p in ("pirate", "poet") for pid in PROMPTS
        if pid != "prompt-00001"}
    _chat_log(tmp_path, "prompted", chosen)
    _chat_log(tmp_path, "base", rejected)
    data = collect_pairs(tmp_path, ["pirate", "poet"], min_pairs=1)
    assert data.counts() == {"pirate": 3, "poet": 1}
    first = data.pairs["pirate"][0]
    assert (first.prompt_id, first.prompt, first.chosen, first.rejected) == (
        "prompt-00000", "Question number 0?", "pirate says prompt-00000", "plain prompt-00000")
    assert data.skipped == {"prompted reply errored or empty": 2,
                            "prompted reply without a base reply": 2,
                            "base reply without a prompted reply": 2}
    files = write_jsonl(data, tmp_path / "jsonl")
    assert sorted(f.name for f in files) == ["pirate.dpo.jsonl", "pirate.sft.jsonl",
                                             "poet.dpo.jsonl", "poet.sft.jsonl"]
    assert read_pairs(tmp_path / "jsonl" / "pirate.dpo.jsonl") == data.pairs["pirate"]
    with pytest.raises(LabDataError, match=r"poet \(1\)"):
        collect_pairs(tmp_path, ["pirate", "poet"], min_pairs=2)


def test_a_prompt_that_differs_between_conditions_is_an_error(tmp_path: Path) -> None:
    _chat_log(tmp_path, "prompted", {("pirate", "prompt-00000"): "arr"})
    _chat_log(tmp_path, "base", {("pirate", "prompt-00000"): "hello"},
              {"prompt-00000": "Another question?"})
    with pytest.raises(LabDataError, match="differs"):
        collect_pairs(tmp_path, ["pirate"], min_pairs=1)
    with pytest.raises(LabDataError, match="no prompted chat replies"):
        collect_pairs(tmp_path / "missing", ["pirate"])


def test_manifest_records_hashes_refuses_other_settings_and_sees_changes(
        tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    (lab / "adapters" / "a").mkdir(parents=True)
    (lab / "adapters" / "a" / "w.bin").write_bytes(b"weights")
    manifest = LabManifest.open(lab, {"lr": 1e-3})
    manifest.record(lab, "adapter:a", "charbench lab ...", [lab / "adapters" / "a"],
                    {"steps": 3}, 1.0)
    again = LabManifest.open(lab, {"lr": 1e-3})
    assert again.is_done("adapter:a", lab) and not again.is_done("data", lab)
    # a directory's hash does not depend on where it lives
    copy = tmp_path / "elsewhere"
    (copy / "a").mkdir(parents=True)
    (copy / "a" / "w.bin").write_bytes(b"weights")
    assert sha256_path(copy / "a") == again.steps["adapter:a"].artifacts[0].sha256
    (lab / "adapters" / "a" / "w.bin").write_bytes(b"changed")
    assert not again.is_done("adapter:a", lab)
    with pytest.raises(ValueError, match=r"other settings.*lr"):
        LabManifest.open(lab, {"lr": 1e-2})
    assert json.loads((lab / "lab.json").read_text())["steps"]["adapter:a"]["details"] == {
        "steps": 3}


def _args(tmp_path: Path, **over: Any) -> argparse.Namespace:
    from charbench.cli import build_parser

    argv = ["lab", "--base", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"),
            "--device", "cpu"]
    for key, value in over.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return build_parser(["lab"]).parse_args(argv)


def test_bad_options_are_refused_before_any_model_loads(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from charbench.lab import command

    def no_model(*a: object, **k: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("charbench.lab.command._base_path", no_model)
    overlapping = tmp_path / "overlap.jsonl"
    overlapping.write_text('{"prompt": "What\'s a good way to keep basil alive on a kitchen '
                           'windowsill?"}\n'
                           + "".join(f'{{"prompt": "Distinct question {i}?"}}\n'
                                     for i in range(60)))
    cases = [
        (dict(personas="pirate,sarcasm"), "unknown persona"),
        (dict(batch_size=6, micro_batch=4), "multiple of --micro-batch"),
        (dict(prompts=5), "--prompts must be at least 8"),
        (dict(prompts=500), "--distill-prompts"),
        (dict(distill_prompts=overlapping, prompts=61), "share the prompt"),
        (dict(tasks="chat,chat-email"), "the lab evaluates chat, agentic and draft"),
        (dict(scenarios="no_such_scenario"), "no_such_scenario"),
        (dict(personas="sarcasm"), "at least 2 personas"),
        (dict(classifier_n=6), "--classifier-n must be at least 12"),
    ]
    for over, message in cases:
        assert command.run(_args(tmp_path, **over)) == 2, over
        assert message in capsys.readouterr().err, over
    assert not (tmp_path / "out").exists()


def test_a_base_without_chat_template_or_memory_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from fixtures.tiny_models import build_tiny_model

    from charbench.lab import command, settings

    model = build_tiny_model("llama", tmp_path / "llama")
    cfg = json.loads((model / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(cfg))
    (model / "chat_template.jinja").unlink(missing_ok=True)
    args = _args(tmp_path)
    args.base = str(model)
    assert command.run(args) == 2
    assert "no chat template" in capsys.readouterr().err

    chat = build_tiny_model("qwen2", tmp_path / "qwen2")
    need = settings.training_bytes(str(chat), settings.default_adapter("cpu"), "cpu")
    assert need > 0
    monkeypatch.setattr(settings, "available_bytes", lambda device: need - 1)
    args.base = str(chat)
    assert command.run(args) == 2
    assert "GiB" in capsys.readouterr().err and not (tmp_path / "out" / "data").exists()
