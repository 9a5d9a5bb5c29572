"""charbench: does a persona trained into an LLM in chat survive when the model works as an agent?

Inspect AI tasks (``chat_persona``; ``agentic_email``), the ``hf-lora`` model provider and the
persona classifier scorer. See ``docs/architecture.md``.
"""

from charbench.agentic_email import agentic_email
from charbench.chat_persona import chat_persona

__version__ = "0.1.0"

__all__ = ["__version__", "agentic_email", "chat_persona"]
