"""In-distribution task: Pure-Dove chat prompts to a persona model (``chat_persona``)."""

from charbench.chat_persona.task import chat_persona, persona_generate

__all__ = ["chat_persona", "persona_generate"]
