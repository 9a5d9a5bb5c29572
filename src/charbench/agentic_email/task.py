"""The ``agentic_email`` task: does a persona survive when the model works as an agent?

One sample per (persona, scenario). In the ``agentic`` scaffold the model under test (routed
to the sample's persona model) works through a simulated workplace with tools until it
sends the email the user asked for; the persona classifier then reads the body of the email
it sent. The ``draft`` and ``chat`` scaffolds are the controls: the same facts given up
front and a single reply that is the email body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessage, GenerateConfig
from inspect_ai.solver import Solver, TaskState, chain
from inspect_ai.tool import Tool

from charbench._subject import EvalSubject, checked_subject, subject_fields
from charbench._system_prompt import SystemFor, with_system_prompt
from charbench.agentic_email.dct.source import DctSourceError
from charbench.agentic_email.dct.suite import dct_samples, dct_solver, dct_text, load_suite
from charbench.agentic_email.extract import extract_body
from charbench.agentic_email.loop import (
    AgentToolChoice,
    Episode,
    check_tool_choice,
    email_agent,
    single_reply,
)
from charbench.agentic_email.prompts import SCAFFOLDS, system_messages, user_messages
from charbench.agentic_email.scenarios import Scenario, load_scenarios
from charbench.agentic_email.suite import sample_metadata
from charbench.agentic_email.tools import SentEmail, workplace_tools
from charbench.agentic_email.workplace import Workplace, load_workplace
from charbench.contracts import FORCED_LABELS, RESAMPLES, SCAFFOLD_LABELS
from charbench.personas import PersonaSet, resolve_personas
from charbench.reliability import SAMPLE_ERROR_TOLERANCE
from charbench.scoring import (
    ClassifiedText,
    TextFn,
    agentic_metrics,
    persona_scorer,
)

__all__ = ["FORCED_LABELS", "RESAMPLES", "SUITES", "TASK_LABELS", "agentic_email", "email_text"]

TASK_LABELS: Mapping[str, str] = SCAFFOLD_LABELS
"""The eval-metadata ``task`` label of each scaffold (what ``charbench report`` groups by);
under a required tool choice the agentic scaffold is labelled by :data:`FORCED_LABELS`
(such rollouts measure something else: the model did not choose to email)."""

SUITES: tuple[str, ...] = ("charbench", "dct")
"""Scenario suites: charbench's own workplace (native tools) and the study's own scaffold."""

_DCT_SCAFFOLDS = ("agentic", "draft")


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _check_float(name: str, value: object, low: float, high: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return float(value)


def _email_extras(state: TaskState) -> dict[str, Any]:
    episode = state.store_as(Episode)
    return {
        "turns": episode.turns,
        "tool_calls": episode.tool_calls,
        "malformed_turns": episode.malformed_turns,
    }


async def email_text(state: TaskState) -> ClassifiedText:
    """What the persona classifier reads from an ``agentic_email`` sample.

    - ``agentic``: the body of the email that ``send_email`` recorded in the store
      (:class:`~charbench.agentic_email.tools.SentEmail`), after :func:`extract_body`;
      outcome ``emailed``. Without a sent email the text is ``None`` and the outcome is the
      loop's (``no_email``, ``malformed``, ``turn_limit``; ``turn_limit`` also when an
      Inspect limit stopped the sample before the loop ended, flagged ``interrupted``).
    - ``draft`` / ``chat``: the final completion after :func:`extract_body`; outcome
      ``emailed`` if anything is left, else ``no_email`` with text ``None``.

    Extras (in ``Score.metadata``): ``turns``, ``tool_calls``, ``malformed_turns``,
    ``stripped`` (what extraction removed), ``email_to`` (recipients of the sent email;
    ``None`` for the controls and when nothing was sent), ``interrupted``.

    Args:
        state: The sample's final state (needs ``metadata["scaffold"]``).

    Returns:
        The :class:`~charbench.scoring.ClassifiedText`.
    """
    extra = _email_extras(state)
    scaffold = state.metadata.get("scaffold", "agentic")
    if scaffold == "agentic":
        episode = state.store_as(Episode)
        sent = state.store_as(SentEmail)
        extra["interrupted"] = episode.outcome == ""
        if sent.sent:
            body = extract_body(sent.body)
            extra["stripped"] = body.stripped
            extra["email_to"] = list(sent.to)
            return ClassifiedText(text=body.text or None, outcome="emailed", extra=extra)
        extra["stripped"] = []
        extra["email_to"] = None
        outcome = episode.outcome or "turn_limit"
        if outcome == "emailed":  # pragma: no cover - the loop only says emailed when sent
            outcome = "no_email"
        return ClassifiedText(text=None, outcome=outcome, extra=extra)
    reply = extract_body(state.output.completion if state.output else "")
    extra["stripped"] = reply.stripped
    extra["email_to"] = None
    extra["interrupted"] = False
    if reply.text:
        return ClassifiedText(text=reply.text, outcome="emailed", extra=extra)
    return ClassifiedText(text=None, outcome="no_email", extra=extra)


def _samples(
    personas: Sequence[str],
    scenarios: Sequence[Scenario],
    workplace: Workplace,
    scaffold: str,
    persona_prompt: bool,
    cluster_by_family: bool,
    descriptions: Mapping[str, str],
) -> list[Sample]:
    """One sample per (persona, scenario); the input is the user message only (the system
    message is added by :func:`_system_for` in the solver)."""
    for persona in personas:  # an unknown persona or scaffold fails at task build
        system_messages(
            workplace, scaffold, persona if persona_prompt else None, descriptions  # type: ignore[arg-type]
        )
    samples = []
    for persona in personas:
        for scenario in scenarios:
            samples.append(
                Sample(
                    id=f"{persona}-{scenario.id}",
                    input=user_messages(scenario, scaffold),  # type: ignore[arg-type]
                    target=persona,
                    metadata=sample_metadata(
                        persona, personas, scenario.id, scenario.family, scaffold=scaffold,
                        suite="charbench", persona_prompt=persona_prompt,
                        cluster_by_family=cluster_by_family, recipient=scenario.recipient,
                    ),
                )
            )
    return samples


def _system_for(
    workplace: Workplace, scaffold: str, descriptions: Mapping[str, str]
) -> SystemFor:
    """A sample's system message, rebuilt from its metadata (``persona``,
    ``persona_prompt``) with :func:`~charbench.agentic_email.prompts.system_messages`."""

    def system_for(state: TaskState) -> list[ChatMessage]:
        persona = state.metadata.get("persona")
        prompted = state.metadata.get("persona_prompt") is True and isinstance(persona, str)
        return system_messages(
            workplace, scaffold, persona if prompted else None, descriptions  # type: ignore[arg-type]
        )

    return system_for


def _check_suite(
    suite: object, scaffold: str, dct_path: object, tool_choice: str,
    max_turns: int, max_malformed: int, text_tool_calls: bool = False,
) -> None:
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    if suite == "charbench":
        if dct_path is not None:
            raise ValueError("dct_path applies to suite=dct only; add -T suite=dct or drop it")
        return
    if scaffold not in _DCT_SCAFFOLDS:
        raise ValueError(
            f"suite=dct has the scaffolds {', '.join(_DCT_SCAFFOLDS)} (the study's agentic "
            f"rollout and its draft control), not {scaffold!r}"
        )
    if text_tool_calls:
        raise ValueError(
            "text_tool_calls applies to suite=charbench only (suite=dct parses the study's "
            "fenced blocks from the text itself); leave it at false"
        )
    if tool_choice != "auto":
        raise ValueError(
            "tool_choice applies to suite=charbench only (suite=dct offers no native tools: "
            "the model writes the study's fenced blocks); leave it at 'auto'"
        )
    if max_turns != 8 or max_malformed != 4:
        raise ValueError(
            "suite=dct takes the step cap from each scenario's max_steps and the malformed "
            "limit from the study's harness; leave max_turns and max_malformed unset"
        )


def _check_args(
    suite: object, scaffold: str, resample: object, dct_path: object, tool_choice: str,
    max_turns: int, max_malformed: int, max_tokens: int, persona_prompt: bool,
    restrict_to_evaluated: bool, temperature: float, top_p: float, condition: str | None,
    classifier: str | None, text_tool_calls: bool,
) -> str:
    """Validate the task's arguments (nothing is loaded) and return the bootstrap unit
    (``resample``, default ``family`` for ``suite=charbench`` and ``cluster`` for ``dct``)."""
    if scaffold not in SCAFFOLDS:
        raise ValueError(f"unknown scaffold {scaffold!r}; choose one of {', '.join(SCAFFOLDS)}")
    if resample is not None and resample not in RESAMPLES:
        raise ValueError(f"unknown resample {resample!r}; choose one of {', '.join(RESAMPLES)}")
    check_tool_choice(tool_choice)
    if tool_choice != "auto" and scaffold != "agentic":
        raise ValueError(
            f"tool_choice={tool_choice!r} applies to the agentic scaffold only (the "
            f"{scaffold!r} scaffold has no tools); leave it at 'auto'"
        )
    _check_int("max_turns", max_turns, 1)
    _check_int("max_malformed", max_malformed, 1)
    _check_int("max_tokens", max_tokens, 1)
    _check_bool("persona_prompt", persona_prompt)
    _check_bool("restrict_to_evaluated", restrict_to_evaluated)
    if _check_bool("text_tool_calls", text_tool_calls) and scaffold != "agentic":
        raise ValueError(
            f"text_tool_calls=true applies to the agentic scaffold only (the {scaffold!r} "
            "scaffold has no tools); leave it at false"
        )
    _check_float("temperature", temperature, 0.0, None)
    _check_float("top_p", top_p, 0.0, 1.0)
    if condition is not None and (not isinstance(condition, str) or not condition.strip()):
        raise ValueError(f"condition must be a non-empty string, got {condition!r}")
    if classifier is not None and (not isinstance(classifier, str) or not classifier.strip()):
        raise ValueError(
            f"classifier must be a Hub id, a local path or 'zeroshot', got {classifier!r}"
        )
    _check_suite(
        suite, scaffold, dct_path, tool_choice, max_turns, max_malformed, text_tool_calls
    )
    return str(resample or ("family" if suite == "charbench" else "cluster"))


def _charbench_parts(
    personas: list[str], scenarios: str | list[str] | None, scaffold: str,
    persona_prompt: bool, by_family: bool, max_turns: int, max_malformed: int,
    tool_choice: AgentToolChoice, text_tool_calls: bool, descriptions: Mapping[str, str],
) -> tuple[list[Sample], Solver, TextFn, dict[str, Any]]:
    """The charbench suite's samples, solver, text function and metadata fields."""
    scenario_list = load_scenarios(scenarios)
    workplace = load_workplace()
    tools_by_scenario: dict[str, Scenario] = {s.id: s for s in scenario_list}

    def tools_for(state: TaskState) -> list[Tool]:
        return workplace_tools(tools_by_scenario[state.metadata["scenario"]], workplace)

    solver = chain(
        with_system_prompt(_system_for(workplace, scaffold, descriptions)),
        email_agent(
            tools_for, max_turns=max_turns, max_malformed=max_malformed,
            tool_choice=tool_choice, text_tool_calls=text_tool_calls,
        )
        if scaffold == "agentic"
        else single_reply(),
    )
    samples = _samples(
        personas, scenario_list, workplace, scaffold, persona_prompt, by_family, descriptions
    )
    fields = {
        "scenarios": [s.id for s in scenario_list],
        "max_turns": max_turns,
        "max_malformed": max_malformed,
        "tool_choice": tool_choice,
        "text_tool_calls": text_tool_calls,
    }
    return samples, solver, email_text, fields


def _dct_parts(
    personas: list[str], scenarios: str | list[str] | None, scaffold: str,
    persona_prompt: bool, by_family: bool, dct_path: str | None, descriptions: Mapping[str, str],
) -> tuple[list[Sample], Solver, TextFn, dict[str, Any]]:
    """The study's suite: samples, solver, text function and metadata fields."""
    try:
        suite = load_suite(scaffold, scenarios, dct_path)  # type: ignore[arg-type]
    except DctSourceError as err:
        raise ValueError(str(err)) from err

    def text_fn(state: TaskState) -> ClassifiedText:
        return dct_text(suite, state)

    fields: dict[str, Any] = {
        "scenarios": [s.id for s in suite.scenarios],
        "max_turns": None,
        "max_malformed": suite.harness.max_malformed if scaffold == "agentic" else None,
        "tool_choice": None,
        **suite.metadata(),
    }
    samples = dct_samples(suite, personas, persona_prompt, by_family, descriptions)
    return samples, dct_solver(suite, len(personas), descriptions), text_fn, fields


def _eval_metadata(
    subject: EvalSubject, persona_set: PersonaSet, personas: list[str], *, restrict: bool,
    suite: str, scaffold: str, tool_choice: str, persona_prompt: bool, resample: str,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """The ``charbench`` eval metadata (see :class:`charbench.contracts.EvalMeta`): the task
    label (a forced tool choice relabels the charbench agentic scaffold), the subject, the
    settings, then the suite's own ``fields``."""
    label = TASK_LABELS[scaffold] if suite == "dct" else FORCED_LABELS.get(
        tool_choice, TASK_LABELS[scaffold]
    )
    return {
        "task": label,
        "suite": suite,
        **subject_fields(subject, persona_set, personas, restrict),
        "persona_prompt": persona_prompt,
        "scaffold": scaffold,
        "resample": resample,
        **fields,
    }


@task
def agentic_email(
    personas: str | list[str] | None = None,
    scenarios: str | list[str] | None = None,
    scaffold: Literal["agentic", "draft", "chat"] = "agentic",
    suite: Literal["charbench", "dct"] = "charbench",
    dct_path: str | None = None,
    max_turns: int = 8,
    max_malformed: int = 4,
    tool_choice: Literal["auto", "any", "send_email"] = "auto",
    persona_prompt: bool = False,
    classifier: str | None = None,
    restrict_to_evaluated: bool = False,
    resample: Literal["family", "cluster", "row"] | None = None,
    condition: str | None = None,
    base: str | None = None,
    temperature: float = 0.7,
    top_p: float = 0.95,
    max_tokens: int = 512,
    text_tool_calls: bool = False,
) -> Task:
    """Out-of-distribution persona test: the email an agent sends at work.

    One sample per (persona, scenario), id ``"{persona}-{scenario}"``; use ``--epochs N``
    for N rollouts of each. The classifier reads the email body; ``Score.metadata`` records
    the outcome (``emailed``, ``no_email``, ``malformed``, ``turn_limit``), turns, tool calls
    and what was stripped from the body (with ``suite=dct`` also ``terminated``: ``final``,
    ``max_steps`` or ``malformed``). Metrics: macro-F1 over emailed samples and
    intent-to-treat macro-F1 (a missing email is a miss), each with a bootstrap CI, email
    and malformed rates overall and per persona, accuracy.

    Every argument is validated before any model or classifier is loaded.

    Args:
        personas: Personas to evaluate: ``None``/``"default"`` for the 10 without
            misalignment (default), ``"all"`` for all 11, or names (comma string or list);
            or a persona set file (YAML/JSON: names, descriptions, optional classifier),
            alone for its default selection or first in the list (``my_set.yaml,pirate``).
        scenarios: Scenario ids (``budget_v3``; with ``suite=dct`` ``budget_overreach_v1``)
            or family names, comma string or list; default ``None`` = all 50.
        scaffold: ``"agentic"`` (default): the tool loop ending in ``send_email``;
            ``"draft"``: same organisation and standing context, no tools, the facts given
            and only the body asked for; ``"chat"``: no system prompt, the request and facts
            in one user message (``suite=charbench`` only).
        suite: ``"charbench"`` (default): charbench's own workplace with Inspect's native
            tools; ``"dct"``: the study's own scenarios, rollout and draft control, exactly
            (read at run time from its repository at the pinned commit; see the README).
        dct_path: ``suite=dct`` only: a local checkout of the study's repository; default
            ``None`` = its commit archive, downloaded once into the user cache.
        max_turns: Model turns per rollout (default 8); reaching it is ``turn_limit``.
            Agentic scaffold of ``suite=charbench`` only (``suite=dct``: each scenario's
            ``max_steps``).
        max_malformed: Consecutive turns whose every tool call failed to parse before the
            rollout ends as ``malformed`` (default 4). Agentic scaffold of
            ``suite=charbench`` only.
        tool_choice: ``"auto"`` (default, the study's setting): the model decides each turn
            whether and which tool to call. ``"any"``: each turn must call some tool;
            ``"send_email"``: each turn must call ``send_email`` (``hf-lora`` writes the call and the
            model its values; API models get Inspect's ``tool_choice``). For models that
            cannot call tools unprompted (the demo's 135M model): the email rate then says
            nothing about the model's choices, so such evals are labelled
            ``agentic-any``/``agentic-forced`` and never pooled with ``agentic``. Agentic
            scaffold of ``suite=charbench`` only.
        persona_prompt: Prompted condition: put the persona's description first in the
            system prompt (default False; the persona must come from the model).
        classifier: Persona classifier: a Hub id or local path of a sequence classifier,
            ``"zeroshot"`` or ``"zeroshot:<model>"``; default ``None`` = the persona set
            file's ``classifier``, else the released classifier of the model's base (an
            error names the fix if the base is unknown).
        restrict_to_evaluated: Take the argmax over the evaluated personas only (default
            False: an 11-way decision, so a ``misalignment`` prediction is an error).
        resample: Bootstrap unit of the CIs: ``"family"`` (all variants of a scenario
            family together), ``"cluster"`` (all samples of a scenario) or ``"row"``;
            default ``None`` = ``"family"`` for ``suite=charbench``, ``"cluster"`` for
            ``suite=dct``. The unit is the samples' ``cluster`` metadata.
        condition: Label of the condition in the eval metadata (default ``None``: the
            model's stage, adapter or name).
        base: Base model (Hub id or path) recorded in the eval metadata and used to pick
            the released classifier (default None: the base of the model under evaluation;
            ``charbench sweep`` always passes it).
        temperature: Sampling temperature (default 0.7); ``--temperature`` overrides.
        top_p: Nucleus sampling (default 0.95); ``--top-p`` overrides.
        max_tokens: New tokens per model turn (default 512); ``--max-tokens`` overrides.
        text_tool_calls: Parse tool calls that the model provider left in the reply text
            (a server without a tool-call parser) with charbench's lenient protocol and run
            them, marked as text-parsed (default False: such a turn ends the rollout as
            ``unparsed_call`` with a warning; see docs/serving.md). Agentic scaffold of
            ``suite=charbench`` only.

    Returns:
        The Inspect task. A sample that errors is recorded and counted, not fatal, up to
        5% of the samples (``fail_on_error``, see
        :data:`charbench.reliability.SAMPLE_ERROR_TOLERANCE`; ``--fail-on-error`` overrides).

    Raises:
        ValueError: an unknown persona, scenario, scaffold, suite, tool_choice or resample
            value, a tool_choice other than ``"auto"`` outside the agentic scaffold of
            ``suite=charbench`` (the message lists the valid choices), a non-positive
            ``max_turns``/``max_malformed``/``max_tokens``, an out-of-range
            ``temperature``/``top_p``, a non-boolean flag, a classifier whose labels do not
            cover the personas, or (``suite=dct``) study files that cannot be found,
            downloaded or read (the message names ``dct_path``).
    """
    persona_set, persona_list = resolve_personas(personas)
    unit = _check_args(
        suite, scaffold, resample, dct_path, tool_choice, max_turns, max_malformed, max_tokens,
        persona_prompt, restrict_to_evaluated, temperature, top_p, condition, classifier,
        text_tool_calls,
    )
    if suite == "dct":
        samples, solver, text_fn, fields = _dct_parts(
            persona_list, scenarios, scaffold, persona_prompt, unit == "family", dct_path,
            persona_set.descriptions,
        )
    else:
        samples, solver, text_fn, fields = _charbench_parts(
            persona_list, scenarios, scaffold, persona_prompt, unit == "family", max_turns,
            max_malformed, tool_choice, text_tool_calls, persona_set.descriptions,
        )

    # every persona's adapter and the classifier's labels checked before any weights load
    subject = checked_subject(base, condition, classifier, persona_set, persona_list)
    spec = subject.classifier
    metadata = _eval_metadata(
        subject, persona_set, persona_list, restrict=restrict_to_evaluated, suite=suite,
        scaffold=scaffold, tool_choice=tool_choice, persona_prompt=persona_prompt,
        resample=unit, fields=fields,
    )
    return Task(
        dataset=MemoryDataset(
            samples, name=f"agentic_email-{'dct-' if suite == 'dct' else ''}{scaffold}"
        ),
        solver=solver,
        scorer=persona_scorer(
            spec, restrict_to_evaluated=restrict_to_evaluated, text_fn=text_fn, agentic=True,
            descriptions=persona_set.descriptions,
        ),
        # the bootstrap unit is each sample's `cluster` (a family when resample=family)
        metrics=[agentic_metrics(resample="row" if unit == "row" else "cluster")],
        config=GenerateConfig(temperature=temperature, top_p=top_p, max_tokens=max_tokens),
        metadata={"charbench": metadata},
        # isolated sample errors are recorded and counted, not fatal; a systematic one stops
        # the eval at 5% of its samples (docs/reliability.md; --fail-on-error overrides)
        fail_on_error=SAMPLE_ERROR_TOLERANCE,
    )
