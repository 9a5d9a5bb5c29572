"""charbench: does a persona trained into an LLM in chat survive when the model works as an agent?

Inspect AI tasks (``chat_persona``; ``agentic_email``), the ``hf-lora`` model provider and the
persona classifier scorer. See ``docs/architecture.md``.

The package is lazy: importing ``charbench`` (or any of its leaf modules, such as the
provider's tool-call protocol) does not import the tasks. ``from charbench import
chat_persona, agentic_email`` still works; the task module is imported on first access.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "agentic_email", "chat_persona"]

_LAZY_TASKS = {
    "agentic_email": "charbench.agentic_email",
    "chat_persona": "charbench.chat_persona",
}

if TYPE_CHECKING:  # pragma: no cover
    from charbench.agentic_email import agentic_email
    from charbench.chat_persona import chat_persona


class _Package(types.ModuleType):
    """``charbench`` itself: its task attributes are the task functions, not the subpackages.

    Importing ``charbench.chat_persona.dataset`` makes Python bind the subpackage
    ``charbench.chat_persona`` as an attribute of ``charbench``; this keeps that attribute the
    task function of the same name (as the eager package did), so ``from charbench import
    chat_persona`` gives the task whatever was imported before.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY_TASKS and isinstance(value, types.ModuleType):
            value = getattr(value, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    """The task functions, imported on first access (PEP 562)."""
    module = _LAZY_TASKS.get(name)
    if module is None:
        raise AttributeError(f"module 'charbench' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
