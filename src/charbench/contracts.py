"""Typed contracts between charbench's tasks, scorer, metrics and report (a leaf module).

Three things cross module boundaries, and each has exactly one definition here:

- **Task labels** (:data:`TaskLabel`): the eval-metadata ``task`` that ``charbench report``
  groups cells by. ``chat`` is chat_persona; ``agentic``, ``draft`` and ``chat-email`` are
  agentic_email's scaffolds; ``agentic-any`` / ``agentic-forced`` are the agentic scaffold
  under a required tool choice (the model did not choose to call tools, so these never pool
  with ``agentic``).
- **Eval metadata** (:class:`EvalMeta`): what a task writes as
  ``Task(metadata={"charbench": EvalMeta(...).model_dump()})`` and the report reads back.
- **Per-sample score fields** (:class:`ScoreFields`): what the persona scorer writes as
  ``Score.metadata`` and what the in-log metrics and the report both read, through
  :meth:`ScoreFields.read` (one reading, one set of fallbacks).

Old logs stay readable: every field added after the first release is optional and its
absence means what it meant before (``suite`` absent = ``charbench``, ``persona_set`` absent
= the built-in OCT set, ``family`` absent = the cluster, ``replicate`` absent = 0, ...).
This module imports nothing from charbench (pydantic only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

TaskLabel = Literal["chat", "agentic", "draft", "chat-email", "agentic-any", "agentic-forced"]
"""Eval-metadata task labels (one report cell per base x condition x label)."""

TASK_LABELS: Final[tuple[str, ...]] = get_args(TaskLabel)
CHAT: Final = "chat"
AGENTIC: Final = "agentic"
DRAFT: Final = "draft"
CHAT_EMAIL: Final = "chat-email"
AGENTIC_ANY: Final = "agentic-any"
AGENTIC_FORCED: Final = "agentic-forced"

SCAFFOLD_LABELS: Final[Mapping[str, str]] = {"agentic": AGENTIC, "draft": DRAFT, "chat": CHAT_EMAIL}
"""agentic_email's ``scaffold`` -> task label."""
FORCED_LABELS: Final[Mapping[str, str]] = {"any": AGENTIC_ANY, "send_email": AGENTIC_FORCED}
"""agentic_email's required ``tool_choice`` -> task label (agentic scaffold only)."""
EMAIL_TASKS: Final[frozenset[str]] = frozenset(
    {AGENTIC, DRAFT, CHAT_EMAIL, AGENTIC_ANY, AGENTIC_FORCED}
)
"""Labels of agentic_email's scaffolds: their samples end in an email outcome."""

Suite = Literal["charbench", "dct"]
"""Which scenario suite an agentic_email eval ran (absent in old logs = ``charbench``)."""
Resample = Literal["row", "cluster", "family"]
"""Bootstrap unit: each sample, each prompt/scenario (``cluster``), or each scenario family
(all variants of one family resampled together)."""
RESAMPLES: Final[tuple[str, ...]] = get_args(Resample)

# sample outcomes (Score.metadata["outcome"])
REPLIED: Final = "replied"
EMPTY: Final = "empty"
EMAILED: Final = "emailed"
NO_EMAIL: Final = "no_email"
MALFORMED: Final = "malformed"
TURN_LIMIT: Final = "turn_limit"
UNPARSED_CALL: Final = "unparsed_call"
EMPTY_AFTER_TOOL: Final = "empty_after_tool"
EmailOutcome = Literal[
    "emailed", "no_email", "unparsed_call", "empty_after_tool", "malformed", "turn_limit"
]
EMAIL_OUTCOMES: Final[tuple[str, ...]] = get_args(EmailOutcome)
"""Every outcome an email task may record; each is counted per persona."""
BUILTIN_PERSONA_SET: Final = "oct"
"""Name of the built-in persona set (what an absent ``persona_set`` means)."""


def _names(value: Any) -> tuple[str, ...]:
    """A persona list from a list or a comma-joined string (Inspect turns ``a,b`` into a list)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(s.strip() for s in value.split(",") if s.strip())
    return tuple(str(v) for v in value)


class PersonaSet(BaseModel):
    """The persona set an eval used: its name and a content hash (None for the built-in)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = BUILTIN_PERSONA_SET
    hash: str | None = None


class EvalMeta(BaseModel):
    """The ``charbench`` eval metadata (docs/architecture.md, "Eval metadata").

    ``task``, ``base``, ``condition`` and ``personas`` are required of a charbench log;
    ``base``/``condition`` may be None in a task built outside an eval (the report then fills
    them from the logged model). Unknown keys are kept (tasks may add their own settings).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    task: str
    base: str | None
    condition: str | None
    personas: tuple[str, ...]
    classifier: str | None = None
    restrict: bool = False
    suffix: str | None = None
    selection: str | None = None
    persona_prompt: bool = False
    suite: Suite = "charbench"
    persona_set: PersonaSet = Field(default_factory=PersonaSet)
    text_tool_calls: bool = False
    resample: Resample | None = None

    @field_validator("personas", mode="before")
    @classmethod
    def _personas(cls, value: Any) -> tuple[str, ...]:
        return _names(value)

    @field_validator("persona_set", mode="before")
    @classmethod
    def _persona_set(cls, value: Any) -> Any:
        return PersonaSet() if value is None else value

    @field_validator("suite", mode="before")
    @classmethod
    def _suite(cls, value: Any) -> Any:
        return "charbench" if value is None else value

    @property
    def email_task(self) -> bool:
        """Whether this eval is one of agentic_email's scaffolds (email outcomes)."""
        return self.task in EMAIL_TASKS

    def as_task_metadata(self) -> dict[str, Any]:
        """``{"charbench": {...}}`` for ``Task(metadata=...)``."""
        return {"charbench": self.model_dump(mode="json")}


REQUIRED_EVAL_KEYS: Final[tuple[str, ...]] = ("task", "base", "condition", "personas")


class ScoreFields(BaseModel):
    """The per-sample fields every statistic is computed from (``Score.metadata``).

    Attributes:
        gold: gold persona.
        pred: predicted persona; None when nothing was classified (a miss).
        labels: the evaluated personas (the macro-F1 label set).
        cluster: bootstrap cluster (prompt or scenario id; the sample id when absent).
        family: scenario family (absent: the cluster, so ``family`` resampling equals
            ``cluster`` resampling on data without families).
        outcome: how the sample ended (chat ``replied``/``empty``; email tasks see
            :data:`EMAIL_OUTCOMES`; ``""`` when unknown).
        agentic: scored as an email task (survivor and intent-to-treat statistics).
        epoch: Inspect epoch of the sample (1 when absent).
        replicate: which independent run of the cell the sample came from (0 in the log;
            the report numbers the replicates of a cell).
        text: the exact text given to the classifier (None: nothing classified, or an old
            log).
        terminated: suite=dct's ending (``final``, ``max_steps``, ``malformed``).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    gold: str
    pred: str | None = None
    labels: tuple[str, ...]
    cluster: str
    family: str | None = None
    outcome: str = ""
    agentic: bool = False
    classifier: str | None = None
    restrict: bool = False
    probs: dict[str, float] = Field(default_factory=dict)
    epoch: int = 1
    replicate: int = 0
    text: str | None = None
    terminated: str | None = None

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> tuple[str, ...]:
        return _names(value)

    @field_validator("pred", mode="before")
    @classmethod
    def _pred(cls, value: Any) -> str | None:
        return None if value in (None, "") else str(value)

    @property
    def unit_family(self) -> str:
        """The family, or the cluster when the sample has none."""
        return self.family if self.family is not None else self.cluster

    def row_key(self, sample_id: str) -> str:
        """The unit of ``row`` resampling: one sample, epoch and replicate."""
        return f"{sample_id}\x1f{self.epoch}\x1f{self.replicate}"

    @classmethod
    def read(
        cls,
        score: Mapping[str, Any] | None,
        sample: Mapping[str, Any] | None,
        sample_id: str,
    ) -> ScoreFields:
        """Read the fields from score metadata, falling back to the sample metadata.

        The one place with fallbacks: ``labels`` <- sample ``personas``; ``cluster`` <-
        sample ``cluster`` <- ``sample:<id>``; ``family`` <- sample ``family``; ``gold`` <-
        sample ``persona``.

        Raises:
            ValueError: the score has no ``gold`` and the sample no ``persona`` (not a
                persona score), or no label set can be found.
        """
        md = dict(score or {})
        smd = dict(sample or {})
        md.setdefault("gold", smd.get("persona"))
        if md["gold"] is None:
            raise ValueError(
                f"score of sample {sample_id!r} has no 'gold' in its metadata; persona "
                "statistics need scores from charbench.scoring.persona_scorer"
            )
        if md.get("labels") is None:
            md["labels"] = smd.get("personas")
        if not md.get("labels"):
            raise ValueError(
                f"score of sample {sample_id!r} carries no 'labels' (evaluated personas); "
                "score with charbench.scoring.persona_scorer"
            )
        cluster = md.get("cluster", smd.get("cluster"))
        md["cluster"] = str(cluster) if cluster is not None else f"sample:{sample_id}"
        family = md.get("family", smd.get("family"))
        md["family"] = None if family is None else str(family)
        md["gold"] = str(md["gold"])
        md["outcome"] = "" if md.get("outcome") is None else str(md["outcome"])
        return cls.model_validate(md)
