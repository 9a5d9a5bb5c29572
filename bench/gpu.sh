#!/usr/bin/env bash
# hf-lora GPU benchmark: a random Llama-3.1-8B-shaped model (bf16) with 10 random rank-64
# LoRA adapters, hf-lora vs Inspect's hf vs a plain batched generate loop, on one-shot,
# multi-turn and agentic-shaped (3,300-token shared prefix) workloads. No network needed.
# Usage: bench/gpu.sh [--tiny] [--workdir DIR] [--new-tokens N]
#   --tiny   CPU, 2-layer model: an end-to-end check in CI-sized time.
# Install offline first: see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec timeout "${BENCH_TIMEOUT_S:-480}" python bench/bench_gpu.py "$@"
