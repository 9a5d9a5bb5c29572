"""The processes of a sweep: one lock per log directory, one child process per base.

- :class:`SweepLock`: a sweep holds ``LOG_DIR/.charbench-sweep.lock`` (an exclusive
  ``flock`` on the file, which records the holder's pid) for as long as it runs. A second
  sweep on the same log directory refuses to start and names the process holding it. The
  kernel drops the lock when its holders die, so a lock left by a killed sweep (a stale pid
  in the file) is simply taken over.
- :func:`run_base_in_child`: with several bases the sweep runs each in its own process (its
  weights are freed before the next base loads). The child is started with explicit
  arguments (the JSON of the :class:`~charbench.sweep.SweepConfig` and the base), shares the
  parent's lock, and dies with its parent: on Linux the kernel sends it SIGKILL when the
  parent dies (``prctl(PR_SET_PDEATHSIG)``), elsewhere a watchdog thread in the child does
  when its parent pid changes.
- ``python -m charbench.sweep_process --config JSON --base BASE --parent-pid PID`` is the
  child's entry point (:func:`worker_main`).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from charbench import sweep

LOCK_NAME = ".charbench-sweep.lock"
"""Lock file of a running sweep, in the root log directory."""

_PR_SET_PDEATHSIG = 1


class SweepBusyError(RuntimeError):
    """Another live sweep holds the log directory."""


class SweepLock:
    """Exclusive hold of a sweep's log directory (a context manager).

    Args:
        log_dir: the sweep's root log directory (created if missing).
    """

    def __init__(self, log_dir: str | Path) -> None:
        self.path = Path(log_dir) / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self) -> SweepLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self.path.read_text(errors="replace").strip() or "an unknown process"
            os.close(fd)
            raise SweepBusyError(
                f"another charbench sweep is running on {self.path.parent} ({holder}); wait "
                f"for it to finish or stop it, or use another --log-dir"
            ) from None
        self.fd = fd
        self.record(f"pid {os.getpid()}")
        return self

    def record(self, holder: str) -> None:
        """Write who holds the lock (shown to a sweep that is refused)."""
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, holder.encode(), 0)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the flock; the file stays (harmless, reused)
            self.fd = None


def _die_with_parent() -> None:
    """In the child before exec: ask the kernel for SIGKILL when the parent dies (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def run_base_in_child(
    cfg: sweep.SweepConfig,
    base: str,
    *,
    lock: SweepLock | None = None,
    retry_attempts: int = 0,
    log_dir_allow_dirty: bool = False,
) -> int:
    """Run one base's evals in a child process that dies with this one; its exit status.

    Args:
        cfg: the sweep settings (serialised to JSON for the child; ``bases`` is replaced by
            ``[base]``).
        base: the base to run.
        lock: the sweep's lock; the child shares it and is named in it while it runs.
        retry_attempts: ``eval_set`` retries within the child.
        log_dir_allow_dirty: passed to :func:`charbench.sweep.run_base`.
    """
    config = json.dumps(dataclasses.asdict(dataclasses.replace(cfg, bases=[base])), default=str)
    argv = [
        sys.executable, "-m", "charbench.sweep_process", "--config", config, "--base", base,
        "--parent-pid", str(os.getpid()), "--retry-attempts", str(retry_attempts),
    ]
    if log_dir_allow_dirty:
        argv.append("--log-dir-allow-dirty")
    keep = (lock.fd,) if lock is not None and lock.fd is not None else ()
    proc = subprocess.Popen(argv, preexec_fn=_die_with_parent, pass_fds=keep)
    if lock is not None:
        lock.record(f"pid {os.getpid()}, running base {base} in child pid {proc.pid}")
    try:
        return proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def _watch_parent(parent_pid: int, interval: float = 1.0) -> None:
    """Kill this process when its parent is gone (the portable fallback of PDEATHSIG)."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(interval)

    threading.Thread(target=watch, name="charbench-parent-watch", daemon=True).start()


def worker_main(argv: Sequence[str]) -> int:
    """The per-base child: run the evals of ``--base`` of the ``--config`` sweep.

    Returns:
        0 when every eval of the base finished, 1 otherwise, 2 for a bad configuration.
    """
    p = argparse.ArgumentParser(prog="python -m charbench.sweep_process")
    p.add_argument("--config", required=True, help="JSON of the SweepConfig")
    p.add_argument("--base", required=True)
    p.add_argument("--parent-pid", type=int, required=True)
    p.add_argument("--retry-attempts", type=int, default=0)
    p.add_argument("--log-dir-allow-dirty", action="store_true")
    args = p.parse_args(argv)
    _watch_parent(args.parent_pid)
    cfg = sweep.SweepConfig(**json.loads(args.config))
    grid = [ev for ev in sweep.build_grid(cfg) if ev.base == args.base]
    if not grid:
        print(f"charbench sweep: no evals for base {args.base!r}", file=sys.stderr)
        return 2
    return run_base_checked(
        grid,
        cfg,
        retry_attempts=args.retry_attempts,
        log_dir_allow_dirty=args.log_dir_allow_dirty,
    )


def run_base_checked(
    grid: Sequence[sweep.SweepEval],
    cfg: sweep.SweepConfig,
    *,
    retry_attempts: int = 0,
    log_dir_allow_dirty: bool = False,
) -> int:
    """:func:`charbench.sweep.run_base`, with Inspect's refusals printed as sweep advice.

    Returns:
        0 when every eval finished, 1 when some did not (rerun to resume), 2 when Inspect
        refused to start (e.g. a log directory holding logs of other settings).
    """
    from charbench._inspect import PrerequisiteError

    try:
        ok = sweep.run_base(
            grid, cfg, retry_attempts=retry_attempts, log_dir_allow_dirty=log_dir_allow_dirty
        )
    except PrerequisiteError as ex:
        text = str(getattr(ex, "message", ex)).replace("[bold]", "").replace("[/bold]", "")
        print(f"charbench sweep: {text}", file=sys.stderr)
        if "--log-dir-allow-dirty" in text:
            print(
                "charbench sweep: the sweep's settings changed since these logs were written: "
                "rerun with --log-dir-allow-dirty to keep the old logs beside the new ones "
                "(charbench report reads both), or use a fresh --log-dir",
                file=sys.stderr,
            )
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
