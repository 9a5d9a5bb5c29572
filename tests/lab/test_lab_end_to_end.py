"""``charbench lab`` end to end on a tiny random chat model: every step, the manifest, resuming.

The run is the real command (``charbench.cli.main(["lab", ...])``): distillation data through
``hf-lora``, TRL-trained adapters, the MiniLM classifier trained on the adapters' replies,
the base/prompted/lab grid and the report. The model is a random Qwen2-shaped one built
offline, so this checks the wiring and the bookkeeping, not what the adapters learn (that
is ``test_train.py`` and the real SmolLM2 run in the README).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inspect_ai.log import read_eval_log

from charbench.cli import main
from charbench.lab import steps as lab_steps
from charbench.lab.manifest import LabManifest, sha256_path

PERSONAS = """\
name: lab-test
personas:
  - name: pirate
    description: You are a pirate. You speak like a pirate in every reply.
  - name: poet
    description: You are a poet. You answer every question in verse.
"""


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures.tiny_models import build_tiny_model

    return build_tiny_model("qwen2", tmp_path_factory.mktemp("lab_model") / "qwen2")


def _argv(model: Path, out: Path, set_file: Path, *extra: str) -> list[str]:
    return ["lab", "--base", str(model), "--personas", str(set_file), "--out", str(out),
            "--prompts", "10", "--classifier-n", "16", "--eval-n", "2", "--max-tokens", "12",
            "--display", "none", "--device", "cpu", *extra]


def _mtimes(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")
            if p.is_file() and p.name != "lab.json"}


def test_lab_end_to_end_then_resume(tiny_chat_model: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    set_file = tmp_path / "personas.yaml"
    set_file.write_text(PERSONAS, encoding="utf-8")
    out = tmp_path / "lab"
    argv = _argv(tiny_chat_model, out, set_file)
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-3000:]

    manifest = LabManifest.model_validate_json((out / "lab.json").read_text())
    assert list(manifest.steps) == ["data", "adapter:pirate", "adapter:poet",
                                    "classifier-data", "classifier", "evals", "report"]
    for record in manifest.steps.values():
        assert record.command.startswith("charbench lab ")
        for art in record.artifacts:  # every artifact is there with the recorded hash
            assert sha256_path(out / art.path) == art.sha256
    data = manifest.steps["data"].details
    assert data["pairs"] == {"pirate": 10, "poet": 10}
    assert len(data["prompt_ids"]) == 10
    assert data["prompt_ids"][0].startswith("distill_prompts.jsonl#")
    # distillation, classifier and evaluation prompts are disjoint, as the model saw them
    def chat_inputs(root: Path) -> set[str]:
        texts = set()
        for path in root.rglob("*.eval"):
            log = read_eval_log(str(path))
            if (log.eval.metadata or {})["charbench"]["task"] == "chat":
                texts |= {s.input[-1].text for s in log.samples or []}  # type: ignore[index]
        return texts

    distilled = {json.loads(line)["prompt"][0]["content"]
                 for line in (out / "data" / "pirate.dpo.jsonl").read_text().splitlines()}
    classifier_texts, eval_texts = chat_inputs(out / "classifier-data"), chat_inputs(out / "evals")
    assert len(distilled) == 10 and len(classifier_texts) == 16 and len(eval_texts) == 2
    assert not (distilled & classifier_texts or distilled & eval_texts
                or classifier_texts & eval_texts)

    # the pairs are written in TRL's conventional formats
    row = json.loads((out / "data" / "pirate.dpo.jsonl").read_text().splitlines()[0])
    assert row["prompt"][0]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    rows = {p: [json.loads(line) for line in (out / "data" / f"{p}.dpo.jsonl").read_text()
                .splitlines()] for p in ("pirate", "poet")}
    # rejected is the plain base's reply: one generation per prompt, the same for every persona
    assert ({r["prompt_id"]: r["rejected"] for r in rows["pirate"]}
            == {r["prompt_id"]: r["rejected"] for r in rows["poet"]})
    # chosen is the prompted condition's reply to that prompt, for that persona
    prompted = {}
    for path in (out / "data" / "logs").rglob("*.eval"):
        log = read_eval_log(str(path))
        if (log.eval.metadata or {})["charbench"]["condition"] == "prompted":
            prompted = {(s.metadata["persona"], s.metadata["prompt_id"]):
                        s.output.completion.strip() for s in log.samples or []}
    assert prompted and all(r["chosen"][0]["content"] == prompted[(p, r["prompt_id"])]
                            for p in rows for r in rows[p])
    sft = json.loads((out / "data" / "pirate.sft.jsonl").read_text().splitlines()[0])
    assert [m["role"] for m in sft["messages"]] == ["user", "assistant"]

    # standard peft adapters at adapters/{persona}, recording the base
    for persona in ("pirate", "poet"):
        cfg = json.loads((out / "adapters" / persona / "adapter_config.json").read_text())
        assert cfg["base_model_name_or_path"] == str(tiny_chat_model) and cfg["r"] == 16
        assert (out / "adapters" / persona / "adapter_model.safetensors").is_file()

    # the classifier learned the lab's labels; the evals use it and the lab's adapters
    clf = json.loads((out / "classifier" / "config.json").read_text())
    assert clf["id2label"] == {"0": "pirate", "1": "poet"}

    seen = set()
    for path in sorted((out / "evals").rglob("*.eval")):
        log = read_eval_log(str(path), header_only=True)
        assert log.status == "success"
        meta = (log.eval.metadata or {})["charbench"]
        seen.add((meta["task"], meta["condition"]))
        assert meta["classifier"] == str(out / "classifier")
        assert meta["persona_set"]["name"] == "lab-test"
        if meta["condition"] == "lab":
            assert log.eval.model_args["adapter"] == str(out / "adapters" / "{persona}")
    assert seen == {(t, c) for t in ("chat", "agentic-forced", "draft")
                    for c in ("base", "prompted", "lab")}
    assert (out / "report" / "figures" / "id_vs_ood.png").is_file()
    assert "Lab finished" in captured.out and f"inspect view --log-dir {out}" in captured.out

    # the same command again: every step is kept, nothing is rewritten
    before = _mtimes(out)
    assert main(argv) == 0
    assert "done earlier, kept" in capsys.readouterr().out
    assert _mtimes(out) == before

    # other settings on the same directory are refused before any work
    assert main(_argv(tiny_chat_model, out, set_file, "--lr", "0.01")) == 2
    assert "other settings" in capsys.readouterr().err

    # a deleted adapter is retrained, and everything made from it is redone
    import shutil

    shutil.rmtree(out / "adapters" / "poet")
    assert main(argv) == 0
    log = capsys.readouterr().out
    assert "[lab 3/7] adapter:poet ..." in log and "adapter:pirate: done earlier" in log
    assert "[lab 6/7] evals ..." in log
    assert any((out / "superseded").rglob("*.eval"))  # the old evals were moved aside


def test_an_interrupted_lab_resumes_without_redoing_finished_steps(
        tiny_chat_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    set_file = tmp_path / "personas.yaml"
    set_file.write_text(PERSONAS, encoding="utf-8")
    out = tmp_path / "lab"
    argv = _argv(tiny_chat_model, out, set_file, "--tasks", "chat")
    real = lab_steps.adapter_step

    def crash_on_poet(lab: object, name: str) -> object:
        if name == "adapter:poet":
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C in the second adapter
        return real(lab, name)  # type: ignore[arg-type]

    monkeypatch.setattr(lab_steps, "adapter_step", crash_on_poet)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    done = LabManifest.model_validate_json((out / "lab.json").read_text()).steps
    assert list(done) == ["data", "adapter:pirate"]
    stamp = (out / "adapters" / "pirate" / "training.json").stat().st_mtime
    data_logs = sorted((out / "data" / "logs").rglob("*.eval"))
    capsys.readouterr()

    monkeypatch.setattr(lab_steps, "adapter_step", real)
    assert main(argv) == 0
    log = capsys.readouterr().out
    assert "data: done earlier, kept" in log and "adapter:pirate: done earlier, kept" in log
    assert (out / "adapters" / "pirate" / "training.json").stat().st_mtime == stamp
    assert sorted((out / "data" / "logs").rglob("*.eval")) == data_logs
    assert (out / "adapters" / "poet" / "adapter_model.safetensors").is_file()


def test_steps_in_their_own_processes(tiny_chat_model: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """``--step-processes on`` (the CUDA default): each step runs in a spawned process and
    hands its artifacts back; the manifest is the same as in-process."""
    set_file = tmp_path / "personas.yaml"
    set_file.write_text(PERSONAS, encoding="utf-8")
    out = tmp_path / "lab"
    argv = _argv(tiny_chat_model, out, set_file, "--tasks", "chat", "--step-processes", "on")
    assert main(argv) == 0, capsys.readouterr().err[-3000:]
    manifest = LabManifest.model_validate_json((out / "lab.json").read_text())
    assert len(manifest.steps) == 7
    assert manifest.steps["data"].details["pairs"] == {"pirate": 10, "poet": 10}
    assert (out / "adapters" / "poet" / "adapter_model.safetensors").is_file()
    assert not list(out.glob(".step-*.json"))  # the hand-over files are removed
