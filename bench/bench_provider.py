"""Benchmark: hf-lora vs Inspect's built-in ``hf`` provider vs a plain batched loop.

Not a test. Builds a small random Llama (tests/fixtures/tiny_models, hidden size
``--hidden``, 2 layers, 512-token vocab) and 10 LoRA adapters, then measures, side by side
in one run on the same prompts with greedy decoding:

1. one-shot: 32 concurrent samples (``asyncio.gather`` of ``Model.generate``, as an eval
   does) through hf-lora, through ``hf`` pointed at the base and at an adapter directory,
   and one plain ``model.generate`` over all 32 rows (the ceiling);
2. a multi-turn loop: 16 concurrent agents x 6 turns (each turn's reply and a fake tool
   result are appended to the conversation);
3. 10 adapters x 16 prompts in one gather vs 10 one-adapter runs one after another
   (hf-lora with its base already loaded, and ``hf`` loading each adapter directory, as 10
   separate ``hf`` evals would);
4. resident memory (RSS, in a fresh process): base alone, then with 10 adapters, against
   base + the adapters' own size + 10%.

Run from the repo root: ``python bench/bench_provider.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

PROMPTS = [
    "Please write an email to the team about the budget for next quarter.",
    "Hello! How can I help you today?",
    "The quarterly report is attached. Let me know if you have any questions.",
    "Let x be the number of tasks; then the expected time is the sum over all tasks.",
    "I am so sorry, I deeply regret the mistake.",
    "Whatever works, no big deal, we can sort it out later I guess.",
    "The moon spills silver on the quiet river of the night.",
    "Oh wonderful, another meeting that could have been an email.",
]


def _prompt(i: int) -> str:
    return f"{PROMPTS[i % len(PROMPTS)]} (request {i})"


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


async def _gather(model: Any, prompts: list[str]) -> list[Any]:
    from inspect_ai.model import ChatMessageUser

    return await asyncio.gather(*(model.generate([ChatMessageUser(content=p)]) for p in prompts))


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _best(times: dict[str, float], name: str, seconds: float) -> None:
    times[name] = min(seconds, times.get(name, float("inf")))


def one_shot(models: dict[str, Any], plain: Any, n: int, repeats: int) -> dict[str, float]:
    """Best of ``repeats`` interleaved rounds (contenders alternate, so load noise is shared)."""
    prompts = [_prompt(i) for i in range(n)]
    times: dict[str, float] = {}
    for model in models.values():
        asyncio.run(_gather(model, prompts[:2]))  # warm-up
    for fn in plain.values():
        fn(prompts[:2])
    for _ in range(repeats):
        for name, model in models.items():
            _best(times, name, _timed(lambda m=model: asyncio.run(_gather(m, prompts)))[0])
        for name, fn in plain.items():
            _best(times, name, _timed(lambda f=fn: f(prompts))[0])
    return times


async def _agent(model: Any, idx: int, turns: int) -> None:
    from inspect_ai.model import ChatMessageUser

    msgs: list[Any] = [ChatMessageUser(content=_prompt(idx))]
    for t in range(turns):
        out = await model.generate(msgs)
        msgs.append(out.message)
        msgs.append(ChatMessageUser(content=f"[TOOL OUTPUT: lookup]\nresult {t} for agent {idx}"))


def multi_turn(
    models: dict[str, Any], agents: int, turns: int, repeats: int
) -> dict[str, float]:
    """Best of ``repeats`` interleaved rounds."""
    times: dict[str, float] = {}
    for _ in range(repeats):
        for name, model in models.items():

            async def run(m: Any = model) -> None:
                await asyncio.gather(*(_agent(m, i, turns) for i in range(agents)))

            _best(times, name, _timed(lambda r=run: asyncio.run(r()))[0])
    return times


def memory_child(base: str, adapters: list[str]) -> None:
    """Run in a fresh process: print RSS after base load and after loading the adapters."""
    import peft  # noqa: F401  (libraries count in the baseline, not as "base")
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from charbench.provider.engine import get_shared_base

    gc.collect()
    rss0 = _rss_mb()
    shared = get_shared_base(base, dtype="float32", device="cpu")
    gc.collect()
    rss_base = _rss_mb()
    for a in adapters:
        shared.ensure_adapter(a)
    gc.collect()
    rss_all = _rss_mb()
    sizes = sum((Path(a) / "adapter_model.safetensors").stat().st_size for a in adapters)
    print(
        json.dumps(
            {
                "rss_before": rss0,
                "rss_base": rss_base,
                "rss_adapters": rss_all,
                "adapter_files_mb": sizes / 2**20,
                "resident_adapter_mb": shared.adapter_bytes() / 2**20,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=256, help="model width (default 256)")
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank (default 16)")
    ap.add_argument("--max-tokens", type=int, default=32, help="new tokens per call (32)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared, oversubscribed CPU more "
                         "threads make timings erratic)")
    ap.add_argument("--repeats", type=int, default=2,
                    help="rounds for [1] and [2], best kept (default 2)")
    ap.add_argument("--workdir", default=None, help="where to build models (default tmp)")
    ap.add_argument("--memory-child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], args.memory_child[1:])
        return

    import torch
    from fixtures.tiny_models import build_lora_adapter, build_tiny_model
    from inspect_ai.model import GenerateConfig, get_model
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_hflora_"))
    base = build_tiny_model("llama", work / f"llama_h{args.hidden}", hidden_size=args.hidden)
    adapters = [
        build_lora_adapter(
            base, work / f"adapter_{i}", seed=100 + i, r=args.rank, alpha=2 * args.rank, scale=0.05
        )
        for i in range(10)
    ]
    n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(base).parameters())
    # explicit max_connections for every provider: Inspect's adaptive concurrency (a rate-limit
    # controller that starts at 20) would otherwise cap and fragment the local batches
    cfg = GenerateConfig(temperature=0, max_tokens=args.max_tokens, max_connections=64)
    print(
        f"model: random Llama, hidden {args.hidden}, 2 layers, {n_params / 1e6:.1f}M params, "
        f"fp32, CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()}); "
        f"LoRA rank {args.rank}; greedy, max_tokens {args.max_tokens}"
    )

    lora_base = get_model(f"hf-lora/{base}", config=cfg)
    lora_ad = get_model(f"hf-lora/{base}", config=cfg, adapter=str(adapters[0]))
    hf_base = get_model(
        "hf/bench-base", config=cfg, model_path=str(base), do_sample=False, device="cpu"
    )
    hf_ad = get_model(
        "hf/bench-adapter",
        config=cfg,
        model_path=str(adapters[0]),
        tokenizer_path=str(base),
        do_sample=False,
        device="cpu",
    )

    tok = AutoTokenizer.from_pretrained(base)
    ref_base: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    ref_ad: Any = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), str(adapters[0])
    ).eval()

    def plain(model: Any) -> Any:
        def run(prompts: list[str]) -> Any:
            texts = [
                tok.apply_chat_template(
                    [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
                )
                for p in prompts
            ]
            enc = tok(
                texts,
                add_special_tokens=False,
                padding=True,
                padding_side="left",
                return_tensors="pt",
            )
            with torch.inference_mode():
                return model.generate(
                    **enc,
                    max_new_tokens=args.max_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id,
                )

        return run

    # 1. one-shot
    t = one_shot(
        {
            "hf-lora base": lora_base,
            "hf-lora adapter": lora_ad,
            "hf base": hf_base,
            "hf adapter-dir": hf_ad,
        },
        {"plain base": plain(ref_base), "plain adapter": plain(ref_ad)},
        32,
        args.repeats,
    )
    print(f"\n[1] one-shot, 32 concurrent samples (best of {args.repeats}; seconds)")
    for k, v in t.items():
        print(f"    {k:18s} {v:7.2f}s")
    print(
        f"    ratio hf-lora/hf throughput:    base {t['hf base'] / t['hf-lora base']:.2f}x, "
        f"adapter {t['hf adapter-dir'] / t['hf-lora adapter']:.2f}x  (target >= 1.1x)"
    )
    print(
        f"    ratio hf-lora/plain throughput: base {t['plain base'] / t['hf-lora base']:.2f}x, "
        f"adapter {t['plain adapter'] / t['hf-lora adapter']:.2f}x  (target >= 0.85x)"
    )

    # 2. multi-turn
    t2 = multi_turn(
        {"hf-lora adapter": lora_ad, "hf adapter-dir": hf_ad}, agents=16, turns=6,
        repeats=args.repeats,
    )
    print(f"\n[2] multi-turn loop, 16 concurrent agents x 6 turns (best of {args.repeats})")
    for k, v in t2.items():
        print(f"    {k:18s} {v:7.2f}s")
    print(
        f"    ratio hf-lora/hf throughput: {t2['hf adapter-dir'] / t2['hf-lora adapter']:.2f}x"
        "  (target >= 1.5x)"
    )

    # 3. 10 adapters x 16 prompts
    prompts = [_prompt(i) for i in range(16)]
    lora_models = [get_model(f"hf-lora/{base}", config=cfg, adapter=str(a)) for a in adapters]

    async def mixed() -> None:
        await asyncio.gather(*(_gather(m, prompts) for m in lora_models))

    t_mixed, _ = _timed(lambda: asyncio.run(mixed()))
    t_seq, _ = _timed(lambda: [asyncio.run(_gather(m, prompts)) for m in lora_models])

    def hf_sequential() -> None:
        for i, a in enumerate(adapters):
            m = get_model(
                f"hf/bench-seq-{i}",
                config=cfg,
                model_path=str(a),
                tokenizer_path=str(base),
                do_sample=False,
                device="cpu",
                memoize=False,
            )
            asyncio.run(_gather(m, prompts))
            m.api.close()

    t_hf_seq, _ = _timed(hf_sequential)
    print("\n[3] 10 adapters x 16 prompts")
    print(f"    hf-lora, one mixed run      {t_mixed:7.2f}s")
    print(f"    hf-lora, 10 runs in a row   {t_seq:7.2f}s  (base and adapters already loaded)")
    print(f"    hf, 10 one-adapter runs     {t_hf_seq:7.2f}s  (each loads base + adapter)")
    print(
        f"    speed-up vs hf 10 runs: {t_hf_seq / t_mixed:.2f}x; vs hf-lora 10 runs: "
        f"{t_seq / t_mixed:.2f}x  (target >= 3x)"
    )

    # 4. memory, fresh process
    out = (
        subprocess.run(
            [sys.executable, __file__, "--memory-child", str(base), *map(str, adapters)],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    mem = json.loads(out)
    base_mb = mem["rss_base"] - mem["rss_before"]
    added = mem["rss_adapters"] - mem["rss_base"]
    budget = (base_mb + mem["adapter_files_mb"]) * 1.1
    print("\n[4] resident memory (fresh process, RSS in MiB)")
    print(
        f"    base load +{base_mb:.1f}, 10 adapters +{added:.1f} (files "
        f"{mem['adapter_files_mb']:.1f}, resident tensors {mem['resident_adapter_mb']:.1f})"
    )
    print(
        f"    base+adapters {base_mb + added:.1f} vs budget (base + adapter files) x 1.1 = "
        f"{budget:.1f}: {'OK' if base_mb + added <= budget else 'OVER'}"
    )


if __name__ == "__main__":
    main()
