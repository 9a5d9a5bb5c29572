"""What a charbench task evaluates: the base model, the condition label and the classifier.

The tasks take the base explicitly (``-T base=``, which the sweep always passes); only when
it is not given do they read the model Inspect has made active while ``inspect eval`` builds
the task (:func:`charbench._inspect.active_model`). Nothing here loads a model.
"""

from __future__ import annotations

from dataclasses import dataclass

from inspect_ai.model import Model

from charbench import routing
from charbench._inspect import active_model
from charbench.personas import RELEASED_BASES, released_base
from charbench.scoring import resolve_classifier


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
