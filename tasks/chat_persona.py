"""``inspect eval tasks/chat_persona.py --model ... [-T ...]`` (see charbench.chat_persona).

Inspect finds the tasks of a file by looking for ``@task`` in its source, so this file
declares one that forwards every ``-T`` option to :func:`charbench.chat_persona.chat_persona`
(whose docstring documents them; the same task is registered as ``charbench/chat_persona``).
"""

from typing import Any

from inspect_ai import Task, task

from charbench.chat_persona import chat_persona as _chat_persona


@task
def chat_persona(**task_args: Any) -> Task:
    """Persona classification of chat replies; see charbench.chat_persona.chat_persona."""
    return _chat_persona(**task_args)
