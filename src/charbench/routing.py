"""Persona routing: which model generates a sample of a given persona.

A model is a *persona template* when one run of a task should use a different model per
persona: an ``hf-lora`` model whose adapter contains ``{persona}`` (or that was given a
``stage``), or any other provider's model whose name contains ``{persona}`` (for example
``vllm/meta-llama/Llama-3.1-8B-Instruct:maius/llama-3.1-8b-it-personas/{persona}``).

Providers can take part without charbench knowing them: a :class:`PersonaRoutable` model API
(duck-typed: the methods below) decides for itself. ``hf-lora`` implements it.

Tasks call :func:`preflight` at task start, so that a persona whose model cannot be built
(a missing or broken adapter) is an error before any weights load and before any sample
runs, not a failure of every sample of that persona.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from inspect_ai.model import Model, get_model

PERSONA_PLACEHOLDER = "{persona}"


@runtime_checkable
class PersonaRoutable(Protocol):
    """What a model API implements to route personas itself (``hf-lora`` does)."""

    def is_persona_template(self) -> bool:
        """True if this model stands for a different model per persona."""
        ...

    def persona_model_args(self, persona: str) -> dict[str, Any]:
        """Model args (``-M``) that make the concrete model of ``persona``."""
        ...

    def base_model_name(self) -> str:
        """Name or path of the base model under any adapters (used to pick a classifier)."""
        ...

    def condition_name(self) -> str:
        """Short label of the condition (``full``, ``distillation``, ``base``, or the adapter)."""
        ...

    def check_personas(self, personas: Sequence[str]) -> None:
        """Check, loading no weights, that the model of every persona can be built.

        Called by :func:`preflight` for persona templates only. Raises (an Inspect
        ``PrerequisiteError`` is best: the CLI prints its one-line message) naming the
        persona and what is wrong; returns None when every persona is fine.
        """
        ...


def is_persona_template(model: Model) -> bool:
    """Whether ``model`` stands for one model per persona (see module docs)."""
    if isinstance(model.api, PersonaRoutable):
        return model.api.is_persona_template()
    return PERSONA_PLACEHOLDER in str(model)


def preflight(model: Model | None, personas: Sequence[str]) -> None:
    """Check at task start that every persona's model can be built, before weights load.

    A no-op for ``None`` (a task built outside an eval), for a model that is not a persona
    template, and for a name-substituted template of another provider (its persona models
    are remote names that only the server can check). For a :class:`PersonaRoutable`
    template it calls ``check_personas(personas)``, which raises on the first problem.
    """
    if model is None or not is_persona_template(model):
        return
    api = model.api
    if isinstance(api, PersonaRoutable):
        api.check_personas(list(personas))


def model_for_persona(model: Model, persona: str) -> Model:
    """The concrete model that generates samples of ``persona``.

    For a model that is not a persona template this is ``model`` itself. Otherwise a model
    is built with :func:`inspect_ai.model.get_model` (which caches instances, so each
    persona's model is built once per process; ``hf-lora`` additionally shares one loaded
    base between them). The generate config of ``model`` is carried over.
    """
    if not is_persona_template(model):
        return model
    api = model.api
    if isinstance(api, PersonaRoutable):
        args = api.persona_model_args(persona)
        return get_model(str(model), config=model.config, **args)
    name = str(model).replace(PERSONA_PLACEHOLDER, persona)
    # base_url and api_key are not model args in Inspect: carry them over explicitly so a
    # persona model talks to the same server (e.g. a vLLM server given with -M base_url).
    args = {
        k: (v.replace(PERSONA_PLACEHOLDER, persona) if isinstance(v, str) else v)
        for k, v in model.model_args.items()
    }
    return get_model(
        name,
        config=model.config,
        base_url=model.api.base_url,
        api_key=model.api.api_key,
        **args,
    )


def base_model_name(model: Model) -> str:
    """The base model behind ``model``, as well as it can be told.

    ``hf-lora`` knows its base; ``vllm/<base>:<adapter>`` and ``<provider>/<base>`` are
    parsed from the name.
    """
    if isinstance(model.api, PersonaRoutable):
        return model.api.base_model_name()
    name = model.name
    if str(model).startswith("vllm/") and ":" in name:
        return name.split(":", 1)[0]
    return name


def condition_name(model: Model) -> str:
    """A label for the condition ``model`` represents, used to group results.

    ``hf-lora`` reports its stage (``base``, ``distillation``, ``full``, ``introspection``) or
    its adapter template/path; other providers are labelled by their full model name.
    """
    if isinstance(model.api, PersonaRoutable):
        return model.api.condition_name()
    return str(model)
