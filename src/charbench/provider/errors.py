"""The error type of the ``hf-lora`` provider (no heavy imports)."""

from __future__ import annotations

from rich.markup import escape

from charbench._inspect import PrerequisiteError


class HFLoraError(PrerequisiteError, ValueError):
    """A user-facing ``hf-lora`` error: says what was wrong and what to do.

    It is a :class:`ValueError` (so library callers can catch it) and an Inspect
    ``PrerequisiteError`` (so the ``inspect`` CLI prints the message instead of a deep
    traceback).
    """

    def __init__(self, message: str) -> None:
        # escaped: Inspect's CLI prints a PrerequisiteError's ``message`` with rich, which
        # reads brackets ("org/name[/sub]", a path, a quoted value) as markup and crashes
        # into a raw traceback instead of printing it; str(err) stays the plain text
        PrerequisiteError.__init__(self, escape(message))
        ValueError.__init__(self, message)
        self.text = message

    def __str__(self) -> str:
        return self.text
