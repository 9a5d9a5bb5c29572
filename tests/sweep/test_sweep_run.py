"""A tiny real sweep and the vLLM/OpenAI-compatible route, offline.

The stand-in server (``conftest.fake_openai_server``) plays vLLM: it serves adapters by name
and records the ``model`` field of each request. The real ``chat_persona`` task runs through
Inspect's ``vllm`` and ``openai-api`` providers against it, scored by the tiny ModernBERT
classifier fixture.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from inspect_ai import eval
from inspect_ai.log import list_eval_logs, read_eval_log

from charbench import sweep
from charbench.report import build_report

pytestmark = pytest.mark.slow  # builds a tiny classifier and runs real evals (~30 s each)
PERSONAS = ["sarcasm", "humor"]
BASE = "org/tiny-base"
RESUME_BASE = "org/tiny-resume"


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> str:
    from fixtures.tiny_classifier import build_tiny_classifier

    return str(build_tiny_classifier(tmp_path_factory.mktemp("clf") / "clf"))


def _cfg(log_dir: Path, url: str, classifier: str, base: str = BASE) -> sweep.SweepConfig:
    # each test uses its own base name: Inspect keeps one vLLM server entry per base (and
    # memoizes models) per process, which would point a later test at an earlier server
    return sweep.SweepConfig(
        bases=[base],
        stages=["base", "full"],
        adapters={"mine": "mine-{persona}"},
        tasks=["chat"],
        personas=PERSONAS,
        n=2,
        prompts="builtin",
        provider="vllm",
        base_url=url,
        classifier=classifier,
        log_dir=str(log_dir),
        generate={"max_tokens": 16, "max_retries": 0},
    )


def _outputs_by_sample(log_path: str) -> dict[str, str]:
    log = read_eval_log(log_path)
    return {str(s.id): s.output.completion for s in log.samples or []}


def test_vllm_route_each_persona_reaches_its_adapter(
    fake_openai_server, classifier: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VLLM_BASE_URL", raising=False)
    server = fake_openai_server
    server.served = [BASE, "full-sarcasm", "full-humor", "mine-sarcasm", "mine-humor"]
    cfg = _cfg(tmp_path, server.url, classifier)
    grid = sweep.build_grid(cfg)
    assert sweep.run_base(grid, cfg, display="none")
    logs = [read_eval_log(i) for i in list_eval_logs(str(tmp_path / "org_tiny-base"))]
    assert len(logs) == 3 and all(log.status == "success" for log in logs)
    for log in logs:
        meta = log.eval.metadata["charbench"]
        assert meta["base"] == BASE
        for s in log.samples or []:
            persona = s.metadata["persona"]
            want = BASE if meta["condition"] == "base" else f"{meta['condition']}-{persona}"
            assert s.output.completion.startswith(f"Reply from {want}:"), s.output.completion
    # the server saw exactly: the base once per prompt (shared generation), each adapter
    # once per prompt
    assert sorted(server.requests) == sorted(
        [BASE] * 2 + [f"{c}-{p}" for c in ("full", "mine") for p in PERSONAS for _ in range(2)]
    )
    report = build_report(tmp_path, n_boot=50, write=False)
    assert sorted(report.summary["condition"]) == ["base", "full", "mine"]
    assert set(report.summary["n"]) == {4}


def test_openai_api_persona_template(
    fake_openai_server, classifier: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from charbench.chat_persona import chat_persona

    server = fake_openai_server
    monkeypatch.setenv("FAKEVLLM_BASE_URL", server.url)
    monkeypatch.setenv("FAKEVLLM_API_KEY", "test-key")
    [log] = eval(
        chat_persona(
            personas=PERSONAS, prompts="builtin", n=3, classifier=classifier, condition="served"
        ),
        model="openai-api/fakevllm/adapter-{persona}",
        log_dir=str(tmp_path),
        display="none",
        max_tokens=16,
    )
    assert log.status == "success", log.error
    for sid, text in _outputs_by_sample(log.location).items():
        persona = sid.split("-")[0]
        assert text.startswith(f"Reply from adapter-{persona}:")
    assert sorted(server.requests) == sorted(f"adapter-{p}" for p in PERSONAS for _ in range(3))


def test_interrupted_sweep_resumes_without_redoing_finished_evals(
    fake_openai_server, classifier: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VLLM_BASE_URL", raising=False)
    server = fake_openai_server
    server.served = [RESUME_BASE, "full-sarcasm", "full-humor", "mine-sarcasm", "mine-humor"]
    server.fail = {"mine-humor"}  # the 'mine' eval breaks: the sweep stops unfinished
    cfg = _cfg(tmp_path, server.url, classifier, RESUME_BASE)
    grid = sweep.build_grid(cfg)
    assert not sweep.run_base(grid, cfg, display="none")
    log_dir = tmp_path / "org_tiny-resume"
    first = {
        read_eval_log(i, header_only=True).eval.metadata["charbench"]["condition"]: (
            i.name,
            read_eval_log(i, header_only=True).status,
        )
        for i in list_eval_logs(str(log_dir))
    }
    assert first["base"][1] == "success" and first["full"][1] == "success"
    assert first["mine"][1] == "error"
    finished = {
        c: (p, Path(p.removeprefix("file://")).stat().st_mtime_ns)
        for c, (p, s) in first.items()
        if s == "success"
    }
    server.requests.clear()
    server.fail = set()
    assert sweep.run_base(grid, cfg, display="none")  # resume
    # only the unfinished eval talked to the server again
    assert server.requests and all(m.startswith("mine-") for m in server.requests)
    for cond, (path, mtime) in finished.items():
        assert Path(path.removeprefix("file://")).stat().st_mtime_ns == mtime, cond
    report = build_report(tmp_path, n_boot=20, write=False)
    assert sorted(report.summary["condition"]) == ["base", "full", "mine"]
    assert set(report.summary["n"]) == {4} and set(report.summary["n_errors"]) == {0}
