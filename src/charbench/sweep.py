"""``charbench sweep``: the bases x conditions x tasks grid, run through ``inspect_ai.eval_set``.

One eval per (base, condition, task): the model is a *persona template* (an ``hf-lora`` stage
or adapter template, or a ``vllm/<base>:<served name with {persona}>`` model), so one eval
yields a whole cell of the report. All of a base's evals run in one ``eval_set`` call whose
log directory is ``LOG_DIR/<base>``: ``eval_set`` reuses the logs of evals that finished and
re-runs only the others, so an interrupted sweep resumes where it stopped. Bases run one after
another (ordered as given); the CLI runs each base in its own process when there are several,
so a base's weights are freed before the next one loads.

The vLLM route (``--model-provider vllm``) talks to a running vLLM server that serves the
adapters under names (``vllm serve BASE --enable-lora --lora-modules full-sarcasm=PATH ...``);
see docs/sweep.md.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charbench.personas import STAGES, parse_personas, released_base, resolve_personas
from charbench.routing import PERSONA_PLACEHOLDER, preflight

TASKS: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("chat_persona", {}),
    "agentic": ("agentic_email", {"scaffold": "agentic"}),
    "draft": ("agentic_email", {"scaffold": "draft"}),
    "chat-email": ("agentic_email", {"scaffold": "chat"}),
}
"""Sweep task names (the report's eval-metadata ``task``) -> (charbench task, fixed args)."""

PROVIDERS: tuple[str, ...] = ("hf-lora", "vllm")
"""Model providers the sweep builds models for."""

VLLM_NAME_TEMPLATE = "{stage}-{persona}"
"""Default served adapter name of a released stage on a vLLM server (``full-sarcasm``)."""

SUITES: tuple[str, ...] = ("charbench", "dct", "both")
"""``--suite`` values: the scenario suite of the agentic and draft evals (``both``: each)."""

REPRODUCE: dict[str, Any] = {
    "bases": ["llama", "qwen", "gemma"],
    "stages": ["base", "distillation", "full"],
    "tasks": ["chat", "agentic", "draft"],
    "suite": "dct",
    "selection": "dct",
    "n": 300,
    "seed": 0,
    "bos": "vllm",
}
"""The published grid (``charbench sweep --reproduce``): 3 bases x base/distillation/full x
chat/agentic/draft on the study's own scaffolds (``suite=dct``) and prompt selection
(``selection=dct``, 300 prompts), the released classifiers, the 10 default personas, seed 0,
and ``-M bos=vllm`` on ``hf-lora`` (the study's prompts carried the tokenizer's BOS on top of
the chat template's, as vLLM tokenises a formatted string)."""


@dataclass(frozen=True)
class SweepEval:
    """One eval of the grid.

    Attributes:
        base: base model (Hub id or path).
        condition: ``base``, a stage name, or the ``--adapter`` NAME.
        task: sweep task (``chat``, ``agentic``, ``draft``, ``chat-email``).
        model: Inspect model name.
        model_args: ``-M`` args of the model.
        task_name: charbench task function (``chat_persona`` or ``agentic_email``).
        task_args: ``-T`` args of the task.
        n_samples: samples per epoch (None when it cannot be counted offline).
    """

    base: str
    condition: str
    task: str
    model: str
    model_args: dict[str, Any]
    task_name: str
    task_args: dict[str, Any]
    n_samples: int | None


@dataclass
class SweepConfig:
    """Settings of a sweep (the CLI flags; defaults as documented there).

    Attributes:
        bases: base models (Hub ids or paths; short names already resolved).
        stages: released stages to run (``base``, ``distillation``, ``full``,
            ``introspection``; the last only with hf-lora).
        adapters: extra conditions ``NAME -> adapter template`` (hf-lora: a path or Hub id,
            usually with ``{persona}``; vllm: the served adapter name, e.g. ``mine-{persona}``).
        tasks: sweep tasks.
        personas: evaluated personas, in label order.
        persona_set: a persona set file (YAML/JSON) the personas come from; None (default)
            for the built-in OCT set. Passed to every task as the first item of ``personas``.
        n: chat prompts per persona (default 300).
        scenarios: agentic scenario selection (None: all).
        provider: ``hf-lora`` (default) or ``vllm``.
        base_url: vLLM server URL (``http://127.0.0.1:8000/v1``); required for vllm unless
            ``VLLM_BASE_URL`` is set.
        vllm_name_template: served name of a released stage's adapter (default
            ``{stage}-{persona}``).
        classifier: ``-T classifier`` (None: each base's released classifier).
        restrict_to_evaluated: ``-T restrict_to_evaluated``.
        selection: chat prompt selection (default ``heldout``).
        suite: ``-T suite`` of the agentic and draft evals: ``charbench``, ``dct`` or
            ``both`` (each); None (default) passes none, so the task's default applies.
        prompts: chat prompts source (None: Pure-Dove).
        suffix: chat suffix (default ``none``).
        log_dir: root log directory (default ``logs``).
        epochs: epochs per eval (default 1).
        model_args: extra ``-M`` args for every model (e.g. ``dtype``).
        generate: generation options (temperature, top_p, max_tokens, seed,
            max_connections) passed to ``eval_set``; unset ones keep the tasks' defaults.
    """

    bases: list[str]
    stages: list[str]
    tasks: list[str]
    personas: list[str]
    adapters: dict[str, str] = field(default_factory=dict)
    persona_set: str | None = None
    n: int = 300
    scenarios: list[str] | None = None
    provider: str = "hf-lora"
    base_url: str | None = None
    vllm_name_template: str = VLLM_NAME_TEMPLATE
    classifier: str | None = None
    restrict_to_evaluated: bool = False
    selection: str = "heldout"
    suite: str | None = None
    prompts: str | None = None
    suffix: str = "none"
    log_dir: str = "logs"
    epochs: int = 1
    model_args: dict[str, Any] = field(default_factory=dict)
    generate: dict[str, Any] = field(default_factory=dict)


def _split(spec: str | Sequence[str]) -> list[str]:
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    return [s.strip() for s in items if s and s.strip()]


def parse_scenarios(spec: str | Sequence[str] | None) -> list[str] | None:
    """``--scenarios``: ids or families, comma-separated; None or empty for all."""
    items = _split(spec) if spec else []
    return items or None


def parse_suite(spec: str | None) -> str | None:
    """Validate ``--suite`` (None: pass no ``-T suite``)."""
    if spec is None or spec in SUITES:
        return spec
    raise ValueError(f"unknown --suite {spec!r}; valid: {', '.join(SUITES)}")


def reproduce_config(**overrides: Any) -> SweepConfig:
    """The :class:`SweepConfig` of the published grid (see :data:`REPRODUCE`).

    Args:
        overrides: settings that do not change what is measured (``log_dir``, ``provider``,
            ``base_url``, ``vllm_name_template``, ``epochs``) and extra ``model_args`` or
            ``generate`` options (e.g. ``max_connections``), merged over the published ones.
    """
    provider = overrides.get("provider", "hf-lora")
    model_args = dict(overrides.pop("model_args", {}) or {})
    if provider == "hf-lora":
        model_args["bos"] = REPRODUCE["bos"]
    generate = {**dict(overrides.pop("generate", {}) or {}), "seed": REPRODUCE["seed"]}
    return SweepConfig(
        bases=parse_bases(REPRODUCE["bases"]),
        stages=list(REPRODUCE["stages"]),
        tasks=list(REPRODUCE["tasks"]),
        personas=parse_personas(None),
        n=REPRODUCE["n"],
        selection=REPRODUCE["selection"],
        suite=REPRODUCE["suite"],
        model_args=model_args,
        generate=generate,
        **overrides,
    )


def parse_bases(spec: str | Sequence[str]) -> list[str]:
    """Resolve ``--bases``: short names (``llama,qwen,gemma``) to Hub ids; others kept.

    Raises:
        ValueError: an empty selection or a duplicate base.
    """
    out = []
    for item in _split(spec):
        released = released_base(item)
        out.append(released.hub_id if released and item == released.short else item)
    if not out:
        raise ValueError("--bases is empty; give e.g. llama,qwen,gemma or a Hub id or path")
    dupes = sorted({b for b in out if out.count(b) > 1})
    if dupes:
        raise ValueError(f"--bases names {', '.join(dupes)} more than once")
    return out


def parse_stages(spec: str | Sequence[str]) -> list[str]:
    """Validate ``--stages`` (may be empty when ``--adapter`` gives the conditions)."""
    stages = _split(spec)
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise ValueError(
            f"unknown stage(s) {', '.join(bad)}; valid stages are {', '.join(STAGES)} "
            "(use --adapter NAME=TEMPLATE for your own adapters)"
        )
    return list(dict.fromkeys(stages))


def parse_adapters(specs: Sequence[str] | None) -> dict[str, str]:
    """Parse repeatable ``--adapter NAME=TEMPLATE`` flags.

    Raises:
        ValueError: no ``=``, an empty name or template, a name that is a stage, a duplicate.
    """
    out: dict[str, str] = {}
    for spec in specs or []:
        name, sep, template = spec.partition("=")
        name, template = name.strip(), template.strip()
        if not sep or not name or not template:
            raise ValueError(
                f"--adapter {spec!r}: expected NAME=TEMPLATE, e.g. "
                "mymethod=/ckpts/mymethod/{persona}"
            )
        if name in STAGES:
            raise ValueError(f"--adapter name {name!r} is a stage name; pick another name")
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ValueError(f"--adapter name {name!r}: use letters, digits, '.', '_' or '-'")
        if name in out:
            raise ValueError(f"--adapter {name!r} given twice")
        out[name] = template
    return out


def parse_tasks(spec: str | Sequence[str]) -> list[str]:
    """Validate ``--tasks``."""
    tasks = _split(spec)
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise ValueError(
            f"unknown or empty --tasks {', '.join(bad) or repr(spec)}; valid tasks are "
            f"{', '.join(TASKS)}"
        )
    return list(dict.fromkeys(tasks))


def _count_scenarios(scenarios: list[str] | None) -> int | None:
    try:
        from charbench.agentic_email.scenarios import load_scenarios
    except ImportError:
        return None
    return len(load_scenarios(scenarios))


def _model_for(cfg: SweepConfig, base: str, condition: str) -> tuple[str, dict[str, Any]]:
    args = dict(cfg.model_args)
    if cfg.provider == "hf-lora":
        if condition in STAGES:
            args["stage"] = condition
        else:
            args["adapter"] = cfg.adapters[condition]
        return f"hf-lora/{base}", args
    # vllm: adapters are names served by the server; the base condition is the base itself.
    # The server URL goes through VLLM_BASE_URL (see run_base), not -M base_url: Inspect's
    # get_model consumes base_url without recording it in model_args, so the per-persona
    # models that charbench.routing builds from the template would not inherit it.
    if condition == "base":
        return f"vllm/{base}", args
    if condition in STAGES:
        name = cfg.vllm_name_template.replace("{stage}", condition)
    else:
        name = cfg.adapters[condition]
    return f"vllm/{base}:{name}", args


def _validate(cfg: SweepConfig) -> None:
    if cfg.provider not in PROVIDERS:
        raise ValueError(
            f"unknown --model-provider {cfg.provider!r}; valid: {', '.join(PROVIDERS)}"
        )
    if not cfg.stages and not cfg.adapters:
        raise ValueError("nothing to run: give --stages and/or --adapter NAME=TEMPLATE")
    if cfg.n < 1:
        raise ValueError(f"--n must be at least 1, got {cfg.n}")
    if cfg.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {cfg.epochs}")
    parse_suite(cfg.suite)
    for stage in cfg.stages:
        if stage == "base":
            continue
        unknown = [b for b in cfg.bases if released_base(b) is None]
        if unknown and cfg.provider == "hf-lora":
            raise ValueError(
                f"stage {stage!r} needs released adapters, but {', '.join(unknown)} is not a "
                "released base (llama, qwen, gemma); use --adapter NAME=TEMPLATE for it"
            )
    if cfg.provider == "vllm":
        if not cfg.base_url and not os.environ.get("VLLM_BASE_URL"):
            raise ValueError(
                "--model-provider vllm needs a running vLLM server that serves the adapters by "
                "name: pass --base-url http://127.0.0.1:8000/v1 (or set VLLM_BASE_URL); see "
                "docs/sweep.md"
            )
        if "introspection" in cfg.stages:
            raise ValueError(
                "stage 'introspection' composes two adapters and runs only on hf-lora; serve a "
                "merged adapter on vLLM and pass it with --adapter NAME=SERVED_NAME instead"
            )
        for name, template in cfg.adapters.items():
            if "/" in template or ":" in template:
                raise ValueError(
                    f"--adapter {name}={template}: with vllm the template is the adapter name "
                    "the server serves (registered with --lora-modules NAME=PATH), without '/' "
                    "or ':' (e.g. mine-{persona})"
                )
        if PERSONA_PLACEHOLDER not in cfg.vllm_name_template:
            raise ValueError("--vllm-name-template must contain {persona}")


def _suites(cfg: SweepConfig, task: str) -> list[str | None]:
    if task not in ("agentic", "draft") or cfg.suite is None:
        return [None]
    return ["charbench", "dct"] if cfg.suite == "both" else [cfg.suite]


def _task_args(
    cfg: SweepConfig, task: str, condition: str, suite: str | None, n_scen: int | None
) -> tuple[dict[str, Any], int | None]:
    """The ``-T`` args of one eval and its samples per epoch (None: not countable offline)."""
    _, fixed = TASKS[task]
    personas = [*([cfg.persona_set] if cfg.persona_set else []), *cfg.personas]
    args: dict[str, Any] = {**fixed, "personas": personas, "condition": condition}
    if cfg.classifier is not None:
        args["classifier"] = cfg.classifier
    if cfg.restrict_to_evaluated:
        args["restrict_to_evaluated"] = True
    if task == "chat":
        args.update(n=cfg.n, selection=cfg.selection)
        if cfg.prompts is not None:
            args["prompts"] = cfg.prompts
        if cfg.suffix != "none":
            args["suffix"] = cfg.suffix
        per_prompt = 9 if cfg.suffix == "all" else 1
        return args, cfg.n * per_prompt * len(cfg.personas)
    if suite is not None:
        args["suite"] = suite
    if cfg.scenarios:
        args["scenarios"] = list(cfg.scenarios)
    if suite == "dct" or n_scen is None:
        return args, None  # the study's scenarios are read at run time
    return args, n_scen * len(cfg.personas)


def build_grid(cfg: SweepConfig) -> list[SweepEval]:
    """The evals of the sweep, ordered by base, then condition, then task (then suite).

    Nothing is loaded: the sample counts come from the task settings (and the packaged
    scenario files for agentic tasks of charbench's suite; ``suite=dct`` counts are unknown
    offline). Every task gets ``base`` and ``condition`` explicitly.

    Raises:
        ValueError: an invalid combination (see the messages).
    """
    _validate(cfg)
    conditions = [*cfg.stages, *cfg.adapters]
    n_scen = _count_scenarios(cfg.scenarios) if any(t != "chat" for t in cfg.tasks) else None
    grid = []
    for base in cfg.bases:
        for condition in conditions:
            model, model_args = _model_for(cfg, base, condition)
            for task in cfg.tasks:
                for suite in _suites(cfg, task):
                    args, n_samples = _task_args(cfg, task, condition, suite, n_scen)
                    grid.append(
                        SweepEval(
                            base, condition, task, model, model_args, TASKS[task][0],
                            {"base": base, **args}, n_samples,
                        )
                    )
    return grid


def prompted(ev: SweepEval) -> SweepEval:
    """``ev`` as the ``prompted`` condition: the same model with the persona's description as
    its system prompt (OCT's prompted baseline; ``-T persona_prompt=true``)."""
    args = {**ev.task_args, "condition": "prompted", "persona_prompt": True}
    return dataclasses.replace(ev, condition="prompted", task_args=args)


def with_budgets(
    ev: SweepEval, chat_tokens: int, max_tokens: int, max_turns: int, tool_choice: str
) -> SweepEval:
    """``ev`` with small-model budgets: ``max_tokens`` (``chat_tokens`` for chat), and for
    agentic_email's tool loop ``max_turns`` and ``tool_choice``."""
    extra: dict[str, Any] = {"max_tokens": chat_tokens if ev.task == "chat" else max_tokens}
    if ev.task == "agentic":
        extra.update(max_turns=max_turns, tool_choice=tool_choice)
    return dataclasses.replace(ev, task_args={**ev.task_args, **extra})


def base_dir_name(base: str) -> str:
    """Per-base log subdirectory: the released short name, else a slug of the id/path."""
    released = released_base(base)
    if released is not None:
        return released.short
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base.strip("/")).strip("_") or "base"


def grid_rows(grid: Sequence[SweepEval], epochs: int = 1) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the dry-run table."""
    header = ["#", "base", "condition", "task", "model", "-M", "task", "-T", "samples"]
    rows = []
    for i, ev in enumerate(grid, 1):
        m_args = " ".join(f"{k}={v}" for k, v in ev.model_args.items())
        t_args = " ".join(
            f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in ev.task_args.items()
        )
        n = "?" if ev.n_samples is None else str(ev.n_samples * epochs)
        rows.append(
            [
                str(i),
                base_dir_name(ev.base),
                ev.condition,
                ev.task,
                ev.model,
                m_args,
                ev.task_name,
                t_args,
                n,
            ]
        )
    return header, rows


def _task_function(task_name: str) -> Callable[..., Any]:
    if task_name == "chat_persona":
        from charbench.chat_persona import chat_persona

        return chat_persona
    from charbench.agentic_email import agentic_email

    return agentic_email


def make_task(ev: SweepEval, model: Any, factory: Callable[..., Any] | None = None) -> Any:
    """Build the eval's Task and bind it to ``model``.

    The task gets the base explicitly (``base=ev.base`` unless ``ev.task_args`` names one)
    with the entry's ``condition``, so nothing about the model has to be active while it is
    built; ``task_with`` then binds it to ``model``. Every persona's adapter of a persona
    template is checked first (:func:`charbench.routing.preflight`), before weights load.

    Args:
        ev: the grid entry.
        model: the ``inspect_ai.model.Model`` of the entry.
        factory: task function override (tests); default the charbench task of ``ev``.
    """
    from inspect_ai import task_with

    fn = factory or _task_function(ev.task_name)
    args = {"base": ev.base, **ev.task_args}
    preflight(model, resolve_personas(args.get("personas"))[1])
    return task_with(fn(**args), model=model)


def run_base(
    grid: Sequence[SweepEval],
    cfg: SweepConfig,
    *,
    retry_attempts: int = 0,
    task_factory: Callable[[SweepEval], Callable[..., Any]] | None = None,
    display: str | None = None,
    log_dir_allow_dirty: bool = False,
) -> bool:
    """Run the evals of ONE base through a single ``eval_set`` call.

    Logs go to ``cfg.log_dir/<base>``; finished evals found there are reused, not re-run.

    Args:
        grid: entries that all share one base.
        cfg: sweep settings (log dir, generation options, epochs).
        retry_attempts: ``eval_set`` retries of failed evals within this call (default 0:
            a failure ends the call; run the sweep again to resume).
        task_factory: returns the task function for an entry (tests); default charbench's.
        display: Inspect display type (default: Inspect's).
        log_dir_allow_dirty: let the base's log directory hold logs of other settings
            (``eval_set``'s ``log_dir_allow_dirty``; default false: Inspect refuses them).

    Returns:
        True when every eval of the base finished successfully.
    """
    from inspect_ai import eval_set
    from inspect_ai.model import get_model

    bases = {ev.base for ev in grid}
    if len(bases) != 1:
        raise ValueError(f"run_base takes the evals of one base, got {sorted(bases)}")
    base = next(iter(bases))
    if cfg.provider == "vllm" and cfg.base_url:
        os.environ["VLLM_BASE_URL"] = cfg.base_url
    models: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
    tasks = []
    for ev in grid:
        key = (ev.model, tuple(sorted((k, repr(v)) for k, v in ev.model_args.items())))
        if key not in models:
            models[key] = get_model(ev.model, **ev.model_args)
        fn = task_factory(ev) if task_factory else None
        tasks.append(make_task(ev, models[key], fn))
    log_dir = Path(cfg.log_dir) / base_dir_name(base)
    success, _ = eval_set(
        tasks,
        log_dir=str(log_dir),
        retry_attempts=retry_attempts,
        epochs=cfg.epochs,
        display=display,  # type: ignore[arg-type]
        log_dir_allow_dirty=log_dir_allow_dirty,
        **cfg.generate,
    )
    return bool(success)


def group_by_base(grid: Sequence[SweepEval]) -> list[list[SweepEval]]:
    """The grid split per base, in the order the bases first appear."""
    out: dict[str, list[SweepEval]] = {}
    for ev in grid:
        out.setdefault(ev.base, []).append(ev)
    return list(out.values())
