"""Persona scoring shared by charbench's tasks: classifiers, the scorer, statistics, metrics.

- :mod:`~charbench.scoring.classifiers`: the ``hf`` (trained sequence classifier) and
  ``zeroshot`` (sentence-embedding baseline, far weaker) backends, loaded once per process
  and batched across concurrently scored samples (the backends live in
  :mod:`~charbench.scoring.hf_classifier` and :mod:`~charbench.scoring.zeroshot`, their
  shared batching base in :mod:`~charbench.scoring.classifier_base`).
- :mod:`~charbench.scoring.scorer`: :func:`persona_scorer` and the text functions.
- :mod:`~charbench.scoring.stats`: the one macro-F1 and the one seeded bootstrap engine
  (pure numpy, reused by ``charbench report``).
- :mod:`~charbench.scoring.metrics`: the Inspect metrics (``scores="unreduced"``, so
  ``--epochs`` pools every rollout).
"""

from charbench.scoring.classifiers import (
    ALLOW_PICKLE_ENV,
    DEFAULT_MAX_LENGTH,
    ZEROSHOT,
    PersonaClassifier,
    check_classifier_labels,
    classifier_labels,
    clear_classifier_cache,
    get_classifier,
    is_zeroshot,
    resolve_classifier,
)
from charbench.scoring.metrics import (
    PersonaRows,
    agentic_metrics,
    agentic_summary,
    chat_summary,
    persona_metrics,
    persona_rows,
)
from charbench.scoring.scorer import (
    ClassifiedText,
    TextFn,
    completion_text,
    persona_scorer,
)
from charbench.scoring.stats import (
    UnitCounts,
    bootstrap,
    macro_f1,
    macro_f1_ci,
    per_persona_f1,
)

__all__ = [
    "ALLOW_PICKLE_ENV",
    "DEFAULT_MAX_LENGTH",
    "ZEROSHOT",
    "ClassifiedText",
    "PersonaClassifier",
    "PersonaRows",
    "TextFn",
    "UnitCounts",
    "agentic_metrics",
    "agentic_summary",
    "bootstrap",
    "chat_summary",
    "check_classifier_labels",
    "classifier_labels",
    "clear_classifier_cache",
    "completion_text",
    "get_classifier",
    "is_zeroshot",
    "macro_f1",
    "macro_f1_ci",
    "per_persona_f1",
    "persona_metrics",
    "persona_rows",
    "persona_scorer",
    "resolve_classifier",
]
