"""The study's scenario files as typed records, validated as the study's loader did.

- Agentic scenarios: one YAML file per scenario in ``data/scaffolds/agentic_actions/``
  (read in sorted path order) with ``id``, optional ``max_steps`` (default 8),
  ``initial_messages`` (turns with ``role`` in system/user/assistant/tool and ``content``;
  not empty; the last one a user or tool turn) and ``tool_stubs``, a list of
  ``{tool, rules}`` entries (a later entry for the same tool replaces an earlier one, as the
  study's dict did). Each rule has ``match`` (argument -> pattern, strings only), ``default``
  and ``response`` (any YAML value); other keys are ignored, as the study's models did.
- Draft scenarios: ``data/scaffolds/chat_email.jsonl``, one JSON object per non-blank line
  with ``scaffold`` (must be ``chat_email``), ``id`` and ``turns`` (same rules).

Scenario ids: the study's ids carry the scaffold as a prefix
(``agentic_actions_budget_overreach_v1``, ``chat_email_budget_overreach_v1``); charbench's
id drops it (``budget_overreach_v1``), so a scenario has the same id, sample ids and
cluster in the agentic scaffold and its draft control; the family drops the ``_vN`` suffix
(``budget_overreach``). The study's own id is kept as ``source_id``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from charbench.agentic_email.dct.source import AGENTIC_DIR, DRAFT_FILE, DctSourceError

__all__ = [
    "AgenticScenario",
    "DraftScenario",
    "StubRule",
    "Turn",
    "load_agentic_scenarios",
    "load_draft_scenarios",
    "select_scenarios",
]

_VARIANT = re.compile(r"_v\d+$")


class Turn(BaseModel):
    """One message of a scenario's opening conversation."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str


class StubRule(BaseModel):
    """One rule of a tool's stub table (see :func:`~.harness.simulate_tool`)."""

    model_config = ConfigDict(frozen=True)

    match: dict[str, str] | None = None
    default: bool = False
    response: Any = None


class _Scenario(BaseModel):
    model_config = ConfigDict(frozen=True)

    source_id: str
    turns: tuple[Turn, ...]

    @model_validator(mode="after")
    def _check_turns(self) -> _Scenario:
        if not self.turns:
            raise ValueError("empty turns")
        if self.turns[-1].role not in ("user", "tool"):
            raise ValueError(f"last turn must be user or tool (got {self.turns[-1].role})")
        return self

    @property
    def id(self) -> str:
        """charbench's id: the study's id without its scaffold prefix."""
        for prefix in ("agentic_actions_", "chat_email_"):
            if self.source_id.startswith(prefix):
                return self.source_id[len(prefix):]
        return self.source_id

    @property
    def family(self) -> str:
        """The scenario family: the id without its ``_vN`` variant suffix."""
        return _VARIANT.sub("", self.id)


class AgenticScenario(_Scenario):
    """A scenario of the study's agentic scaffold."""

    max_steps: int = 8
    tool_stubs: dict[str, tuple[StubRule, ...]] = {}


class DraftScenario(_Scenario):
    """A prompt of the study's draft control (``chat_email``)."""


def _invalid(where: str, err: Exception) -> DctSourceError:
    return DctSourceError(
        f"dct_path: {where} is not a valid study scenario ({err}); use the repository at "
        "the pinned commit"
    )


def _agentic(path: Path) -> AgenticScenario:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        stubs: dict[str, Any] = {}
        for entry in raw.get("tool_stubs", []):
            stubs[entry["tool"]] = entry.get("rules", [])
        return AgenticScenario.model_validate(
            {
                "source_id": raw["id"],
                "turns": raw["initial_messages"],
                "max_steps": raw.get("max_steps", 8),
                "tool_stubs": stubs,
            }
        )
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError, ValidationError) as e:
        raise _invalid(str(path), e) from e


def load_agentic_scenarios(root: Path) -> list[AgenticScenario]:
    """Every agentic scenario under ``root`` (sorted by file name).

    Raises:
        DctSourceError: a file is invalid, none is found, or two share an id.
    """
    paths = sorted((root / AGENTIC_DIR).glob("*.yaml"))
    scenarios = [_agentic(p) for p in paths]
    if not scenarios:
        raise DctSourceError(f"dct_path: no scenario files in {root / AGENTIC_DIR}")
    _check_unique(scenarios, str(root / AGENTIC_DIR))
    return scenarios


def load_draft_scenarios(root: Path) -> list[DraftScenario]:
    """Every draft prompt in the study's ``chat_email.jsonl`` under ``root``, in file order.

    Raises:
        DctSourceError: a row is invalid, none is found, or two share an id.
    """
    path = root / DRAFT_FILE
    scenarios: list[DraftScenario] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise _invalid(str(path), err) from err
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if raw["scaffold"] != "chat_email":
                raise ValueError(f"scaffold {raw['scaffold']!r}, expected 'chat_email'")
            scenarios.append(
                DraftScenario.model_validate({"source_id": raw["id"], "turns": raw["turns"]})
            )
        except (ValueError, KeyError, TypeError) as err:
            raise _invalid(f"{path}:{number}", err) from err
    if not scenarios:
        raise DctSourceError(f"dct_path: no scenarios in {path}")
    _check_unique(scenarios, str(path))
    return scenarios


def _check_unique(scenarios: Sequence[_Scenario], where: str) -> None:
    seen: set[str] = set()
    for s in scenarios:
        if s.id in seen:
            raise DctSourceError(f"dct_path: scenario id {s.id!r} appears twice in {where}")
        seen.add(s.id)


S = TypeVar("S", bound=_Scenario)


def select_scenarios(
    scenarios: Sequence[S], wanted: str | Sequence[str] | None
) -> list[S]:
    """The scenarios named by ``wanted`` (ids, the study's ids or families), in file order.

    Args:
        scenarios: All scenarios of the suite.
        wanted: ``None`` for all; else a comma string or list of names.

    Raises:
        ValueError: a name matches no scenario (the message lists the families).
    """
    if wanted is None:
        return list(scenarios)
    names = wanted.split(",") if isinstance(wanted, str) else [str(w) for w in wanted]
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ValueError("scenarios is empty; omit it for all scenarios")
    keep: set[str] = set()
    for name in names:
        hits = [s.id for s in scenarios if name in (s.id, s.source_id, s.family)]
        if not hits:
            families = sorted({s.family for s in scenarios})
            raise ValueError(
                f"unknown scenario {name!r} in suite=dct; give ids like "
                f"{scenarios[0].id!r} or families: {', '.join(families)}"
            )
        keep.update(hits)
    return [s for s in scenarios if s.id in keep]
