"""Scenario suites: where the scenarios of ``agentic_email`` come from.

A suite is a named set of scenarios, loaded and validated on request. charbench's own
(:data:`CHARBENCH`: the workplace and scenario families of ``data/suites/charbench/``, with
Inspect's native tools) is one; another suite lives in its own subpackage and implements the
same :class:`ScenarioSuite`, so the task picks a suite by name and asks it for scenarios. The
task relies on a scenario's unique ``id`` (sample ids, the cluster) and its ``family`` (the
coarser resampling unit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from charbench.agentic_email.models import Scenario, Workplace
from charbench.agentic_email.scenarios import SCENARIO_DIR, load_scenarios
from charbench.agentic_email.workplace import load_workplace, load_workplace_file


class SuiteScenario(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def family(self) -> str: ...


S_co = TypeVar("S_co", bound=SuiteScenario, covariant=True)


class ScenarioSuite(Protocol[S_co]):
    @property
    def name(self) -> str: ...

    def load(self, select: str | Sequence[str] | None = None) -> Sequence[S_co]:
        """The selected scenarios (``None``: all) in the suite's order. Raises ValueError
        for bad data (a ``DataError`` naming file and field) or an unknown selection."""
        ...


@dataclass(frozen=True)
class CharbenchSuite:
    """charbench's suite: a workplace file (``None``: the packaged one, cached) and a
    directory of scenario family files."""

    workplace_file: Path | None = None
    directory: Path = SCENARIO_DIR
    name: str = "charbench"

    def workplace(self) -> Workplace:
        """The standing workplace the scenarios' tools add to."""
        if self.workplace_file is None:
            return load_workplace()
        return load_workplace_file(self.workplace_file)

    def load(self, select: str | Sequence[str] | None = None) -> list[Scenario]:
        """See :func:`~charbench.agentic_email.scenarios.load_scenarios`."""
        wp = None if self.workplace_file is None else self.workplace()
        return load_scenarios(select, directory=self.directory, workplace=wp)


CHARBENCH = CharbenchSuite()
"""The packaged charbench suite."""


def sample_metadata(
    persona: str, personas: Sequence[str], scenario: str, family: str, *, scaffold: str,
    suite: str, persona_prompt: bool, cluster_by_family: bool, **extra: Any,
) -> dict[str, Any]:
    """The metadata every ``agentic_email`` sample carries, in both suites.

    ``cluster`` (the bootstrap unit) is the scenario's family when ``cluster_by_family``,
    else the scenario id; ``extra`` adds the suite's own keys.
    """
    return {
        "persona": persona,
        "personas": list(personas),
        "cluster": family if cluster_by_family else scenario,
        "task": "agentic_email",
        "scenario": scenario,
        "family": family,
        "scaffold": scaffold,
        "suite": suite,
        "persona_prompt": persona_prompt,
        **extra,
    }
