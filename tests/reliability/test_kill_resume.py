"""Kill and resume: an eval SIGKILLed mid-run and resumed loses nothing and redoes nothing.

The eval runs in a child process through the real ``inspect eval`` CLI on
``charbench/chat_persona`` with the deterministic ``reliab/{persona}`` test model (one model per
persona, like adapters), which records every generate call in a side file and sleeps so the
run can be caught in the middle. After some samples are in the log the child's whole process
group gets SIGKILL; ``inspect eval-retry`` (again a child process) resumes it. The resumed log
must hold every sample exactly once, the samples that had finished before the kill must not
have been generated again, and outputs, scores and every metric must equal those of an
uninterrupted run with the same seed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import eval
from inspect_ai.log import EvalLog, list_eval_logs, read_eval_log
from reliab_support import PYTHON, REPO, read_calls, subprocess_env

pytestmark = pytest.mark.slow  # three child processes that import torch and Inspect

PERSONAS = ["sarcasm", "humor", "poeticism"]
N_PROMPTS = 12
N_SAMPLES = len(PERSONAS) * N_PROMPTS
KILL_AFTER = 9  # samples in the log before the kill
CLI = "import reliab_support; from inspect_ai._cli.main import main; main()"
KILLS_SURVIVED: list[str] = []


def _eval_argv(log_dir: Path, calls: Path, clf: Path, sleep: float) -> list[str]:
    return [
        PYTHON, "-c", CLI, "eval", "charbench/chat_persona",
        "--model", "reliab/{persona}",
        "-M", f"calls_file={calls}", "-M", f"sleep={sleep}",
        "-T", "personas=" + ",".join(PERSONAS), "-T", "prompts=builtin",
        "-T", f"n={N_PROMPTS}", "-T", f"classifier={clf}", "-T", "restrict_to_evaluated=true",
        "--seed", "0", "--max-connections", "3", "--log-buffer", "1",
        "--log-dir", str(log_dir), "--display", "plain",
    ]


def _finished_in_log(path: Path) -> set[str]:
    """Sample ids whose records are in the (possibly partial) .eval zip on disk."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, FileNotFoundError, OSError):
        return set()
    return {n.removeprefix("samples/").rsplit("_epoch_", 1)[0]
            for n in names if n.startswith("samples/") and n.endswith(".json")}


def _wait_for_samples(proc: subprocess.Popen[bytes], console: Path, log_dir: Path, k: int,
                      timeout: float = 300.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = console.read_text()[-4000:]
            raise AssertionError(f"eval ended (rc {proc.returncode}) before the kill:\n{out}")
        for path in log_dir.glob("*.eval"):
            if len(_finished_in_log(path)) >= k:
                return path
        time.sleep(0.1)
    raise AssertionError(f"no {k} finished samples in {log_dir} after {timeout} s")


def _sigkill(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _run(argv: list[str], env: dict[str, str], timeout: float = 400.0) -> None:
    res = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, timeout=timeout)
    assert res.returncode == 0, res.stdout.decode()[-4000:] + res.stderr.decode()[-4000:]


def _single_log(log_dir: Path, status: str = "success") -> EvalLog:
    logs = [read_eval_log(i) for i in list_eval_logs(str(log_dir))]
    done = [log for log in logs if log.status == status]
    assert len(done) == 1, [(log.location, log.status) for log in logs]
    return done[0]


def _metrics(log: EvalLog) -> dict[str, Any]:
    assert log.results is not None
    return {f"{s.name}/{k}": v.value for s in log.results.scores for k, v in s.metrics.items()}


def _by_sample(log: EvalLog) -> dict[str, tuple[str, Any, Any]]:
    out = {}
    for s in log.samples or []:
        score = next(iter((s.scores or {}).values()))
        out[str(s.id)] = (s.output.completion, score.value, (score.metadata or {}).get("pred"))
    return out


def test_eval_killed_mid_run_resumes_without_loss_or_regeneration(
    tiny_clf: Path, tmp_path: Path
) -> None:
    env = subprocess_env()
    # 1. the uninterrupted reference run (in this process: one child fewer to start)
    [ref] = eval(
        "charbench/chat_persona",
        model="reliab/{persona}",
        task_args={"personas": PERSONAS, "prompts": "builtin", "n": N_PROMPTS,
                   "classifier": str(tiny_clf), "restrict_to_evaluated": True},
        seed=0, max_connections=3, log_dir=str(tmp_path / "ref"), display="none",
    )
    assert ref.status == "success", ref.error
    assert len(ref.samples or []) == N_SAMPLES

    # 2. the same eval, SIGKILLed once KILL_AFTER samples are in its log
    log_dir, calls = tmp_path / "killed", tmp_path / "calls.jsonl"
    console = tmp_path / "console.txt"
    with console.open("wb") as sink:
        proc = subprocess.Popen(_eval_argv(log_dir, calls, tiny_clf, 0.4), cwd=REPO, env=env,
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        killed_log = _wait_for_samples(proc, console, log_dir, KILL_AFTER)
    finally:
        if proc.poll() is None:
            _sigkill(proc)
    finished = _finished_in_log(killed_log)
    assert KILL_AFTER <= len(finished) < N_SAMPLES
    assert read_eval_log(str(killed_log), header_only=True).status == "started"
    before = read_calls(calls)
    assert {c["sample"] for c in before} >= finished

    # 3. resume with `inspect eval-retry`
    _run([PYTHON, "-c", CLI, "eval-retry", str(killed_log), "--log-dir", str(log_dir),
          "--max-connections", "3", "--display", "plain"], env)
    resumed = _single_log(log_dir)
    ids = [str(s.id) for s in resumed.samples or []]
    assert len(ids) == N_SAMPLES and len(set(ids)) == N_SAMPLES, "a sample lost or duplicated"
    after = read_calls(calls)[len(before):]
    regenerated = finished & {c["sample"] for c in after}
    assert not regenerated, f"finished samples generated again: {sorted(regenerated)}"
    # the resumed run generated each sample at most once, only samples not in the log file;
    # a sample that finished after the last write to the file is recovered from Inspect's
    # sample buffer instead of generated again, so every sample was generated in one run
    again = [c["sample"] for c in after]
    assert len(again) == len(set(again)) and set(again) <= set(ids) - finished
    assert set(ids) <= {c["sample"] for c in before} | set(again)

    # 4. same outputs, scores and metrics as the uninterrupted run
    assert _by_sample(resumed) == _by_sample(ref)
    assert _metrics(resumed) == _metrics(ref)
    KILLS_SURVIVED.append("eval")
    print(json.dumps({"kill": "eval", "finished_before_kill": len(finished),
                      "generated_before_kill": len(before), "regenerated": 0,
                      "samples_lost": 0, "samples": N_SAMPLES}))


# ------------------------------------------------------------------------------- sweep

SWEEP_PERSONAS = "sarcasm,humor"
SWEEP_N = 8


def _sweep_argv(base: Path, repo: Path, clf: Path, log_dir: Path) -> list[str]:
    return [
        PYTHON, "-m", "charbench.cli", "sweep", "--bases", str(base), "--stages", "base",
        "--adapter", f"one={repo}/{{persona}}", "--adapter", f"two={repo}/{{persona}}",
        "--tasks", "chat", "--personas", SWEEP_PERSONAS, "--n", str(SWEEP_N),
        "--prompts", "builtin", "--classifier", str(clf), "--restrict-to-evaluated",
        "--log-dir", str(log_dir), "--max-tokens", "96", "--max-connections", "1",
        "--seed", "0", "-M", "device=cpu",
    ]


def _headers(log_dir: Path) -> dict[str, tuple[str, str]]:
    """condition -> (status, path) of every readable log under ``log_dir``."""
    out = {}
    for path in log_dir.rglob("*.eval"):
        try:
            head = read_eval_log(str(path), header_only=True)
        except Exception:  # a log being written right now
            continue
        cond = head.eval.metadata["charbench"]["condition"] if head.eval.metadata else "?"
        if out.get(cond, ("", ""))[0] != "success":
            out[cond] = (head.status, str(path))
    return out


def test_sweep_killed_mid_run_resumes_reusing_finished_work(
    tiny_llama: Path, persona_repo: Path, tiny_clf: Path, tmp_path: Path
) -> None:
    log_dir = tmp_path / "sweep"
    argv = _sweep_argv(tiny_llama, persona_repo, tiny_clf, log_dir)
    env = subprocess_env()
    console = tmp_path / "sweep_console.txt"
    with console.open("wb") as sink:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 400
    try:
        while True:
            assert time.monotonic() < deadline, "sweep made no progress"
            assert proc.poll() is None, "sweep ended before the kill:\n" + console.read_text()[-3000:]
            heads = _headers(log_dir)
            done = [c for c, (st, _) in heads.items() if st == "success"]
            if done:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            _sigkill(proc)
    heads = _headers(log_dir)
    finished = {c: (p, Path(p).stat().st_mtime_ns) for c, (st, p) in heads.items()
                if st == "success"}
    unfinished = {c: p for c, (st, p) in heads.items() if st != "success"}
    assert len(finished) < 3, "the sweep finished before it could be killed"
    partial = {c: {str(s.id): s.uuid for s in read_eval_log(p).samples or []}
               for c, p in unfinished.items()}

    # rerun the identical command: it must complete the grid, reusing what finished
    _run(argv, env, timeout=600)
    final = _headers(log_dir)
    assert sorted(final) == ["base", "one", "two"]
    assert all(st == "success" for st, _ in final.values()), final
    for cond, (path, mtime) in finished.items():
        assert final[cond][1] == path and Path(path).stat().st_mtime_ns == mtime, cond
    n = SWEEP_N * len(SWEEP_PERSONAS.split(","))
    reused = 0
    for cond, (_, path) in final.items():
        samples = read_eval_log(path).samples or []
        ids = [str(s.id) for s in samples]
        assert len(ids) == n and len(set(ids)) == n, (cond, ids)
        for s in samples:  # samples that had finished before the kill were not redone
            if str(s.id) in partial.get(cond, {}):
                assert s.uuid == partial[cond][str(s.id)], (cond, s.id)
                reused += 1
    KILLS_SURVIVED.append("sweep")
    print(json.dumps({"kill": "sweep", "evals_finished_before_kill": len(finished),
                      "samples_reused_from_partial_evals": reused, "samples_lost": 0}))


# ------------------------------------------------------- shared generations across a kill

SHARED_PERSONAS = ["sarcasm", "humor", "poeticism"]
SHARED_N = 10
SWEEP_CHILD = """
import json, sys
import reliab_support  # registers reliab/<name>
from charbench import sweep
args = json.loads(sys.argv[1])
cfg = sweep.SweepConfig(bases=["org/tiny"], stages=[], tasks=["chat"],
                        personas=args["personas"], log_dir=args["log_dir"],
                        generate={"seed": 0, "max_connections": 2, "log_buffer": 1000})
grid = []
for condition, model in (("base", "reliab/plain"), ("mine", "reliab/{persona}")):
    task_args = {"base": "org/tiny", "personas": args["personas"], "condition": condition,
                 "prompts": "builtin", "n": args["n"], "classifier": args["clf"],
                 "restrict_to_evaluated": True}
    grid.append(sweep.SweepEval("org/tiny", condition, "chat", model,
                                {"calls_file": args["calls"], "sleep": args["sleep"]},
                                "chat_persona", task_args, None))
sys.exit(0 if sweep.run_base(grid, cfg, display="none") else 1)
"""


def _transcripts(log_dir: Path) -> dict[tuple[str, str], Any]:
    """(condition, sample id) -> (messages as (role, text), output text) of every sample."""
    out = {}
    for info in list_eval_logs(str(log_dir), recursive=True):
        log = read_eval_log(info)
        if log.status != "success":
            continue
        cond = log.eval.metadata["charbench"]["condition"] if log.eval.metadata else "?"
        for s in log.samples or []:
            out[(cond, str(s.id))] = (
                [(m.role, m.text) for m in s.messages], s.output.completion,
                (s.metadata.get("generation") or {}).get("reused"),
            )
    return out


def _sweep_child(tmp: Path, clf: Path, log_dir: Path, sleep: float) -> list[str]:
    args = {"personas": SHARED_PERSONAS, "n": SHARED_N, "clf": str(clf), "log_dir": str(log_dir),
            "calls": str(tmp / "calls.jsonl"), "sleep": sleep}
    return [PYTHON, "-c", SWEEP_CHILD, json.dumps(args)]


def test_killed_sweep_keeps_the_transcripts_of_shared_generations(
    tiny_clf: Path, tmp_path: Path
) -> None:
    """A sample that took a generation shared by another sample (``generation.reused``) and had
    finished before ``kill -9`` is recovered by the rerun from Inspect's sample buffer; its
    messages and output must be those of an uninterrupted run, not empty."""
    env = subprocess_env()
    (tmp_path / "ref").mkdir()
    _run(_sweep_child(tmp_path / "ref", tiny_clf, tmp_path / "ref" / "logs", 0.0), env)
    ref = _transcripts(tmp_path / "ref" / "logs")
    n = 2 * SHARED_N * len(SHARED_PERSONAS)
    assert len(ref) == n and any(r[2] for r in ref.values())

    killed = tmp_path / "killed"
    killed.mkdir()
    argv = _sweep_child(killed, tiny_clf, killed / "logs", 0.3)
    console = killed / "console.txt"
    with console.open("wb") as sink:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        # every sample is held in the sample buffer (log_buffer=1000): kill once a third of
        # the base condition's prompts were generated (each shared by all its personas)
        while len(read_calls(killed / "calls.jsonl")) < SHARED_N // 3 + 1:
            assert proc.poll() is None, console.read_text()[-3000:]
            assert time.monotonic() < deadline, "the sweep made no progress"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            _sigkill(proc)
    _run(argv, env)
    got = _transcripts(killed / "logs")
    assert set(got) == set(ref)
    empty = sorted(k for k, v in got.items() if not v[0] or not v[1])
    assert not empty, f"samples recovered with no transcript: {empty}"
    for key, (messages, completion, _) in ref.items():
        assert got[key][:2] == (messages, completion), key
