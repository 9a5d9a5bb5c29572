"""A real OpenAI-compatible server (#17): llama.cpp's server (``llama-cpp-python[server]``)
serving SmolLM2-135M-Instruct's GGUF on 127.0.0.1, driven through Inspect's ``openai-api``.

The server runs with the model's own chat template (no tool-call parser), the setup in which
a user saw every call scored as ``no_email``. Checked: requests reach the server; a forced
``send_email`` comes back as native ``tool_calls`` (llama.cpp constrains a named
``tool_choice`` with a grammar) and round-trips through ``execute_tools``; a call the model
writes as text (forced here with a grammar, since a 135M model does not call tools on its
own) is ``unparsed_call`` with the warning, and runs with ``text_tool_calls=true``; and the
server's token counts show that the default template renders a ``tool`` message while
``--chat_format chatml-function-calling`` drops its content (the ``empty_after_tool`` hint).

Needs ``llama_cpp`` importable, or its wheel in ``~/.cache/charbench/wheels`` (a source
build: ``pip wheel --no-deps llama-cpp-python==0.3.36 -w ~/.cache/charbench/wheels``, about
40 minutes on 2 busy cores; see docs/serving.md), plus the server's dependencies
(``sse-starlette``, ``starlette-context``). Skipped only when neither is there and ``CI`` is
not set; in CI a missing server is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.scripted_models import shared_tiny_classifier, tool_results
from inspect_ai import eval as inspect_eval
from inspect_ai.event import LoggerEvent
from inspect_ai.log import EvalLog, EvalSample
from inspect_ai.model import (
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageTool,
    ChatMessageUser,
    GenerateConfig,
    Model,
    get_model,
)
from inspect_ai.tool import ToolCall, ToolInfo, ToolParams
from inspect_ai.util import JSONSchema

from charbench.agentic_email.loop import TEXT_TOOL_CALLS_KEY
from charbench.agentic_email.scenarios import load_scenarios
from charbench.agentic_email.task import agentic_email
from charbench.assets import cache_root, find_smollm2_gguf
from charbench.chat_persona.task import chat_persona

pytestmark = pytest.mark.slow

WHEELS = cache_root() / "wheels"
FIRST = load_scenarios()[0]
_REQUEST = re.compile(r'"POST /v1/chat/completions HTTP/1\.1" 200')


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"llama.cpp server test cannot run in CI: {reason}")
    pytest.skip(reason)


def _server_pythonpath(tmp: Path) -> str:
    """``""`` when ``llama_cpp`` is installed, else the extracted cached wheel's directory."""
    try:
        import llama_cpp.server  # noqa: F401

        return ""
    except ImportError:
        pass
    wheels = sorted(WHEELS.glob("llama_cpp_python-*.whl"))
    if not wheels:
        _unavailable(
            f"llama-cpp-python is not installed and no wheel is cached in {WHEELS} (build "
            f"one: pip wheel --no-deps llama-cpp-python==0.3.36 -w {WHEELS})"
        )
    for dep in ("sse_starlette", "starlette_context", "diskcache", "uvicorn", "fastapi"):
        try:
            __import__(dep)
        except ImportError:
            _unavailable(f"the llama.cpp server needs {dep} (pip install 'llama-cpp-python[server]')")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        wheel.extractall(tmp)
    return str(tmp)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A running llama.cpp server and its log (one line per request)."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def requests(self) -> int:
        return len(_REQUEST.findall(self.log.read_text(errors="replace")))

    def model(self) -> Model:
        return get_model("openai-api/llamacpp/smollm2", base_url=self.url, api_key="none")


@contextlib.contextmanager
def _serve(tmp: Path, *extra: str) -> Iterator[Server]:
    """Run ``python -m llama_cpp.server`` on SmolLM2's GGUF until the block ends."""
    pythonpath = _server_pythonpath(tmp / "wheel")
    gguf = find_smollm2_gguf(progress=False)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (pythonpath,
           os.environ.get("PYTHONPATH", "")) if p)}
    log = tmp / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
             "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
             "--n_ctx", "8192", "--n_threads", "2", "--seed", "0", *extra],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    try:
        _wait_ready(f"http://127.0.0.1:{port}/v1/models", proc, log)
        yield Server(f"http://127.0.0.1:{port}/v1", log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server with the model's own chat template (no tool-call parser)."""
    with _serve(tmp_path_factory.mktemp("llama-cpp")) as running:
        yield running


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama.cpp server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"llama.cpp server not ready after 300 s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def classifier() -> str:
    return str(shared_tiny_classifier())


def _run(task: Any, model: Model, tmp_path: Path, **config: Any) -> EvalLog:
    (log,) = inspect_eval(task, model=model, log_dir=str(tmp_path), display="none", **config)
    assert log.status == "success", log.error
    return log


def _md(sample: EvalSample) -> dict[str, Any]:
    assert sample.scores
    md = next(iter(sample.scores.values())).metadata
    assert md is not None
    return md


def test_chat_persona_through_the_server(server: Server, classifier: str, tmp_path: Path) -> None:
    before = server.requests()
    log = _run(chat_persona(personas="humor,loving", prompts="builtin", n=2,
                            classifier=classifier, max_tokens=32, reuse_generations=False),
               server.model(), tmp_path)
    samples = log.samples or []
    assert len(samples) == 4
    assert server.requests() - before == 4
    assert all(s.output.completion.strip() for s in samples)
    assert all(_md(s)["outcome"] == "replied" for s in samples)


def test_forced_send_email_round_trips_native_tool_calls(
    server: Server, classifier: str, tmp_path: Path
) -> None:
    before = server.requests()
    log = _run(agentic_email(personas="humor", scenarios=FIRST.id, classifier=classifier,
                             tool_choice="send_email", max_turns=2, max_tokens=160),
               server.model(), tmp_path)
    (sample,) = log.samples or []
    md = _md(sample)
    turns = [m for m in sample.messages if isinstance(m, ChatMessageAssistant)]
    assert server.requests() - before == len(turns) == md["turns"]
    results = tool_results(sample.messages)
    for turn in turns:  # native calls from the server, each answered by execute_tools
        assert turn.tool_calls and [c.function for c in turn.tool_calls] == ["send_email"]
        assert TEXT_TOOL_CALLS_KEY not in (turn.metadata or {})
    assert [r.tool_call_id for r in results] == [t.tool_calls[0].id for t in turns
                                                 if t.tool_calls]
    sent = any(r.error is None for r in results)
    assert md["outcome"] == ("emailed" if sent else md["outcome"])
    assert md["outcome"] in ("emailed", "turn_limit", "malformed")
    assert (md["outcome"] == "emailed") == sent


def _text_call_grammar() -> str:
    """GBNF that makes the model write a send_email call as text (a fenced JSON block)."""
    return (
        'root ::= "```json\\n{\\"name\\": \\"send_email\\", \\"arguments\\": {\\"to\\": \\"'
        + FIRST.recipient
        + '\\", \\"subject\\": \\"" s "\\", \\"body\\": \\"" s "\\"}}\\n```"\n'
        "s ::= [A-Za-z] [A-Za-z ,.]{0,60}\n"
    )


def test_call_written_as_text_is_unparsed_call_then_runs_with_text_tool_calls(
    server: Server, classifier: str, tmp_path: Path
) -> None:
    grammar = {"grammar": _text_call_grammar()}
    before = server.requests()
    log = _run(agentic_email(personas="humor", scenarios=FIRST.id, classifier=classifier,
                             max_tokens=200),
               server.model(), tmp_path / "plain", extra_body=grammar)
    (sample,) = log.samples or []
    assert server.requests() - before == 1
    assert sample.output.message.tool_calls is None  # the server parsed nothing
    assert _md(sample)["outcome"] == "unparsed_call"
    warnings = [e for e in sample.events if isinstance(e, LoggerEvent)
                and "text_tool_calls=true" in e.message.message]
    assert len(warnings) == 1

    log = _run(agentic_email(personas="humor", scenarios=FIRST.id, classifier=classifier,
                             max_tokens=200, text_tool_calls=True),
               server.model(), tmp_path / "fallback", extra_body=grammar)
    (sample,) = log.samples or []
    md = _md(sample)
    assert md["outcome"] == "emailed" and md["email_to"] == [FIRST.recipient]
    first = next(m for m in sample.messages if isinstance(m, ChatMessageAssistant))
    assert first.metadata and TEXT_TOOL_CALLS_KEY in first.metadata
    assert log.eval.metadata is not None
    assert log.eval.metadata["charbench"]["text_tool_calls"] is True


LOOKUP = ToolInfo(
    name="lookup_contact",
    description="Find a colleague.",
    parameters=ToolParams(properties={"name": JSONSchema(type="string")}, required=["name"]),
)
_RESULT = "Dana Reyes, Head of Finance, dana.reyes@example.com, extension 4417. " * 8


def _prompt_tokens(model: Model, with_result: bool) -> int:
    """Prompt tokens the server counted for a conversation with or without a tool result."""
    call = ToolCall(id="call_1", function="lookup_contact", arguments={"name": "Dana"})
    messages: list[ChatMessage] = [
        ChatMessageSystem(content="You are an operations agent."),
        ChatMessageUser(content="Who is Dana?"),
        ChatMessageAssistant(content="", tool_calls=[call]),
    ]
    if with_result:
        messages.append(ChatMessageTool(content=_RESULT, tool_call_id="call_1",
                                        function="lookup_contact"))
    output = asyncio.run(model.generate(messages, [LOOKUP], tool_choice="none",
                                        config=GenerateConfig(max_tokens=1, temperature=0)))
    assert output.usage is not None
    return output.usage.input_tokens


def test_function_calling_format_drops_tool_messages_and_the_default_keeps_them(
    server: Server, tmp_path: Path
) -> None:
    # the model's own template renders the tool result (the prompt grows by it) ...
    model = server.model()
    assert _prompt_tokens(model, True) > _prompt_tokens(model, False) + 50
    # ... llama.cpp's chatml-function-calling format drops its content (only the role
    # header, 3 tokens, is rendered): what empty_after_tool's warning names
    with _serve(tmp_path, "--chat_format", "chatml-function-calling") as fc_server:
        fc_model = fc_server.model()
        assert _prompt_tokens(fc_model, True) - _prompt_tokens(fc_model, False) < 10
