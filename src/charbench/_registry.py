"""Inspect AI entry point: registers the ``hf-lora`` model provider and charbench's tasks.

Inspect imports this module (``[project.entry-points.inspect_ai]``) before it resolves
``--model``, so it must stay cheap: torch, transformers and peft are imported only inside
the provider factory.
"""

from __future__ import annotations

from inspect_ai.model import ModelAPI, modelapi


@modelapi(name="hf-lora")
def hf_lora() -> type[ModelAPI]:
    """Hugging Face causal LM with LoRA adapters (see :mod:`charbench.provider`)."""
    from charbench.provider._api import HFLoraAPI

    return HFLoraAPI


# Tasks: importing registers them as charbench/<name>. (Enabled by the integrator once the
# task packages exist.)
from charbench.agentic_email import agentic_email  # noqa: E402
from charbench.chat_persona import chat_persona  # noqa: E402

__all__ = ["agentic_email", "chat_persona", "hf_lora"]
