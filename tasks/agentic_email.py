"""``inspect eval tasks/agentic_email.py --model ... [-T ...]`` (see charbench.agentic_email)."""

from charbench.agentic_email import agentic_email

__all__ = ["agentic_email"]
