"""Per-persona generation shared by charbench's tasks.

Three pieces, usable on their own:

- :func:`persona_model`: the model that generates a sample of a persona (persona routing,
  :func:`charbench.routing.model_for_persona` on the model under evaluation).
- :func:`generation_config`: the generate config in force for the eval (task defaults merged
  with ``--temperature``/``--seed``/... from the command line). Inspect applies that config
  only to the model under evaluation itself; a per-persona model built by routing is a
  different :class:`~inspect_ai.model.Model`, so callers must pass it explicitly or the
  persona models would silently sample with provider defaults.
- :class:`SharedResults` and :func:`generate_for_persona`: when every persona maps to the
  same model (a base stage, a single adapter, an API model without ``{persona}``), the
  samples of different personas for the same input are the same experiment. With reuse on,
  the first sample to arrive generates and the others await that one result instead of
  paying for ten generations; the sharing is recorded in each sample's metadata and store.

The sharing cache is process-wide (:data:`SHARED_GENERATIONS`) and keyed by the eval id,
the model (name, args, base url), the full input messages (message ids excluded), the tools,
the resolved generate config and the epoch, so different evals, epochs, configs or prompts
never share. An entry is dropped once all its expected consumers took it. A generation that
fails raises in its own sample and a :class:`SharedGenerationError` in the samples waiting on
it at that moment; the entry is removed, so a later request (a retry) generates afresh. If
the generating sample is cancelled (time limit, interrupted sample) a waiting sample takes
over and generates.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio
from inspect_ai.model import ChatMessage, GenerateConfig, Model, ModelOutput, get_model
from inspect_ai.solver import TaskState
from inspect_ai.tool import ToolInfo

from charbench._inspect import active_eval_id, active_generate_config, record_model_event
from charbench.routing import is_persona_template, model_for_persona

T = TypeVar("T")

GENERATION_STORE_KEY = "charbench:generation"
"""Store key (and ``state.metadata`` key ``generation``) of the per-sample generation record."""


def persona_model(persona: str, model: Model | None = None) -> Model:
    """The model that generates samples of ``persona``.

    Args:
        persona: Persona slug.
        model: The model under evaluation; default ``get_model()`` (the active model).

    Returns:
        ``model`` itself when it is not a persona template, else that persona's model
        (see :func:`charbench.routing.model_for_persona`).
    """
    return model_for_persona(model if model is not None else get_model(), persona)


def generation_config(config: GenerateConfig | None = None) -> GenerateConfig:
    """The generate config in force for the current eval, merged with ``config``.

    Inside an eval this is the task's ``config`` merged with the command line's generate
    options (``--temperature``, ``--max-tokens``, ``--seed``, ...); outside an eval it is
    empty. ``config`` (default none) is merged last and wins.
    """
    active = active_generate_config()
    return active.merge(config) if config is not None else active


def _eval_scope() -> str:
    """Id of the eval the current sample belongs to ("" outside an eval)."""
    return active_eval_id()


def generation_key(
    model: Model,
    messages: Sequence[ChatMessage],
    config: GenerateConfig,
    *,
    epoch: int,
    tools: Sequence[ToolInfo] = (),
    scope: str | None = None,
) -> str:
    """A key that is equal exactly when two generate calls are the same experiment.

    Args:
        model: The model that would generate.
        messages: Full input messages; their ``id`` fields are ignored.
        config: The resolved generate config.
        epoch: The sample's epoch (each epoch is a fresh draw).
        tools: Tools offered to the model (default none).
        scope: Sharing scope; default the current eval's id, so two evals never share.

    Returns:
        A hex SHA-256 digest.
    """
    payload = {
        "scope": _eval_scope() if scope is None else scope,
        "model": str(model),
        "base_url": model.api.base_url,
        "model_args": model.model_args,
        "messages": [m.model_dump(mode="json", exclude={"id"}) for m in messages],
        "tools": [t.model_dump(mode="json") for t in tools],
        "config": config.model_dump(mode="json", exclude_none=True),
        "epoch": epoch,
    }
    blob = json.dumps(payload, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


class SharedGenerationError(RuntimeError):
    """The shared generation another sample was producing for this sample failed."""


@dataclass
class _Entry(Generic[T]):
    leader: str
    remaining: int | None
    done: anyio.Event = field(default_factory=anyio.Event)
    value: T | None = None
    error: BaseException | None = None
    cancelled: bool = False


class SharedResults:
    """Async results shared between callers that ask for the same key.

    The first caller of a key runs its factory; callers that arrive while it runs (or after
    it finished, until ``consumers`` callers took the result) get the same result. All
    callers must run on the same event loop (one eval); the key should include the eval id.
    """

    def __init__(self) -> None:
        self._entries: dict[Hashable, _Entry[Any]] = {}

    def __len__(self) -> int:
        """Number of keys currently held (running or waiting for consumers)."""
        return len(self._entries)

    def _take(self, key: Hashable, entry: _Entry[Any]) -> None:
        if entry.remaining is None:
            return
        entry.remaining -= 1
        if entry.remaining <= 0 and self._entries.get(key) is entry:
            del self._entries[key]

    async def get_or_run(
        self,
        key: Hashable,
        factory: Callable[[], Awaitable[T]],
        *,
        owner: str,
        consumers: int | None = None,
    ) -> tuple[T, str | None]:
        """Run ``factory`` once per key and share its result.

        Args:
            key: Identity of the result (see :func:`generation_key`).
            factory: Produces the result; called by the first caller only.
            owner: Name of the caller (a sample id), recorded as the result's producer.
            consumers: How many callers will ask for this key in total (default unknown:
                the result is kept for the life of the process). When known, the entry is
                dropped after that many callers took it.

        Returns:
            ``(result, producer)``: ``producer`` is None when this caller ran the factory,
            else the ``owner`` of the caller that did.

        Raises:
            SharedGenerationError: the producing caller's factory failed while this caller
                was waiting (the producer itself gets the original exception).
        """
        while True:
            entry = self._entries.get(key)
            if entry is None:
                entry = _Entry(leader=owner, remaining=consumers)
                self._entries[key] = entry
                try:
                    value = await factory()
                except BaseException as e:
                    if self._entries.get(key) is entry:
                        del self._entries[key]
                    entry.error = e
                    entry.cancelled = isinstance(e, anyio.get_cancelled_exc_class())
                    entry.done.set()
                    raise
                entry.value = value
                entry.done.set()
                self._take(key, entry)
                return value, None
            await entry.done.wait()
            if entry.error is not None:
                if entry.cancelled:
                    continue  # the producer was cancelled: take over
                raise SharedGenerationError(
                    f"the generation shared with sample {entry.leader!r} failed there: "
                    f"{type(entry.error).__name__}: {entry.error}"
                ) from entry.error
            self._take(key, entry)
            return entry.value, entry.leader  # type: ignore[return-value]


SHARED_GENERATIONS = SharedResults()
"""The process-wide cache used by :func:`generate_for_persona`."""


@dataclass(frozen=True)
class GenerationRecord:
    """How a sample's output was produced (stored in metadata and the store)."""

    model: str
    """The model that generated it (the persona's model under routing)."""
    shared: bool
    """Reuse was active: one generation serves every persona label of this input."""
    reused: bool
    """This sample did not generate; it took the output of ``generated_by``."""
    generated_by: str
    """Sample id (``id`` and epoch) that ran the generation (this sample's own if not reused)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "shared": self.shared,
            "reused": self.reused,
            "generated_by": self.generated_by,
        }


def _sample_label(state: TaskState) -> str:
    return f"{state.sample_id} (epoch {state.epoch})"


def _own_copy(output: ModelOutput) -> ModelOutput:
    """A deep copy of a shared output whose messages get fresh ids."""
    out = output.model_copy(deep=True)
    for choice in out.choices:
        choice.message.id = uuid.uuid4().hex
    return out


async def generate_for_persona(
    state: TaskState,
    persona: str,
    *,
    reuse: bool = True,
    consumers: int | None = None,
    config: GenerateConfig | None = None,
    shared: SharedResults | None = None,
) -> GenerationRecord:
    """Generate the reply of ``persona``'s model to ``state.messages``.

    Appends the reply to ``state.messages``, sets ``state.output``, and records a
    :class:`GenerationRecord` in ``state.metadata["generation"]`` and the store
    (:data:`GENERATION_STORE_KEY`).

    Args:
        state: The sample's state; its messages are the full input.
        persona: The sample's persona (routes to its model when the model under evaluation is
            a persona template).
        reuse: Share one generation across samples with identical input when the model under
            evaluation is not a persona template (default true). Ignored for templates.
        consumers: Number of samples that share each input (the number of personas); when
            given, cache entries are freed after that many took them. Reuse is skipped when
            it is 1.
        config: Extra generate config merged over :func:`generation_config` (default none).
        shared: The sharing cache (default :data:`SHARED_GENERATIONS`).

    Returns:
        The record of how the output was produced.

    Raises:
        SharedGenerationError: the shared generation failed in the sample producing it.
    """
    evaluated = get_model()
    model = model_for_persona(evaluated, persona)
    cfg = generation_config(config)
    share = reuse and (consumers is None or consumers > 1) and not is_persona_template(evaluated)
    me = _sample_label(state)
    producer: str | None = None
    if share:
        key = generation_key(model, state.messages, cfg, epoch=state.epoch)
        messages = list(state.messages)

        async def run() -> ModelOutput:
            return await model.generate(messages, config=cfg)

        cache = shared if shared is not None else SHARED_GENERATIONS
        output, producer = await cache.get_or_run(key, run, owner=me, consumers=consumers)
        if producer is not None:
            output = _own_copy(output)
            # the model call of this sample, taken like a cache hit: without it a killed eval
            # recovered from Inspect's sample buffer rebuilds this sample with no messages
            record_model_event(str(model), messages, cfg, output)
            from inspect_ai.log import transcript

            transcript().info(
                f"Reused the generation of sample {producer}: the model under evaluation is "
                "not a persona template, so every persona label of this input shares one "
                "generation (reuse_generations=true).",
                source="charbench",
            )
    else:
        output = await model.generate(state.messages, config=cfg)
    state.output = output
    state.messages.append(output.message)
    record = GenerationRecord(
        model=str(model), shared=share, reused=producer is not None,
        generated_by=producer if producer is not None else me,
    )
    state.metadata["generation"] = record.as_dict()
    state.store.set(GENERATION_STORE_KEY, record.as_dict())
    return record
