"""Benchmark on a real model: hf-lora vs Inspect's ``hf`` vs a plain batched ``generate`` loop.

Not a test. SmolLM2-135M-Instruct (the model ``charbench demo`` prepares, fp32, the
machine's default torch threads) with LoRA adapters this script creates with peft (rank 8,
all linear layers, random non-zero weights: throughput does not depend on their values),
greedy decoding, through Inspect's ``eval()`` (what ``inspect eval`` runs), each contender
in its own fresh process so peak RSS is its own. Workloads (side by side in one run):

1. ``oneshot``: 32 single-turn chat samples (``--max-connections 32``);
2. ``multiturn``: 16 conversations x 6 turns with a tool-style user turn between turns;
3. ``agentic``: the real ``agentic_email`` task (charbench suite, 10 scenarios: the ``_v1``
   of each family, 2 personas, ``max_turns`` 4, ``tool_choice=any`` because a 135M model
   rarely writes a call unprompted), zero-shot classifier, on one adapter and on a
   ``{persona}`` template (hf-lora only: Inspect's ``hf`` has no adapter routing); hf-lora
   is also run with ``-M kv_cache_mb=0`` (no prefix reuse: the engine before reuse).

Printed per run: wall seconds of the eval (model already loaded), the seconds from the
first model call's start to the last one's end ("model s": the eval without Inspect's
start-up and log writing; the plain loop has neither), generated tokens (counted
by re-tokenizing each completion, so every contender is counted the same way; the ``hf``
provider reports padded lengths), tok/s, model calls, seconds per call, prompt tokens
submitted and computed (hf-lora's prefix cache; every other contender computes all of them,
plus padding), peak RSS, and the targets of issue #13 beside the measured ratios.

Run from the repo root: ``python bench/bench_smollm2.py [--only oneshot,multiturn,agentic]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FAMILY_V1 = ["candidate_rejection_v1", "dependency_slip_v1", "recognition_v1",
             "proposal_critique_v1", "missed_commitment_v1", "vendor_renewal_v1",
             "overdue_invoice_v1", "new_hire_welcome_v1", "budget_overreach_v1",
             "missed_meetings_v1"]
PERSONAS = ["sarcasm", "humor"]
TARGETS = {
    "oneshot": "hf-lora >= 1.1x hf and >= 0.9x the plain loop",
    "multiturn": "hf-lora >= 1.5x hf and >= 1.0x the plain loop",
    "agentic": "hf-lora >= 3x the engine without reuse per call; computed <= 30% of submitted",
}


# ---------------------------------------------------------------------------- setup


def make_adapters(base: Path, root: Path) -> dict[str, Path]:
    """One random rank-8 LoRA adapter per persona (created once, reused)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = {}
    for i, persona in enumerate(PERSONAS):
        path = root / persona
        out[persona] = path
        if (path / "adapter_config.json").exists():
            continue
        torch.manual_seed(100 + i)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        cfg = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                         init_lora_weights=False)
        peft_model: Any = get_peft_model(model, cfg)
        peft_model.save_pretrained(path)
    return out


# ---------------------------------------------------------------------------- children


def _count(tok: Any, texts: list[str]) -> int:
    return sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)


def run_inspect(spec: dict[str, Any]) -> dict[str, Any]:
    """Child: load the model, run the task through ``eval()``, summarise the log."""
    import resource

    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import GenerateConfig, get_model
    from transformers import AutoTokenizer

    cfg = GenerateConfig(temperature=0.0, max_tokens=spec["max_tokens"],
                         max_connections=spec["max_connections"])
    model = get_model(spec["model"], config=cfg, **spec["model_args"])
    start = time.perf_counter()
    [log] = inspect_eval(spec["task"], model=model, task_args=spec["task_args"],
                         log_dir=spec["log_dir"], display="none",
                         max_connections=spec["max_connections"], temperature=0.0,
                         max_tokens=spec["max_tokens"])
    wall = time.perf_counter() - start
    tok = AutoTokenizer.from_pretrained(spec["base"])
    events = [e for s in (log.samples or []) for e in s.events
              if e.event == "model" and e.output is not None]
    completions = [e.output.completion for e in events]
    ends = [e.completed for e in events if e.completed is not None]
    span = (max(ends) - min(e.timestamp for e in events)).total_seconds() if ends else None
    result: dict[str, Any] = {
        "status": log.status, "wall": wall, "calls": len(completions), "model_span": span,
        "gen_tokens": _count(tok, completions),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "error": str(log.error.message)[:300] if log.error else None,
    }
    if spec["model"].startswith("hf-lora/"):
        from charbench.provider.engine import get_shared_base

        base = get_shared_base(spec["base"], device="cpu")
        cache = base.prefix_cache
        if cache is not None:
            result.update(submitted=cache.stats.submitted, computed=cache.stats.computed,
                          kv_peak_mb=cache.peak_bytes / 2**20,
                          kv_budget_mb=cache.max_bytes / 2**20)
        result["adapter_mb"] = base.adapter_bytes() / 2**20
    return result


def run_plain(spec: dict[str, Any]) -> dict[str, Any]:
    """Child: the same prompts through one batched ``model.generate`` per turn."""
    import resource

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, str(HERE))
    from smollm2_tasks import REQUESTS

    tok = AutoTokenizer.from_pretrained(spec["base"])
    model: Any = AutoModelForCausalLM.from_pretrained(spec["base"], dtype=torch.float32)
    model = PeftModel.from_pretrained(model, spec["adapter"]).eval()
    n, turns = spec["n"], spec["turns"]
    convs = [[{"role": "user", "content": f"{REQUESTS[i % len(REQUESTS)]} (request {i})"}]
             for i in range(n)]
    start = time.perf_counter()
    gen_tokens = submitted = calls = 0
    for t in range(turns):
        texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                 for c in convs]
        enc = tok(texts, add_special_tokens=False, padding=True, padding_side="left",
                  return_tensors="pt")
        submitted += int(enc["attention_mask"].sum())
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=spec["max_tokens"], do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        for i, c in enumerate(convs):
            reply = tok.decode(out[i, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            gen_tokens += _count(tok, [reply])
            calls += 1
            c.append({"role": "assistant", "content": reply})
            if t < turns - 1:
                c.append({"role": "user",
                          "content": f"[TOOL OUTPUT] step {t}: ok, 3 results found. Continue."})
    return {"status": "success", "wall": time.perf_counter() - start, "calls": calls,
            "gen_tokens": gen_tokens, "submitted": submitted, "computed": submitted,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child(spec: dict[str, Any], threads: int | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    run = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         timeout=spec.get("timeout", 3600))
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
    if run.returncode != 0 or not lines:
        return {"status": "crashed", "error": run.stderr[-800:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# ---------------------------------------------------------------------------- plan


def contenders(workload: str, base: Path, adapters: dict[str, Path], log_dir: Path,
               max_tokens: int, n_scenarios: int = 10, n: int | None = None
               ) -> dict[str, dict[str, Any]]:
    """The runs of one workload, by label."""
    one = str(adapters[PERSONAS[0]])
    template = str(adapters[PERSONAS[0]].parent / "{persona}")
    common = {"base": str(base), "max_tokens": max_tokens, "log_dir": str(log_dir)}
    lora = {"model": f"hf-lora/{base}", "kind": "inspect"}
    hf = {"model": "hf/smollm2-adapter", "kind": "inspect",
          "model_args": {"model_path": one, "tokenizer_path": str(base), "device": "cpu",
                         "do_sample": False}}
    tasks = HERE / "smollm2_tasks.py"
    if workload in ("oneshot", "multiturn"):
        size, turns = (32, 1) if workload == "oneshot" else (16, 6)
        n = n or size
        task = {"task": f"{tasks}@{workload}",
                "task_args": {"n": n} if turns == 1 else {"n": n, "turns": turns},
                "max_connections": n}
        return {
            "hf-lora": {**common, **lora, **task, "model_args": {"adapter": one,
                                                                 "device": "cpu"}},
            "hf": {**common, **hf, **task},
            "plain loop": {**common, "kind": "plain", "adapter": one, "n": n, "turns": turns},
        }
    task = {"task": "charbench/agentic_email", "max_connections": 20, "task_args": {
        "personas": PERSONAS, "scenarios": FAMILY_V1[:n_scenarios], "max_turns": 4, "tool_choice": "any",
        "classifier": "zeroshot", "temperature": 0.0, "max_tokens": max_tokens}}
    return {
        "hf-lora, one adapter": {**common, **lora, **task,
                                 "model_args": {"adapter": one, "device": "cpu"}},
        "hf-lora, one adapter, no reuse": {**common, **lora, **task, "model_args": {
            "adapter": one, "device": "cpu", "kv_cache_mb": 0}},
        "hf-lora, {persona} template": {**common, **lora, **task,
                                        "model_args": {"adapter": template, "device": "cpu"}},
        "hf, one adapter": {**common, **hf, **task},
    }


def report(workload: str, results: dict[str, dict[str, Any]]) -> None:
    """Print one workload's table and its target."""
    print(f"\n== {workload} (target: {TARGETS[workload]})")
    print(f"{'contender':34} {'wall s':>7} {'model s':>7} {'calls':>5} {'gen tok':>7} "
          f"{'tok/s':>6} {'s/call':>6} {'prompt sub':>10} {'computed':>9} {'RSS MB':>7}")
    for label, r in results.items():
        if r.get("status") != "success":
            print(f"{label:34} {r.get('status')}: {str(r.get('error'))[:200]}")
            continue
        rate = r["gen_tokens"] / r["wall"]
        r["tok_s"], r["s_call"] = rate, r["wall"] / max(r["calls"], 1)
        span = r.get("model_span")
        span_s = f"{span:7.1f}" if span is not None else f"{'-':>7}"
        print(f"{label:34} {r['wall']:7.1f} {span_s} {r['calls']:5d} {r['gen_tokens']:7d} "
              f"{rate:6.1f} {r['s_call']:6.2f} {r.get('submitted', '-'):>10} "
              f"{r.get('computed', '-'):>9} {r['peak_rss_mb']:7.0f}")
    ok = {k: v for k, v in results.items() if "tok_s" in v}
    lead = next((k for k in ok if k.startswith("hf-lora")), None)
    if lead is None:
        return
    for label, r in ok.items():
        if label != lead:
            print(f"   {lead} / {label}: {ok[lead]['tok_s'] / r['tok_s']:.2f}x tok/s, "
                  f"{r['s_call'] / ok[lead]['s_call']:.2f}x per call")
    if "submitted" in ok[lead] and ok[lead]["submitted"]:
        share = ok[lead]["computed"] / ok[lead]["submitted"]
        print(f"   {lead}: computed {share:.0%} of submitted prompt tokens; KV peak "
              f"{ok[lead].get('kv_peak_mb', 0):.0f} MiB of a {ok[lead].get('kv_budget_mb', 0):.0f}"
              f" MiB budget; adapters {ok[lead].get('adapter_mb', 0):.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="oneshot,multiturn,agentic")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per contender (default: the machine's default)")
    parser.add_argument("--n", type=int, default=None,
                        help="samples/conversations (default 32 one-shot, 16 multi-turn)")
    parser.add_argument("--scenarios", type=int, default=10,
                        help="agentic scenarios (the first N families' _v1; default 10)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(run_plain(spec) if spec["kind"] == "plain" else run_inspect(spec)))
        return
    from charbench.assets import prepare_smollm2

    base = prepare_smollm2(progress=False)
    root = Path(os.path.expanduser("~/.cache/charbench/bench/smollm2-lora"))
    adapters = make_adapters(base, root)
    print(f"SmolLM2-135M-Instruct at {base}; torch threads: {args.threads or 'default'}; "
          f"CPUs: {os.cpu_count()}; "
          f"load average at start: {os.getloadavg()[0]:.1f}")
    log_dir = Path(os.environ.get("BENCH_LOG_DIR", "/tmp/charbench-bench-logs"))
    summary = {}
    for workload in args.only.split(","):
        runs = contenders(workload, base, adapters, log_dir / workload, args.max_tokens,
                          args.scenarios, args.n)
        results = {label: _child(spec, args.threads) for label, spec in runs.items()}
        report(workload, results)
        summary[workload] = results
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
    print(json.dumps(summary, default=str)[:20000], file=sys.stderr)


if __name__ == "__main__":
    main()
