"""``bench/gpu.sh --tiny`` runs end to end on the CPU and prints every workload's figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # about 1-2 min on a loaded 2-core machine


def test_gpu_bench_tiny_runs_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "BENCH_TIMEOUT_S": "570",
           "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run = subprocess.run([str(REPO / "bench" / "gpu.sh"), "--tiny", "--workdir", str(tmp_path)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert set(summary["results"]) == {"one-shot", "multi-turn", "agentic"}
    for name, row in summary["results"].items():
        assert row["hf-lora"] > 0, name
        assert any(k.startswith("hf") and k != "hf-lora" for k in row), name
        assert any(k.startswith("plain loop") for k in row), name
    # the agentic workload shares its system block: most prompt tokens come from the cache
    assert summary["results"]["agentic"]["computed share"] < 0.6
    assert any("[target:" in line for line in lines)
