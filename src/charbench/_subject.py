"""What a charbench task evaluates: the base model, the condition label and the classifier.

The tasks take the base explicitly (``-T base=``, which the sweep always passes); only when
it is not given do they read the model Inspect has made active while ``inspect eval`` builds
the task (:func:`charbench._inspect.active_model`). Nothing here loads a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inspect_ai.model import Model

from charbench import routing
from charbench._inspect import active_model
from charbench.personas import RELEASED_BASES, PersonaSet, released_base
from charbench.scoring import check_classifier_labels, resolve_classifier


@dataclass(frozen=True)
class EvalSubject:
    """The subject of one eval, as recorded in its metadata.

    Attributes:
        base: base model name or path (None when neither given nor known from a model).
        condition: condition label (``base``, a stage, an adapter; None when unknown).
        classifier: the resolved classifier spec (see
            :func:`charbench.scoring.resolve_classifier`).
        model: the model ``inspect eval`` made active while building the task (None when
            the task is built outside an eval, e.g. by the sweep, which passes ``base``).
    """

    base: str | None
    condition: str | None
    classifier: str
    model: Model | None = None


def _check_name(option: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"-T {option} must be a non-empty string; got {value!r}")
    return value.strip()


def _classifier_for_base(classifier: str | None, base: str) -> str:
    if classifier is not None and classifier.strip():
        return resolve_classifier(classifier, None)
    found = released_base(base)
    if found is None:
        released = ", ".join(b.hub_id for b in RELEASED_BASES)
        raise ValueError(
            f"no released persona classifier is known for base model {base!r} (released "
            f"bases: {released}); pass -T classifier=HUB_ID_OR_PATH (a persona sequence "
            "classifier) or -T classifier=zeroshot (a much weaker embedding baseline)"
        )
    return found.classifier


def eval_subject(
    base: str | None, condition: str | None, classifier: str | None
) -> EvalSubject:
    """Resolve the base, condition label and classifier of a task being built.

    Args:
        base: ``-T base``: the base model (Hub id or path). None: the base of the model
            under evaluation when ``inspect eval`` builds the task, else unknown.
        condition: ``-T condition``. None: the condition of the model under evaluation.
        classifier: ``-T classifier``. None: the released classifier of the base.

    Raises:
        ValueError: a blank or non-string ``base`` or ``condition``; no classifier given and
            none released for the base (or no base known).
    """
    base = _check_name("base", base)
    condition = _check_name("condition", condition)
    if classifier is not None and not isinstance(classifier, str):
        raise ValueError(
            f"-T classifier must be one Hub id or path, got {classifier!r} "
            "(a value with a comma is parsed as a list)"
        )
    model = active_model()
    if condition is None and model is not None:
        condition = routing.condition_name(model)
    if base is not None:
        return EvalSubject(base, condition, _classifier_for_base(classifier, base), model)
    spec = resolve_classifier(classifier, model)
    return EvalSubject(
        routing.base_model_name(model) if model is not None else None, condition, spec, model
    )


def checked_subject(
    base: str | None,
    condition: str | None,
    classifier: str | None,
    persona_set: PersonaSet,
    personas: Sequence[str],
) -> EvalSubject:
    """The subject of a task being built, checked before any weights load.

    :func:`eval_subject` with the persona set's ``classifier`` as the default, then every
    persona's adapter resolved and checked (:func:`charbench.routing.preflight`) and the
    classifier's labels read from its config and checked against ``personas``
    (:func:`charbench.scoring.check_classifier_labels`, with the set's descriptions for
    ``zeroshot``).

    Raises:
        ValueError: as :func:`eval_subject`, :func:`charbench.routing.preflight` (an
            adapter that cannot be resolved) and
            :func:`charbench.scoring.check_classifier_labels` (labels that do not cover
            the personas).
    """
    subject = eval_subject(base, condition, classifier or persona_set.classifier)
    routing.preflight(subject.model, personas)
    check_classifier_labels(subject.classifier, personas, descriptions=persona_set.descriptions)
    return subject


def subject_fields(
    subject: EvalSubject, persona_set: PersonaSet, personas: Sequence[str], restrict: bool
) -> dict[str, Any]:
    """The eval-metadata fields every task writes about its subject, in log order.

    Returns:
        ``base``, ``condition``, ``classifier`` (the resolved spec), ``restrict``,
        ``personas`` (the evaluated personas) and ``persona_set`` (its
        :meth:`~charbench.personas.PersonaSet.ref`): fields of
        :class:`charbench.contracts.EvalMeta`.
    """
    return {
        "base": subject.base,
        "condition": subject.condition,
        "classifier": subject.classifier,
        "restrict": restrict,
        "personas": list(personas),
        "persona_set": persona_set.ref(),
    }
