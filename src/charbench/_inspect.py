"""Every use of Inspect AI internals in charbench, in one place.

charbench relies on a few names that Inspect does not export publicly. They are imported
here and nowhere else, so that an Inspect upgrade that moves or changes one of them breaks
this module (and ``tests/test_inspect_internals.py``, which checks the shape each one must
have) instead of failing somewhere deep inside an eval. This module is a leaf: it imports
Inspect only, no other charbench module.

What charbench uses, and why:

- :class:`PrerequisiteError`: an exception the ``inspect`` CLI prints as a plain message
  instead of a traceback (``charbench.provider.errors.HFLoraError`` derives from it).
- :data:`MODEL_INFO_LOOKUP_API_KEY` and :func:`custom_model_info`: Inspect builds a
  throw-away model API with that api key when it only wants model info; ``hf-lora`` loads
  nothing then, and registers its own model info only when none is registered.
- :func:`active_model`: the model under evaluation while ``inspect eval`` builds a task
  (the tasks read it only when no ``base`` is given to them explicitly).
- :func:`active_generate_config`: the generate config in force for the eval (task config
  merged with ``--temperature`` etc.), which per-persona models must be given explicitly.
- :func:`active_eval_id`: the id of the eval the current sample belongs to, so that shared
  generations never cross evals.
- :func:`record_model_event`: adds a model event to the current sample's transcript (the
  private ``Transcript._event``). A sample that takes a generation shared by another sample
  never calls ``generate`` itself; without this event its transcript holds no model call,
  and when Inspect recovers a killed eval from its sample buffer (which rebuilds each
  sample's messages and output from its model events) that sample comes back empty.
"""

from __future__ import annotations

from collections.abc import Sequence

from inspect_ai._util.error import PrerequisiteError
from inspect_ai.event import ModelEvent
from inspect_ai.log import transcript
from inspect_ai.log._samples import sample_active as _sample_active
from inspect_ai.model import ChatMessage, GenerateConfig, Model, ModelInfo, ModelOutput
from inspect_ai.model._generate_config import (
    active_generate_config as _active_generate_config,
)
from inspect_ai.model._model import active_model as _active_model
from inspect_ai.model._model_info import (
    MODEL_INFO_LOOKUP_API_KEY,
    _get_custom_model_info,
)

__all__ = [
    "MODEL_INFO_LOOKUP_API_KEY",
    "PrerequisiteError",
    "active_eval_id",
    "active_generate_config",
    "active_model",
    "active_sample_key",
    "custom_model_info",
    "record_model_event",
]


def active_model() -> Model | None:
    """The model Inspect has made active (the model under evaluation), or None."""
    return _active_model()


def active_generate_config() -> GenerateConfig:
    """The generate config in force for the current eval (empty outside an eval)."""
    return _active_generate_config()


def active_eval_id() -> str:
    """Id of the eval the current sample belongs to ("" outside a running sample)."""
    active = _sample_active()
    return str(active.eval_id) if active is not None else ""


def active_sample_key() -> str:
    """``task|sample id|epoch`` of the Inspect sample running in this context, else ``""``.

    Read from Inspect's active-sample context variable (set while a sample runs, copied
    into the coroutines it starts), so a request is keyed by the sample that made it.
    """
    active = _sample_active()
    if active is None:
        return ""
    return f"{active.task}|{active.sample.id}|{active.epoch}"


def custom_model_info(name: str) -> ModelInfo | None:
    """Model info registered with ``inspect_ai.model.set_model_info`` for ``name``, if any."""
    return _get_custom_model_info(name)


def record_model_event(
    model: str,
    messages: Sequence[ChatMessage],
    config: GenerateConfig,
    output: ModelOutput,
    *,
    cache: str | None = "read",
) -> None:
    """Add a completed model call to the current transcript, as Inspect's cache reads do.

    Args:
        model: the model name (``str(model)``).
        messages: the input of the call.
        config: the generate config it ran with.
        output: its output.
        cache: ``"read"`` (default: the output was taken, not generated, like a cache hit),
            ``"write"`` or None.
    """
    event = ModelEvent(
        model=model,
        input=list(messages),
        tools=[],
        tool_choice="none",
        config=config,
        output=output,
        cache=cache,  # type: ignore[arg-type]
    )
    transcript()._event(event)
