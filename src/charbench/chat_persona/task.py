"""The in-distribution ``chat_persona`` task: ordinary chat prompts to a persona model."""

from __future__ import annotations

import math
from typing import Any, Literal

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessage, GenerateConfig
from inspect_ai.solver import Generate, Solver, TaskState, solver

from charbench._generation import generate_for_persona
from charbench._subject import EvalSubject, checked_subject, subject_fields
from charbench._system_prompt import SystemFor, with_system_prompt
from charbench.chat_persona.dataset import (
    PromptRow,
    PromptSource,
    load_prompt_source,
    select_rows,
    validate_selection,
)
from charbench.chat_persona.prompts import resolve_suffixes, system_messages, user_messages
from charbench.personas import PersonaSet, resolve_personas
from charbench.reliability import SAMPLE_ERROR_TOLERANCE
from charbench.scoring import persona_metrics, persona_scorer

TASK_NAME = "chat_persona"
RESAMPLES: tuple[str, ...] = ("cluster", "row")


def sample_id(persona: str, row: int, suffix: str) -> str:
    """Sample id: ``{persona}-{row:04d}``, plus ``-{suffix}`` unless the suffix is ``none``."""
    base = f"{persona}-{row:04d}"
    return base if suffix == "none" else f"{base}-{suffix}"


def build_samples(
    rows: list[PromptRow],
    personas: list[str],
    suffixes: list[str],
    *,
    selection: str,
    persona_prompt: bool,
    descriptions: dict[str, str] | None = None,
) -> list[Sample]:
    """One sample per (prompt, suffix, persona), grouped by prompt then suffix.

    Metadata follows docs/architecture.md: ``persona`` (gold), ``personas`` (evaluated, in
    label order), ``cluster`` (the prompt id: every persona and suffix of one prompt is one
    bootstrap unit), ``task``, ``prompt_id``, ``row``, ``selection``, ``suffix``,
    ``persona_prompt`` and ``sanitized`` (characters of the prompt replaced on load, see
    :mod:`charbench.textsafe`). The target is the persona. ``descriptions`` are the persona
    set's (default: the built-in OCT set's), used by the prompted condition.

    The input is the user message only (what ``inspect view`` lists); the prompted
    condition's system message is added by :func:`persona_system` in the solver.

    Raises:
        ValueError: ``persona_prompt`` with a persona that has no description.
    """
    for persona in personas:  # fail at task build, not per sample
        system_messages(persona, persona_prompt, descriptions)
    samples: list[Sample] = []
    for r in rows:
        for sfx in suffixes:
            for persona in personas:
                samples.append(
                    Sample(
                        id=sample_id(persona, r.row, sfx),
                        input=user_messages(r.prompt, sfx),
                        target=persona,
                        metadata={
                            "persona": persona,
                            "personas": list(personas),
                            "cluster": r.prompt_id,
                            "task": TASK_NAME,
                            "prompt_id": r.prompt_id,
                            "row": r.row,
                            "selection": selection,
                            "suffix": sfx,
                            "persona_prompt": persona_prompt,
                            "sanitized": r.sanitized,
                        },
                    )
                )
    return samples


def persona_system(descriptions: dict[str, str] | None = None) -> SystemFor:
    """A sample's system message, rebuilt from its metadata (``persona``,
    ``persona_prompt``) with :func:`~charbench.chat_persona.prompts.system_messages`: the
    persona's description in the prompted condition, else none. For
    :func:`charbench._system_prompt.with_system_prompt`."""

    def system_for(state: TaskState) -> list[ChatMessage]:
        persona = state.metadata.get("persona")
        prompted = state.metadata.get("persona_prompt") is True
        return system_messages(
            persona if isinstance(persona, str) else None, prompted, descriptions
        )

    return system_for


@solver
def persona_generate(reuse_generations: bool = True, consumers: int | None = None) -> Solver:
    """Generate each sample with its persona's model (see :mod:`charbench._generation`).

    Args:
        reuse_generations: Share one generation across the persona labels of an input when
            the model under evaluation is not a persona template (default true).
        consumers: Samples per input (the number of personas), so shared entries are freed
            once all took them (default unknown).
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        persona = state.metadata.get("persona")
        if not isinstance(persona, str):
            raise ValueError(
                f"sample {state.sample_id!r} has no 'persona' in its metadata; "
                "persona_generate needs chat_persona/agentic_email samples"
            )
        await generate_for_persona(
            state, persona, reuse=reuse_generations, consumers=consumers
        )
        return state

    return solve


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false; got {value!r}")
    return value


def _check_number(
    name: str, value: Any, *, low: float, high: float | None = None, integer: bool = False
) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind}; got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {bound}; got {value!r}")


def _check_args(
    *, n: Any, resample: Any, persona_prompt: Any, restrict_to_evaluated: Any,
    reuse_generations: Any, temperature: Any, top_p: Any, max_tokens: Any, classifier: Any,
) -> None:
    """Validate the task's plain arguments (the message names the option and its range)."""
    _check_number("n", n, low=1, integer=True)
    if resample not in RESAMPLES:
        raise ValueError(f"unknown resample {resample!r}; valid values are {', '.join(RESAMPLES)}")
    _check_bool("persona_prompt", persona_prompt)
    _check_bool("restrict_to_evaluated", restrict_to_evaluated)
    _check_bool("reuse_generations", reuse_generations)
    _check_number("temperature", temperature, low=0.0)
    _check_number("top_p", top_p, low=0.0, high=1.0)
    _check_number("max_tokens", max_tokens, low=1, integer=True)
    if classifier is not None and (not isinstance(classifier, str) or not classifier.strip()):
        raise ValueError(
            f"classifier must be a Hub id, a local path or 'zeroshot'; got {classifier!r}"
        )


def _selection_label(source: PromptSource, selection: str) -> str:
    return selection if source.pure_dove and source.name == "pure-dove" else (
        f"{source.name}:{selection}"
    )


def _eval_metadata(
    subject: EvalSubject, persona_set: PersonaSet, personas: list[str], *, restrict: bool,
    suffixes: list[str], source: PromptSource, selection: str, persona_prompt: bool, n: int,
    reuse_generations: bool,
) -> dict[str, Any]:
    """The eval metadata ``{"charbench": ...}`` (see :class:`charbench.contracts.EvalMeta`)."""
    return {
        "charbench": {
            "task": "chat",
            **subject_fields(subject, persona_set, personas, restrict),
            "suffix": "all" if len(suffixes) > 1 else suffixes[0],
            "selection": _selection_label(source, selection),
            "persona_prompt": persona_prompt,
            "prompts": source.name,
            "n": n,
            "reuse_generations": reuse_generations,
        }
    }


@task
def chat_persona(
    personas: str | list[str] | None = None,
    selection: Literal["dct", "oct", "heldout"] = "heldout",
    n: int = 300,
    prompts: str | None = None,
    suffix: str = "none",
    persona_prompt: bool = False,
    classifier: str | None = None,
    restrict_to_evaluated: bool = False,
    reuse_generations: bool = True,
    resample: Literal["cluster", "row"] = "cluster",
    condition: str | None = None,
    base: str | None = None,
    temperature: float = 0.7,
    top_p: float = 0.95,
    max_tokens: int = 512,
) -> Task:
    """In-distribution persona eval: chat prompts to a persona model, classified per reply.

    Samples are (persona, prompt) pairs: every evaluated persona answers every selected
    prompt, with no system prompt (the persona comes from the model) unless
    ``persona_prompt`` is set. A persona-template model (an ``hf-lora`` adapter with
    ``{persona}`` or a ``stage``, or any model name containing ``{persona}``) generates each
    sample with its persona's model, so one run yields a whole (base, stage) cell. Every
    argument is validated before any model or classifier is loaded.

    Args:
        personas: Personas to evaluate: a list, a comma-separated string, ``"all"`` (all
            11), or None/``"default"`` (default: the 10 without misalignment); or a persona
            set file (YAML/JSON: names, descriptions, optional classifier), alone for its
            default selection or first in the list (``my_set.yaml,pirate,poet``).
        selection: Which prompts: ``"heldout"`` (default; Pure-Dove rows from 500 on, which
            the released classifiers never saw, shuffled with the fixed seed 0), ``"dct"`` (the seeded shuffle behind the
            published numbers: ``random.Random(0).shuffle`` of all row indices, first ``n``
            rows with a non-empty first input) or ``"oct"`` (first rows in file order). For a
            plain prompts file or ``builtin`` every row counts as held out.
        n: Number of prompts (default 300). More than the selection offers is an error.
        prompts: Prompt source: None (default) for ``LDJnr/Pure-Dove`` at a pinned revision
            through the Hugging Face cache (``HF_HUB_OFFLINE=1`` works with a cached copy),
            ``"builtin"`` for the everyday prompts shipped with charbench (offline demos), or
            a path to a JSON/JSONL file of Pure-Dove rows (``conversation[0].input``) or of
            ``{"prompt": ...}`` rows.
        suffix: OCT break-character suffix appended as ``prompt + "\\n" + suffix``:
            ``"none"`` (default), ``"v0"``..``"v7"``, or ``"all"`` (all nine conditions,
            nine times the samples, the suffix recorded in metadata).
        persona_prompt: Prompted condition (default false): the persona's description
            (from the persona set) as the system message. Combines
            with a persona template (both apply).
        classifier: Persona classifier: a Hub id or local path of a sequence-classification
            checkpoint, or ``"zeroshot"`` (sentence-embedding similarity to the persona
            descriptions; much weaker than a trained classifier). Default None: the persona
            set file's ``classifier``, else the released classifier of the model's base
            (``maius/{slug}-pt-classifier``); an unknown base is an error asking for this
            argument.
        restrict_to_evaluated: Take the argmax over the evaluated personas only (default
            false: over all the classifier's labels, so e.g. a ``misalignment`` prediction is
            an error for the true persona).
        reuse_generations: When every persona maps to the same model (no persona template:
            a base model, a single adapter, an API model), generate once per (prompt, suffix,
            epoch) and share that reply across the persona labels (default true), as the
            published base control did. Shared samples record ``generation.reused`` and
            ``generation.generated_by`` in their metadata. Set false for independent draws.
        resample: Bootstrap unit of the macro-F1 confidence interval: ``"cluster"``
            (default; a prompt with all its personas' and suffixes' samples) or ``"row"``.
        condition: Label of the condition for ``charbench report`` (default None: the
            stage or adapter of an ``hf-lora`` model, else the model name).
        base: Base model (Hub id or path) recorded in the eval metadata and used to pick
            the released classifier (default None: the base of the model under evaluation;
            ``charbench sweep`` always passes it).
        temperature: Sampling temperature (default 0.7; ``--temperature`` overrides).
        top_p: Nucleus sampling mass (default 0.95; ``--top-p`` overrides).
        max_tokens: Maximum new tokens per reply (default 512; ``--max-tokens`` overrides).
            ``--seed`` is honoured as usual.

    Returns:
        The Inspect task. A sample that errors is recorded and counted, not fatal, up to
        5% of the samples (``fail_on_error``, see
        :data:`charbench.reliability.SAMPLE_ERROR_TOLERANCE`; ``--fail-on-error`` overrides).

    Raises:
        ValueError: An unknown persona, selection, suffix or resample mode; ``n`` larger
            than the prompts available; an unreadable or malformed prompts file; a
            classifier whose labels do not cover the personas; bad generation settings.
        charbench.chat_persona.dataset.PromptsUnavailableError: Pure-Dove is neither
            reachable on the Hub nor in the local cache.
    """
    # 1. Validate every argument (cheap checks first; nothing is loaded).
    persona_set, persona_list = resolve_personas(personas)
    sel = validate_selection(selection)
    suffixes = resolve_suffixes(suffix)
    _check_args(
        n=n, resample=resample, persona_prompt=persona_prompt,
        restrict_to_evaluated=restrict_to_evaluated, reuse_generations=reuse_generations,
        temperature=temperature, top_p=top_p, max_tokens=max_tokens, classifier=classifier,
    )

    # 2. Prompts (reads a local file or the HF cache; no model).
    source = load_prompt_source(prompts)
    rows = select_rows(source, sel, n)

    # 3. Classifier and adapters: checked from configs and headers only (no weights).
    subject = checked_subject(base, condition, classifier, persona_set, persona_list)
    spec = subject.classifier

    samples = build_samples(
        rows,
        persona_list,
        suffixes,
        selection=sel,
        persona_prompt=persona_prompt,
        descriptions=persona_set.descriptions,
    )
    metadata = _eval_metadata(
        subject, persona_set, persona_list, restrict=restrict_to_evaluated, suffixes=suffixes,
        source=source, selection=sel, persona_prompt=persona_prompt, n=n,
        reuse_generations=reuse_generations,
    )
    return Task(
        dataset=MemoryDataset(samples, name=f"chat_persona-{source.name}-{sel}"),
        solver=[
            with_system_prompt(persona_system(persona_set.descriptions)),
            persona_generate(reuse_generations=reuse_generations, consumers=len(persona_list)),
        ],
        scorer=persona_scorer(
            spec,
            restrict_to_evaluated=restrict_to_evaluated,
            descriptions=persona_set.descriptions,
        ),
        metrics=[persona_metrics(resample=resample)],
        config=GenerateConfig(temperature=temperature, top_p=top_p, max_tokens=max_tokens),
        metadata=metadata,
        # isolated sample errors are recorded and counted, not fatal; a systematic one stops
        # the eval at 5% of its samples (docs/reliability.md; --fail-on-error overrides)
        fail_on_error=SAMPLE_ERROR_TOLERANCE,
    )
