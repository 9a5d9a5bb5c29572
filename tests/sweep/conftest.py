"""A tiny OpenAI-compatible server standing in for vLLM (bounded, stops itself).

It serves ``GET /v1/models`` (the adapter names it "serves") and
``POST /v1/chat/completions``, records the ``model`` field of every completion request, and
answers with a canned reply naming that model. Models listed in ``fail`` get HTTP 400 (a
non-retried error), which the sweep tests use to interrupt a run.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

MAX_LIFETIME_S = 300.0


@dataclass
class FakeServer:
    """Handle of a running fake server."""

    url: str
    served: list[str]
    requests: list[str] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                data = [{"id": m, "object": "model", "max_model_len": 4096} for m in state.served]
                self._send(200, {"object": "list", "data": data})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            model = str(body.get("model"))
            with state.lock:
                state.requests.append(model)
            if model in state.fail:
                self._send(
                    400,
                    {
                        "error": {
                            "message": f"scripted failure for {model}",
                            "type": "invalid_request_error",
                        }
                    },
                )
                return
            text = f"Reply from {model}: happy to help with that request."
            self._send(
                200,
                {
                    "id": "cmpl-1",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 9, "total_tokens": 19},
                },
            )

    return Handler


@pytest.fixture
def fake_openai_server() -> Iterator[FakeServer]:
    """Start the server on 127.0.0.1 (free port); it shuts down after the test or 300 s."""
    state = FakeServer(url="", served=[])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    timer = threading.Timer(MAX_LIFETIME_S, server.shutdown)
    timer.daemon = True
    timer.start()
    try:
        yield state
    finally:
        timer.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
