"""The processes of a sweep: the log-directory lock and per-base children that die with it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from charbench import cli
from charbench.sweep_process import LOCK_NAME, SweepBusyError, SweepLock

REPO = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys, time\n"
    "from charbench.sweep_process import SweepLock\n"
    "lock = SweepLock(sys.argv[1]).__enter__()\n"
    "print('held', flush=True)\n"
    "time.sleep(120)\n"
)


def _env() -> dict[str, str]:
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _sweep_argv(log_dir: Path, *extra: str) -> list[str]:
    return ["sweep", "--bases", "/m/x", "--stages", "base", "--tasks", "chat",
            "--classifier", "zeroshot", "--log-dir", str(log_dir), *extra]


def test_a_live_sweep_holds_the_log_dir_and_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], env=_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert cli.main(_sweep_argv(tmp_path)) == 2
        out = capsys.readouterr().out
        assert "another charbench sweep is running" in out
        assert f"pid {holder.pid}" in out
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("pid 999999999")  # written by a sweep killed with -9
    with SweepLock(tmp_path) as lock:
        assert (tmp_path / LOCK_NAME).read_text() == f"pid {os.getpid()}"
        with pytest.raises(SweepBusyError, match=f"pid {os.getpid()}"), SweepLock(tmp_path):
            pass
        lock.record("pid 1, running base b in child pid 2")
    with SweepLock(tmp_path):  # released on exit
        pass


@pytest.fixture
def hanging_server() -> Iterator[str]:
    """An HTTP endpoint that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/v1"
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


@pytest.mark.slow  # two child processes that import Inspect (~20-40 s)
def test_killing_a_multi_base_sweep_kills_its_child(tmp_path: Path, hanging_server: str) -> None:
    argv = ["sweep", "--bases", "org/a,org/b", "--stages", "base", "--tasks", "chat",
            "--n", "1", "--personas", "sarcasm,humor", "--prompts", "builtin",
            "--classifier", "zeroshot", "--model-provider", "vllm",
            "--base-url", hanging_server, "--log-dir", str(tmp_path)]
    code = "import sys\nfrom charbench.cli import main\nsys.exit(main(sys.argv[1:]))"
    parent = subprocess.Popen([sys.executable, "-c", code, *argv], env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = tmp_path / LOCK_NAME
    child = None
    deadline = time.monotonic() + 180
    while child is None and time.monotonic() < deadline:
        assert parent.poll() is None, "the sweep ended before starting its child"
        found = re.search(r"child pid (\d+)", lock.read_text() if lock.exists() else "")
        child = int(found.group(1)) if found else None
        time.sleep(0.2)
    assert child is not None and _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(child), "the per-base child outlived its killed parent"
    with SweepLock(tmp_path):  # both are gone: a rerun may take the directory
        pass
