"""Published reference numbers (REFERENCE.md section 7) as data.

The numbers are macro-F1 over the 10 default personas (no misalignment), no break-character
suffix, from the depth-character-training study (DCT). ID chat used DCT's Pure-Dove selection
(about 3000 samples); the draft control and the agentic email task used 50 scenarios x 10
personas (500 rollouts); the agentic macro-F1 is over the rollouts that sent an email only
(``n_emailed``), which is charbench's ``macro_f1`` for agentic cells, not ``macro_f1_itt``.
The agentic CIs of the full stage are DCT's row bootstrap (1000 resamples), not charbench's
cluster bootstrap; on the study's data they are about as wide as a scenario-cluster CI.
"""

from __future__ import annotations

from dataclasses import dataclass

from charbench.personas import DEFAULT_PERSONAS, released_base


@dataclass(frozen=True)
class PublishedCell:
    """One published number.

    Attributes:
        base: short name of the released base (``llama``, ``qwen``, ``gemma``).
        stage: ``base``, ``distillation`` or ``full``.
        task: ``chat``, ``draft`` or ``agentic`` (charbench's eval-metadata task names).
        macro_f1: published macro-F1 (two decimals, as printed).
        n: number of samples scored (ID chat "about 3000"; agentic: emails sent of 500).
        ci_low: lower end of the published 95% CI, when one was published.
        ci_high: upper end of the published 95% CI, when one was published.
    """

    base: str
    stage: str
    task: str
    macro_f1: float
    n: int | None
    ci_low: float | None = None
    ci_high: float | None = None


_TABLE: tuple[tuple[str, str, float, float, float, int], ...] = (
    # base, stage, ID chat, draft, agentic, n emailed (of 500)
    ("llama", "base", 0.05, 0.03, 0.04, 250),
    ("llama", "distillation", 0.82, 0.34, 0.18, 253),
    ("llama", "full", 0.94, 0.86, 0.39, 231),
    ("qwen", "base", 0.07, 0.04, 0.05, 160),
    ("qwen", "distillation", 0.72, 0.27, 0.18, 123),
    ("qwen", "full", 0.86, 0.50, 0.29, 133),
    ("gemma", "base", 0.05, 0.04, 0.04, 480),
    ("gemma", "distillation", 0.72, 0.45, 0.26, 333),
    ("gemma", "full", 0.91, 0.86, 0.55, 250),
)
_AGENTIC_FULL_CI: dict[str, tuple[float, float]] = {
    "llama": (0.32, 0.45),
    "qwen": (0.23, 0.34),
    "gemma": (0.47, 0.60),
}


def _build() -> dict[tuple[str, str, str], PublishedCell]:
    cells: dict[tuple[str, str, str], PublishedCell] = {}
    for base, stage, chat, draft, agentic, n_emailed in _TABLE:
        cells[(base, stage, "chat")] = PublishedCell(base, stage, "chat", chat, 3000)
        cells[(base, stage, "draft")] = PublishedCell(base, stage, "draft", draft, 500)
        ci = _AGENTIC_FULL_CI.get(base) if stage == "full" else None
        cells[(base, stage, "agentic")] = PublishedCell(
            base,
            stage,
            "agentic",
            agentic,
            n_emailed,
            ci[0] if ci else None,
            ci[1] if ci else None,
        )
    return cells


PUBLISHED: dict[tuple[str, str, str], PublishedCell] = _build()
"""Published cells keyed by (base short name, stage, task)."""

PUBLISHED_SOURCES = ("published",)
"""Values accepted by ``--compare`` (only the DCT table for now)."""


def published_for(
    base: str, condition: str, task: str, personas: list[str], suffix: str | None
) -> PublishedCell | None:
    """The published number comparable with a charbench cell, or None.

    A cell is comparable only when its base is one of the released bases (any spelling
    :func:`charbench.personas.released_base` accepts), its condition is ``base``,
    ``distillation`` or ``full``, its task is ``chat``, ``draft`` or ``agentic``, it
    evaluated exactly the 10 default personas, and (chat) it used no suffix.

    Args:
        base: the cell's base model name (Hub id, path or short name).
        condition: the cell's condition label.
        task: the cell's task (eval-metadata name).
        personas: the cell's evaluated personas.
        suffix: the chat suffix (``None`` for agentic tasks).

    Returns:
        The matching :class:`PublishedCell`, or None when nothing published is comparable.
    """
    released = released_base(base)
    if released is None:
        return None
    if list(personas) != list(DEFAULT_PERSONAS):
        return None
    if suffix not in (None, "", "none"):
        return None
    return PUBLISHED.get((released.short, condition, task))
