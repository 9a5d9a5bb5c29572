"""``inspect eval tasks/agentic_email.py --model ... [-T ...]`` (see charbench.agentic_email).

Inspect finds the tasks of a file by looking for ``@task`` in its source, so this file
declares one that forwards every ``-T`` option to :func:`charbench.agentic_email.agentic_email`
(whose docstring documents them; the same task is registered as ``charbench/agentic_email``).
"""

from typing import Any

from inspect_ai import Task, task

from charbench.agentic_email import agentic_email as _agentic_email


@task
def agentic_email(**task_args: Any) -> Task:
    """Persona survival in an agentic email task; see charbench.agentic_email.agentic_email."""
    return _agentic_email(**task_args)
