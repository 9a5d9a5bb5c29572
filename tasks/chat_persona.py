"""``inspect eval tasks/chat_persona.py --model ... [-T ...]`` (see charbench.chat_persona)."""

from charbench.chat_persona import chat_persona

__all__ = ["chat_persona"]
