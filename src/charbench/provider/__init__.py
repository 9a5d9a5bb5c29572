"""The ``hf-lora`` Inspect model provider: a Hugging Face causal LM with LoRA adapters.

Usage (after ``pip install -e .``, which registers the provider through the package's
``inspect_ai`` entry point)::

    inspect eval tasks/chat_persona.py --model hf-lora/meta-llama/Llama-3.1-8B-Instruct \\
        -M adapter=maius/llama-3.1-8b-it-personas/sarcasm
    inspect eval tasks/chat_persona.py --model hf-lora/Qwen/Qwen2.5-7B-Instruct -M stage=full
    inspect eval tasks/chat_persona.py --model hf-lora//path/to/base -M adapter=/path/to/adapter

Modules: :mod:`._api` (``HFLoraAPI``, the ModelAPI), :mod:`.engine` (shared bases, batching
worker), :mod:`.adapters` (verified adapter loading), :mod:`.resolve` (local/Hub
resolution), :mod:`.options` (the ``-M`` args, validated before anything loads),
:mod:`.prompt_checks` (context length and control-token checks of a rendered prompt),
:mod:`.chat` (chat templates), :mod:`.tool_protocol` (tool-call text protocols),
:mod:`.errors`. Importing this package does not import torch.
"""

from charbench.provider.errors import HFLoraError

__all__ = ["HFLoraError"]
