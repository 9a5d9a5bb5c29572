"""The system prompt of a sample, added by the solver instead of stored in its input.

Inspect's sample list shows each sample's ``Sample.input``. charbench's tasks therefore keep
only the user request in the input and rebuild the system message(s) from the sample's
metadata (persona, ``persona_prompt``, scenario, scaffold) in the first solver,
:func:`with_system_prompt`, before any generation. The messages the model sees are the
system message(s) followed by the input, exactly as if both had been in the input; the
system text is never stored in the sample metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from inspect_ai.model import ChatMessage
from inspect_ai.solver import Generate, Solver, TaskState, solver

__all__ = ["SystemFor", "with_system_prompt"]

SystemFor = Callable[[TaskState], Sequence[ChatMessage]]
"""Builds a sample's system message(s) from its state (metadata); ``[]`` for none."""


@solver
def with_system_prompt(system_for: SystemFor) -> Solver:
    """Put the sample's system message(s) first in the conversation.

    Args:
        system_for: Returns the system message(s) of a sample (in order; ``[]`` for none),
            built from ``state.metadata`` with the task's own prompt builders. Its errors
            (a persona without a description) fail that sample only.

    Returns:
        A solver that sets ``state.messages`` to ``[*system_for(state), *state.messages]``
        and generates nothing; run it first, before the generating solver. The added
        messages are marked ``source="input"`` as Inspect marks the input's own, so the
        conversation is the one a ``[system, user]`` input would have given.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        system = [m.model_copy(update={"source": "input"}) for m in system_for(state)]
        if system:
            state.messages = [*system, *state.messages]
        return state

    return solve
