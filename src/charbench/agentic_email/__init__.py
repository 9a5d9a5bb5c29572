"""``agentic_email``: does a chat-trained persona survive when the model works as an agent?

A simulated workplace (:mod:`~charbench.agentic_email.workplace`,
:mod:`~charbench.agentic_email.scenarios`, :mod:`~charbench.agentic_email.tools`), the agent
loop (:mod:`~charbench.agentic_email.loop`), the prompts of the agentic scaffold and its
draft and chat controls (:mod:`~charbench.agentic_email.prompts`), email-body extraction
(:mod:`~charbench.agentic_email.extract`) and the task itself
(:mod:`~charbench.agentic_email.task`).
"""

from charbench.agentic_email.task import agentic_email

__all__ = ["agentic_email"]
