"""Published reference numbers (REFERENCE.md section 7) as data.

The numbers are macro-F1 over the 10 default personas (no misalignment), no break-character
suffix, from the depth-character-training study (DCT). ID chat used DCT's Pure-Dove selection
(about 3000 samples); the draft control and the agentic email task used 50 scenarios x 10
personas (500 rollouts); the agentic macro-F1 is over the rollouts that sent an email only
(``n_emailed``) and averaged over the personas that sent at least one email: charbench's
``macro_f1_study`` for email cells (its ``macro_f1`` scores a persona with no email 0), not
``macro_f1_itt``. The agentic CIs of the full stage are DCT's row bootstrap (1000
resamples); on the study's data they are about as wide as a scenario-cluster CI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from charbench.contracts import BUILTIN_PERSONA_SET
from charbench.personas import DEFAULT_PERSONAS, ReleasedBase, released_base


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


def _failed_conditions(cell: Mapping[str, Any], released: ReleasedBase) -> list[str]:
    """Every way ``cell`` is built differently from the published cells."""
    task = str(cell["eval_task"])
    failed: list[str] = []
    if task == "chat" and cell.get("selection") != "dct":
        failed.append(f"chat prompts selection={cell.get('selection')!r}, not 'dct'")
    if task in ("agentic", "draft") and cell.get("suite") != "dct":
        failed.append(f"suite={cell.get('suite')!r}, not the study's scaffold (-T suite=dct)")
    if cell.get("classifier") != released.classifier:
        failed.append(
            f"classifier {cell.get('classifier')!r}, not the released {released.classifier}"
        )
    if bool(cell.get("restrict")):
        failed.append("argmax restricted to the evaluated personas")
    if bool(cell.get("persona_prompt")):
        failed.append("persona prompt on")
    if cell.get("suffix") not in (None, "", "none") and not _is_nan(cell.get("suffix")):
        failed.append(f"suffix {cell.get('suffix')!r}")
    if str(cell.get("personas")).split(",") != list(DEFAULT_PERSONAS):
        failed.append("not the 10 default personas")
    if str(cell.get("persona_set", BUILTIN_PERSONA_SET)) != BUILTIN_PERSONA_SET:
        failed.append(f"persona set {cell.get('persona_set')!r}, not the built-in one")
    return failed


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def published_match(cell: Mapping[str, Any]) -> tuple[PublishedCell | None, str]:
    """The published number built like ``cell``, or None and the reason there is none.

    A cell gets the published number only when it is built like the published ones: a
    released base, a published stage (``base``, ``distillation``, ``full``) and task
    (``chat``, ``draft``, ``agentic``); chat on the study's prompt selection
    (``selection=dct``), agentic and draft on the study's scaffold (``suite=dct``); the
    released classifier (``maius/{slug}-pt-classifier``); no restricted argmax, persona
    prompt or suffix; the 10 default personas of the built-in set.

    Args:
        cell: a summary row (``base``, ``condition``, ``eval_task``, ``suite``,
            ``selection``, ``classifier``, ``restrict``, ``persona_prompt``, ``suffix``,
            ``personas`` comma-joined, ``persona_set``).

    Returns:
        ``(published, "")`` for a comparable cell, else ``(None, reason)`` naming every
        condition that failed.
    """
    released = released_base(str(cell["base"]))
    if released is None:
        return None, f"base {cell['base']!r} has no published numbers"
    key = (released.short, str(cell["condition"]), str(cell["eval_task"]))
    if key not in PUBLISHED:
        return None, (
            f"nothing published for condition {cell['condition']!r} / task "
            f"{cell['eval_task']!r}"
        )
    failed = _failed_conditions(cell, released)
    if failed:
        return None, "not built like the published cell: " + "; ".join(failed)
    return PUBLISHED[key], ""
