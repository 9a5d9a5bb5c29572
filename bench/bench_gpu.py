"""GPU benchmark (run by ``bench/gpu.sh``): hf-lora vs Inspect's ``hf`` vs a plain batched loop.

Not a test. Offline by construction: it builds a random model with Llama-3.1-8B's shapes
(hidden 4096, 32 layers, 32 heads, 8 KV heads, MLP 14336, vocabulary 128,256) in bf16, the
offline byte-level tokenizer of the test fixtures (its ids are a subset of the vocabulary;
throughput does not depend on the weights' values or the words), and 10 random rank-64 LoRA
adapters on all linear layers (alpha 128, like the released ones). Every contender decodes
exactly ``--new-tokens`` tokens per reply (the end-of-sequence token is disabled: the plain
loop passes ``min_new_tokens``, the providers run with no EOS id), greedy. Workloads, each
through ``Model.generate`` calls gathered as an eval issues them:

1. ``one-shot``: 64 single-turn prompts on one adapter;
2. ``multi-turn``: 16 conversations x 6 turns, one adapter, each turn appending the reply
   and a tool-output user turn (the conversation is re-sent every turn);
3. ``agentic``: 20 rollouts x 4 turns over the 10 adapters (2 rollouts each), every prompt
   starting with the same ~3,300-token system block (tool descriptions), as an
   ``agentic_email`` eval does.

Printed: seconds, generated tokens, tok/s, ratios against hf-lora, hf-lora's prompt tokens
submitted vs computed (prefix KV reuse), peak GPU memory against a budget of base + adapters
+ KV cache budget, and the issue's targets. ``--tiny`` runs the same code on the CPU with a
2-layer model of hidden size 64, rank-4 adapters and short replies (for CI).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

LLAMA_8B = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
            "max_position_embeddings": 8192, "rope_theta": 500000.0}
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 512,
        "max_position_embeddings": 8192}
TARGETS = {"one-shot": "hf-lora >= 1.1x hf, >= 0.9x plain loop",
           "multi-turn": "hf-lora >= 1.5x hf, >= 1.0x plain loop",
           "agentic": "hf-lora: computed <= 30% of submitted prompt tokens"}
SYSTEM_WORDS = ("You are the operations agent of Northwind. Tools: lookup_contact(name), "
                "list_calendar(day), cancel_event(id), send_chat(to, text), "
                "search_chat(query), send_email(to, cc, subject, body), hr_policy(topic). ")


def build(work: Path, shapes: dict[str, Any], rank: int, dtype: str, device: str
          ) -> tuple[Path, list[Path]]:
    """Save a random base with ``shapes`` and 10 random LoRA adapters under ``work``."""
    import torch
    from fixtures.tiny_models import build_tokenizer
    from peft import LoraConfig, get_peft_model
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    base = work / "base"
    tok = build_tokenizer("llama")
    torch.manual_seed(0)
    cfg = LlamaConfig(**shapes, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(getattr(torch, dtype)).eval()
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id,
                                               eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id)
    model.save_pretrained(base)
    tok.save_pretrained(base)
    model.name_or_path = str(base)  # recorded as the adapters' base_model_name_or_path
    adapters = []
    peft_model: Any = get_peft_model(model, LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules="all-linear", init_lora_weights=False))
    for i in range(10):
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                torch.nn.init.normal_(p, std=0.02 if "lora_A" in name else 0.002)
        path = work / f"adapter_{i}"
        peft_model.save_pretrained(path)
        adapters.append(path)
    del peft_model, model
    if device == "cuda":
        torch.cuda.empty_cache()
    return base, adapters


def workloads(tiny: bool) -> dict[str, dict[str, Any]]:
    """Sizes of each workload."""
    if tiny:
        return {"one-shot": {"n": 8, "turns": 1, "prefix": 0},
                "multi-turn": {"n": 4, "turns": 3, "prefix": 0},
                "agentic": {"n": 4, "turns": 2, "prefix": 200}}
    return {"one-shot": {"n": 64, "turns": 1, "prefix": 0},
            "multi-turn": {"n": 16, "turns": 6, "prefix": 0},
            "agentic": {"n": 20, "turns": 4, "prefix": 3300}}


def system_block(tok: Any, n_tokens: int) -> str:
    """A system text of about ``n_tokens`` tokens (0: none)."""
    if n_tokens == 0:
        return ""
    text = SYSTEM_WORDS
    while len(tok(text, add_special_tokens=False)["input_ids"]) < n_tokens:
        text += SYSTEM_WORDS
    return text


def conversations(n: int, system: str) -> list[list[dict[str, str]]]:
    """``n`` starting conversations (system block + one request)."""
    head = [{"role": "system", "content": system}] if system else []
    return [[*head, {"role": "user", "content": f"Request {i}: sort out item {i} today."}]
            for i in range(n)]


async def via_model(models: list[Any], convs: list[list[dict[str, str]]], turns: int) -> int:
    """Run ``turns`` turns through Inspect models (row i on ``models[i % len]``)."""
    from inspect_ai.model import (
        ChatMessageAssistant,
        ChatMessageSystem,
        ChatMessageUser,
    )

    kinds = {"system": ChatMessageSystem, "user": ChatMessageUser,
             "assistant": ChatMessageAssistant}
    msgs: list[list[Any]] = [[kinds[m["role"]](content=m["content"]) for m in c] for c in convs]
    calls = 0
    for t in range(turns):
        outs = await asyncio.gather(*(models[i % len(models)].generate(m)
                                      for i, m in enumerate(msgs)))
        calls += len(outs)
        for m, out in zip(msgs, outs, strict=True):
            m.append(ChatMessageAssistant(content=out.completion))
            if t < turns - 1:
                m.append(ChatMessageUser(content=f"[TOOL OUTPUT] step {t}: ok."))
    return calls


def via_plain(model: Any, tok: Any, convs: list[list[dict[str, str]]], turns: int,
              new_tokens: int, device: str) -> int:
    """The same turns through one batched ``generate`` per turn (everything re-encoded)."""
    import torch

    calls = 0
    for t in range(turns):
        texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                 for c in convs]
        enc = tok(texts, add_special_tokens=False, padding=True, padding_side="left",
                  return_tensors="pt").to(device)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 do_sample=False, pad_token_id=tok.pad_token_id)
        for i, c in enumerate(convs):
            c.append({"role": "assistant", "content": tok.decode(
                out[i, enc["input_ids"].shape[1]:], skip_special_tokens=True)})
            if t < turns - 1:
                c.append({"role": "user", "content": f"[TOOL OUTPUT] step {t}: ok."})
        calls += len(convs)
    return calls


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def run_workload(name: str, w: dict[str, Any], contenders: dict[str, Any], tok: Any,
                 new_tokens: int, device: str, shared: Any) -> dict[str, float]:
    """tok/s of each contender on one workload (and hf-lora's computed prompt share)."""
    system = system_block(tok, w["prefix"])
    multi = name == "agentic"
    row: dict[str, float] = {}
    cache = shared.prefix_cache
    before = (cache.stats.submitted, cache.stats.computed) if cache else (0, 0)
    for label, target in contenders.items():
        convs = conversations(w["n"], system)
        _sync(device)
        start = time.perf_counter()
        if label == "plain loop":
            calls = via_plain(target, tok, convs, w["turns"], new_tokens, device)
        else:
            models = target if (multi and label == "hf-lora") else target[:1]
            calls = asyncio.run(via_model(models, convs, w["turns"]))
        _sync(device)
        seconds = time.perf_counter() - start
        if multi and label != "hf-lora":
            label += " (1 adapter)"
        row[label] = calls * new_tokens / seconds
    if cache:
        sub, comp = cache.stats.submitted - before[0], cache.stats.computed - before[1]
        row["computed share"] = comp / max(sub, 1)
    return row


def load_contenders(base: Path, adapters: list[Path], new_tokens: int, device: str,
                    dtype: str) -> tuple[dict[str, Any], Any, Any]:
    """hf-lora (one model per adapter), Inspect's hf on adapter 0, and the plain peft model."""
    import torch
    from inspect_ai.model import GenerateConfig, get_model
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from charbench.provider.engine import get_shared_base

    cfg = GenerateConfig(temperature=0, max_tokens=new_tokens, max_connections=128)
    lora = [get_model(f"hf-lora/{base}", config=cfg, adapter=str(a), device=device,
                      dtype=dtype) for a in adapters]
    shared = get_shared_base(str(base), device=device, dtype=dtype)
    shared.eos_ids = frozenset()  # fixed lengths: every reply is new_tokens long
    hf = get_model("hf/bench-adapter", config=cfg, model_path=str(adapters[0]),
                   tokenizer_path=str(base), device=device, do_sample=False)
    plain: Any = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(
        base, dtype=getattr(torch, dtype)).to(device), str(adapters[0])).eval()
    tok = AutoTokenizer.from_pretrained(base)
    return {"hf-lora": lora, "hf": [hf], "plain loop": plain}, shared, tok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, tiny shapes (CI)")
    parser.add_argument("--workdir", help="where to build the model (default: a temp dir)")
    parser.add_argument("--new-tokens", type=int, default=None)
    args = parser.parse_args()
    import torch

    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/gpu.sh: no CUDA device visible to torch (use --tiny for the CPU check)")
    dtype = "float32" if args.tiny else "bfloat16"
    new_tokens = args.new_tokens or (8 if args.tiny else 128)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="charbench_gpu_bench_"))
    t0 = time.perf_counter()
    base, adapters = build(work, TINY if args.tiny else LLAMA_8B, 4 if args.tiny else 64,
                           dtype, device)
    print(f"built base + 10 adapters in {time.perf_counter() - t0:.0f} s ({device}, {dtype})")
    contenders, shared, tok = load_contenders(base, adapters, new_tokens, device, dtype)
    warm = {"n": 2, "turns": 1, "prefix": 0}  # first calls pay kernel and allocator warm-up
    run_workload("warm-up", warm, contenders, tok, new_tokens, device, shared)
    results = {}
    for name, w in workloads(args.tiny).items():
        results[name] = run_workload(name, w, contenders, tok, new_tokens, device, shared)
        _print(name, results[name])
    mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    budget = (sum(p.numel() * p.element_size() for p in shared.model.parameters())
              + shared.adapter_bytes() + (shared.prefix_cache.max_bytes
                                          if shared.prefix_cache else 0)) / 2**30
    verdict = "" if device == "cpu" else (
        f" ({'within' if mem <= budget * 1.5 else 'OVER'} 1.5x the budget, activations and "
        "the other contenders' models included)")
    print(f"peak GPU memory {mem:.1f} GiB; budget base + adapters + KV cache = "
          f"{budget:.1f} GiB{verdict}")
    print(json.dumps({"results": results, "peak_gib": mem, "budget_gib": budget}))


def _print(name: str, row: dict[str, float]) -> None:
    lead = row["hf-lora"]
    parts = [f"{k} {v:.0f} tok/s" + ("" if k == "hf-lora" else f" ({lead / v:.2f}x)")
             for k, v in row.items() if k != "computed share"]
    share = f"; computed {row['computed share']:.0%} of submitted" \
        if "computed share" in row else ""
    print(f"{name:10}: " + ", ".join(parts) + share + f"   [target: {TARGETS[name]}]")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
