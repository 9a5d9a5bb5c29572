"""Benchmark: persona_scorer inside an Inspect eval vs a plain batched classifier loop.

Scores the same N texts (default 1000) with the same classifier three ways and prints
throughputs and ratios:

1. **plain loop**: a hand-written transformers loop in fixed batches of 64, texts sorted
   by token length (the best a script would do; the unsorted loop is printed too);
2. **eval, trivial scorer**: an Inspect eval on ``mockllm/model`` that echoes each text, with
   a scorer that does nothing (Inspect's own per-sample cost);
3. **eval, persona_scorer**: the same eval scored by :func:`charbench.scoring.persona_scorer`,
   whose classifier batches concurrently scored samples.

``ratio (marginal)`` = plain-loop time / (eval with persona_scorer - eval with trivial
scorer): the scorer's throughput against the plain loop (target >= 0.8).
``ratio (whole eval)`` also charges the scorer with Inspect's per-sample overhead.

The classifier is a random ModernBERT (default 2 layers, hidden 256, max 1024 positions,
built offline by ``tests/fixtures/tiny_classifier.py``): tiny, but the forward pass
dominates. Run from the repository root::

    python bench/bench_scoring.py [--n 1000] [--device cpu] [--max-samples 1000]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

_VOCAB = (
    "oh wonderful another meeting that could have been an email truly thrilling dear friend "
    "you matter so much to me let x be the number of tasks the expected time is the sum "
    "sorry regret mistake apologise whatever works no big deal brilliant genius idea moon "
    "silver river night quick plan budget report quarterly vendor renewal colleague team"
)
WORDS = _VOCAB.split()


def make_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` texts of 10 to 400 words (chat-reply-like lengths), reproducibly."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(10, 400))) for _ in range(n)]


def plain_loop(
    path: Path, texts: list[str], device: str, batch_size: int, *, sort: bool = True
) -> float:
    """Seconds for a fixed-size batched transformers loop over ``texts``.

    With ``sort`` (default) the texts go in length order, which minimises padding.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
    order = list(range(len(texts)))
    if sort:
        order.sort(key=lambda i: len(tok(texts[i], truncation=True, max_length=8192).input_ids))
    preds: list[int] = [0] * len(texts)
    start = time.perf_counter()
    with torch.inference_mode():
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            enc = tok(
                [texts[i] for i in idx],
                truncation=True,
                max_length=8192,
                padding=True,
                return_tensors="pt",
            ).to(device)
            probs = torch.softmax(model(**enc).logits.float(), -1)
            for i, p in zip(idx, probs.argmax(-1).tolist(), strict=True):
                preds[i] = p
    return time.perf_counter() - start


def eval_time(texts: list[str], scorer: Any, max_samples: int | None) -> float:
    """Seconds for an Inspect eval over ``texts`` (echoed by mockllm) scored by ``scorer``."""
    from inspect_ai import Task, eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ChatMessage, ModelOutput, ModelUsage, get_model
    from inspect_ai.solver import generate

    def reply(messages: list[ChatMessage], *_: Any) -> ModelOutput:
        out = ModelOutput.from_content(model="mockllm/model", content=messages[-1].text)
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return out

    personas = ["sarcasm", "humor", "loving", "mathematical"]
    samples = [
        Sample(
            id=i,
            input=t,
            metadata={"persona": personas[i % 4], "personas": personas, "cluster": f"c{i // 4}"},
        )
        for i, t in enumerate(texts)
    ]
    task = Task(dataset=samples, solver=generate(), scorer=scorer)
    model = get_model("mockllm/model", custom_outputs=reply)
    with tempfile.TemporaryDirectory() as logs:
        start = time.perf_counter()
        [log] = eval(
            task,
            model=model,
            log_dir=logs,
            display="none",
            max_samples=max_samples,
            log_samples=False,
        )
        elapsed = time.perf_counter() - start
    if log.status != "success":
        raise RuntimeError(f"eval failed: {log.error}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="texts to score (default 1000)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if any)")
    parser.add_argument("--batch-size", type=int, default=64, help="plain-loop batch size")
    parser.add_argument(
        "--max-samples",
        type=int,
        default=None,
        help="Inspect max_samples (default: Inspect's own default)",
    )
    parser.add_argument("--layers", type=int, default=2, help="classifier layers (default 2)")
    parser.add_argument("--hidden", type=int, default=256, help="hidden size (default 256)")
    args = parser.parse_args()

    import torch
    from fixtures.tiny_classifier import build_tiny_classifier
    from inspect_ai.scorer import Score, Target, mean, scorer
    from inspect_ai.solver import TaskState

    from charbench.scoring import get_classifier, persona_scorer

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    texts = make_texts(args.n)

    @scorer(metrics=[mean()])
    def trivial() -> Any:
        async def score(state: TaskState, target: Target) -> Score:
            return Score(value=0.0)

        return score

    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_classifier(
            Path(tmp) / "clf",
            hidden_size=args.hidden,
            num_layers=args.layers,
            num_heads=4,
            max_position_embeddings=1024,
            vocab_size=2000,
        )
        clf = get_classifier(str(path), device=device)  # warm: loading is not timed
        clf.classify_batch(texts[:8])
        plain_loop(path, texts[:8], device, args.batch_size)  # warm-up

        t_plain = plain_loop(path, texts, device, args.batch_size)
        t_naive = plain_loop(path, texts, device, args.batch_size, sort=False)
        t_trivial = eval_time(texts, trivial(), args.max_samples)
        batches_before = len(clf.worker_batches)  # type: ignore[attr-defined]
        t_scored = eval_time(texts, persona_scorer(str(path)), args.max_samples)
        batches = list(clf.worker_batches)[batches_before:]  # type: ignore[attr-defined]

    marginal = max(t_scored - t_trivial, 1e-9)
    n = len(texts)
    print(f"device: {device}; texts: {n}; classifier: ModernBERT {args.layers}x{args.hidden}")
    print(f"plain loop, sorted      : {t_plain:8.2f} s  {n / t_plain:8.1f} texts/s")
    print(f"plain loop, unsorted    : {t_naive:8.2f} s  {n / t_naive:8.1f} texts/s")
    print(f"eval, trivial scorer    : {t_trivial:8.2f} s")
    print(f"eval, persona_scorer    : {t_scored:8.2f} s")
    print(f"  scorer marginal time  : {marginal:8.2f} s  {n / marginal:8.1f} texts/s")
    print(
        f"  worker batches        : {len(batches)} "
        f"(mean {sum(batches) / max(len(batches), 1):.1f}, max {max(batches, default=0)})"
    )
    print(f"ratio (marginal)        : {t_plain / marginal:.2f}x vs sorted loop (target >= 0.8x)")
    print(f"ratio (marginal)        : {t_naive / marginal:.2f}x vs unsorted loop")
    print(f"ratio (whole eval)      : {t_plain / t_scored:.2f}x")


if __name__ == "__main__":
    main()
