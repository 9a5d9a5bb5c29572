"""200 concurrent samples across 10 LoRA adapters on one tiny base, through ``hf-lora``.

A child process runs ``chat_persona`` (10 personas x 20 prompts, greedy, every sample in flight
at once) under a hard timeout, so a deadlock fails the test instead of hanging it, and reports
its peak RSS. Then, in this process, every sample's prompt (from its transcript) is generated
again one at a time with its own adapter: the batched output must be identical, and the
output's ``model`` must name the sample's own adapter (no cross-talk between rows of a mixed
batch).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from inspect_ai.log import read_eval_log
from reliab_support import PYTHON, REPO, subprocess_env

from charbench.personas import DEFAULT_PERSONAS

pytestmark = pytest.mark.slow

N_PROMPTS = 20
MAX_TOKENS = 12
TIMEOUT_S = 540
RSS_LIMIT_MB = 4096

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from inspect_ai import eval
    base, repo, clf, log_dir, n = sys.argv[1:6]
    start = time.monotonic()
    [log] = eval(
        "charbench/chat_persona",
        model=f"hf-lora/{base}",
        model_args={"adapter": repo + "/{persona}", "device": "cpu", "max_batch_size": 64},
        task_args={"prompts": "builtin", "n": int(n), "classifier": clf},
        temperature=0.0, max_tokens=int(sys.argv[6]), max_connections=200,
        log_dir=log_dir, display="none",
    )
    print(json.dumps({
        "status": log.status, "location": log.location,
        "seconds": time.monotonic() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))
    """
)


def test_200_concurrent_samples_10_adapters_no_deadlock_no_crosstalk(
    tiny_llama: Path, persona_repo: Path, tiny_clf: Path, tmp_path: Path
) -> None:
    run = subprocess.run(
        [PYTHON, "-c", CHILD, str(tiny_llama), str(persona_repo), str(tiny_clf),
         str(tmp_path / "logs"), str(N_PROMPTS), str(MAX_TOKENS)],
        cwd=REPO, env=subprocess_env(OMP_NUM_THREADS="1"), capture_output=True,
        timeout=TIMEOUT_S,  # a deadlock fails here
    )
    assert run.returncode == 0, run.stderr.decode()[-4000:]
    result = json.loads(run.stdout.decode().strip().splitlines()[-1])
    assert result["status"] == "success"
    log = read_eval_log(result["location"], resolve_attachments=True)
    samples = log.samples or []
    assert len(samples) == len(DEFAULT_PERSONAS) * N_PROMPTS == 200

    from charbench.provider.engine import GenResult, GenSettings, get_shared_base

    base = get_shared_base(str(tiny_llama), device="cpu")
    names = {
        p: base.ensure_adapter(str(persona_repo / p)).name for p in DEFAULT_PERSONAS
    }
    settings = GenSettings(max_new_tokens=MAX_TOKENS, do_sample=False)
    batch_sizes = []
    for s in samples:
        persona = s.metadata["persona"]
        [event] = [e for e in s.events if e.event == "model"]
        assert event.call is not None
        request, response = event.call.request, event.call.response or {}
        # the transcript names the sample's own adapter
        assert s.output.model.endswith(f"+{persona_repo}/{persona}"), (s.id, s.output.model)
        assert request["adapter"] == f"{persona_repo}/{persona}"
        batch_sizes.append(int(response["batch_size"]))
        # and its output is exactly that adapter's one-at-a-time greedy output
        [alone] = base.generate_batch([request["prompt"]], [names[persona]], settings)
        assert isinstance(alone, GenResult), alone
        assert response["completion"] == alone.text, s.id
    assert max(batch_sizes) > 1, "nothing ran concurrently"
    print(json.dumps({
        "samples": len(samples), "adapters": len(DEFAULT_PERSONAS),
        "max_connections": 200, "max_batch_rows": max(batch_sizes),
        "seconds": round(result["seconds"], 1), "peak_rss_mb": round(result["peak_rss_mb"]),
    }))
    assert result["peak_rss_mb"] < RSS_LIMIT_MB
