"""The ``-M`` model args of ``hf-lora``: parsed and validated before anything loads.

:func:`parse_options` turns Inspect's ``model_args`` (YAML-parsed ``-M`` values) into a frozen
:class:`HFLoraOptions`, and :func:`plan_adapters` says which adapter specs a persona's model
loads. Every error is an :class:`~charbench.provider.errors.HFLoraError` whose first words
are ``hf-lora: -M <name>=<value>`` and which says what the option accepts. Nothing here
imports torch except :func:`check_device`, which asks the installed torch build whether
the requested device exists (still before any weights load).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from charbench.personas import STAGES, released_base
from charbench.provider.errors import HFLoraError
from charbench.routing import PERSONA_PLACEHOLDER

DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_KV_CACHE_MB = 2048.0  # equal to charbench.provider.engine.DEFAULT_KV_CACHE_MB

BosMode = Literal["single", "vllm"]
BOS_MODES: tuple[BosMode, ...] = ("single", "vllm")

ToolProtocolName = Literal["json", "native"]

KNOWN_ARGS = (
    "adapter",
    "adapter_revision",
    "stage",
    "persona",
    "revision",
    "dtype",
    "device",
    "trust_remote_code",
    "do_sample",
    "repetition_penalty",
    "chat_template",
    "tool_protocol",
    "max_batch_size",
    "allow_pickle",
    "kv_cache_mb",
    "bos",
)

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_DEVICES = "auto (default), cpu, cuda, cuda:N or mps"


@dataclass(frozen=True)
class HFLoraOptions:
    """The validated ``-M`` args (see the module docstring of :mod:`charbench.provider._api`).

    Attributes mirror the ``-M`` names. ``adapter`` is None only when ``-M adapter`` was not
    given at all (an empty value is an error, never the bare base); ``device`` is
    syntactically valid but its availability is checked by :func:`check_device`.
    """

    adapter: str | None = None
    adapter_revision: str | None = None
    stage: str | None = None
    persona: str | None = None
    revision: str | None = None
    dtype: str | None = None
    device: str | None = None
    trust_remote_code: bool = False
    do_sample: bool | None = None
    repetition_penalty: float | None = None
    chat_template: str | None = None
    tool_protocol: ToolProtocolName = "json"
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    allow_pickle: bool = False
    kv_cache_mb: float = DEFAULT_KV_CACHE_MB
    bos: BosMode = "single"


def _as_bool(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise HFLoraError(f"hf-lora: -M {name}={value!r} must be true or false.")


def _as_str(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | dict):
        raise HFLoraError(
            f"hf-lora: -M {name}={value!r} was parsed as a {type(value).__name__} (Inspect "
            "parses -M values as YAML, and a comma makes a list); pass a single value, "
            "quoted if needed."
        )
    return str(value)


def _adapter(model_args: dict[str, Any]) -> str | None:
    """``-M adapter``: absent is the bare base; present but empty is an error."""
    if "adapter" not in model_args:
        return None
    raw = model_args["adapter"]
    value = _as_str("adapter", raw)
    if value is None or not value.strip():
        shown = "" if raw is None else repr(raw)  # Inspect parses `-M adapter=` as None
        raise HFLoraError(
            f"hf-lora: -M adapter={shown} is empty; pass a local adapter "
            "directory, a Hub id (org/name or org/name/subfolder) or a template with {persona}, or "
            "leave -M adapter out to evaluate the bare base (an empty value, e.g. an unset "
            "shell variable, is never taken as the base)."
        )
    return value.strip()


def _reject_empty(model_args: dict[str, Any]) -> None:
    """An option given with an empty value (``-M stage=``, an unset shell variable) is an error.

    Inspect parses ``-M name=`` as None; taking it as "not given" would silently run the
    default (for ``stage`` or ``adapter``: the bare base, labelled ``base``).
    """
    for name, raw in model_args.items():
        if name == "adapter":
            continue  # its own message, in _adapter
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            shown = "" if raw is None else repr(raw)
            raise HFLoraError(
                f"hf-lora: -M {name}={shown} is empty; give it a value, or leave -M {name} "
                "out for its default (an empty value, e.g. an unset shell variable, is never "
                "taken as the default)."
            )


def _repetition_penalty(value: Any) -> float | None:
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError("a boolean")
        number = float(value)
    except (TypeError, ValueError) as err:
        raise HFLoraError(
            f"hf-lora: -M repetition_penalty={value!r} is not a number; pass a number greater "
            "than 0 (1.0 = no penalty; OCT used 1.1)."
        ) from err
    if not number > 0 or number == float("inf"):
        raise HFLoraError(
            f"hf-lora: -M repetition_penalty={value!r} must be a finite number greater than 0 "
            "(1.0 = no penalty; OCT used 1.1)."
        )
    return number


def _max_batch_size(value: Any) -> int:
    if isinstance(value, bool) or not (
        isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())
    ):
        raise HFLoraError(
            f"hf-lora: -M max_batch_size={value!r} must be a whole number of at least 1 "
            f"(default {DEFAULT_MAX_BATCH_SIZE})."
        )
    number = int(value)
    if number < 1:
        raise HFLoraError(
            f"hf-lora: -M max_batch_size={value!r} must be at least 1 "
            f"(default {DEFAULT_MAX_BATCH_SIZE})."
        )
    return number


def _kv_cache_mb(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if isinstance(value, bool) or not number >= 0 or number == float("inf"):
        raise HFLoraError(
            f"hf-lora: -M kv_cache_mb={value!r} must be a number of MiB, 0 or more "
            f"(0 turns prefix KV reuse off; default {DEFAULT_KV_CACHE_MB:g})."
        )
    return number


def _choice(name: str, value: Any, accepted: tuple[str, ...], what: str) -> str:
    text = (_as_str(name, value) or accepted[0]).strip().lower()
    if text not in accepted:
        raise HFLoraError(f"hf-lora: -M {name}={value!r} is not accepted; use {what}.")
    return text


def _device(value: Any) -> str | None:
    text = _as_str("device", value)
    if text is None:
        return None
    if not _DEVICE_RE.match(text.strip().lower()):
        raise HFLoraError(f"hf-lora: -M device={value!r} is not a device; use {_DEVICES}.")
    return text.strip().lower()


def _dtype(value: Any) -> str | None:
    text = _as_str("dtype", value)
    if text is None:
        return None
    from charbench.provider.engine import resolve_dtype

    try:
        resolve_dtype(text, "cpu")
    except HFLoraError as err:
        raise HFLoraError(
            f"hf-lora: -M dtype={value!r} is not a dtype; use bfloat16, float16, float32 or "
            "auto (default: bfloat16 on CUDA, float32 elsewhere)."
        ) from err
    return text


def parse_options(model_args: dict[str, Any]) -> HFLoraOptions:
    """Validate Inspect's ``model_args`` for ``hf-lora`` (cheap; loads nothing).

    Raises:
        HFLoraError: an unknown arg, or a value the arg does not accept (the message names
            the ``-M`` option and what it accepts).
    """
    unknown = sorted(set(model_args) - set(KNOWN_ARGS))
    if unknown:
        raise HFLoraError(
            f"hf-lora: unknown model arg(s) {', '.join(unknown)}; valid -M args are "
            f"{', '.join(KNOWN_ARGS)}."
        )
    _reject_empty(model_args)
    get = model_args.get
    return HFLoraOptions(
        adapter=_adapter(model_args),
        adapter_revision=_as_str("adapter_revision", get("adapter_revision")),
        stage=_as_str("stage", get("stage")),
        persona=_as_str("persona", get("persona")),
        revision=_as_str("revision", get("revision")),
        dtype=_dtype(get("dtype")),
        device=_device(get("device")),
        trust_remote_code=bool(_as_bool("trust_remote_code", get("trust_remote_code"))),
        do_sample=_as_bool("do_sample", get("do_sample")),
        repetition_penalty=_repetition_penalty(get("repetition_penalty")),
        chat_template=_as_str("chat_template", get("chat_template")),
        tool_protocol=_choice(  # type: ignore[arg-type]
            "tool_protocol", get("tool_protocol"), ("json", "native"),
            "json (default) or native"),
        max_batch_size=_max_batch_size(get("max_batch_size", DEFAULT_MAX_BATCH_SIZE)),
        allow_pickle=bool(_as_bool("allow_pickle", get("allow_pickle"))),
        kv_cache_mb=_kv_cache_mb(get("kv_cache_mb", DEFAULT_KV_CACHE_MB)),
        bos=_choice(  # type: ignore[arg-type]
            "bos", get("bos"), BOS_MODES,
            "single (default: only the chat template's BOS) or vllm (the study's doubled "
            "BOS: the rendered prompt tokenized with special tokens added)"),
    )


def check_device(device: str | None) -> None:
    """Refuse a device the installed torch build cannot use (before any weights load).

    Raises:
        HFLoraError: ``cuda``/``cuda:N`` on a torch without CUDA or without GPU N, or ``mps``
            where MPS is unavailable; the message names ``-M device`` and the alternatives.
    """
    if device is None or device in ("auto", "cpu"):
        return
    import torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if count == 0:
            raise HFLoraError(
                f"hf-lora: -M device={device}: this torch build ({torch.__version__}) sees no "
                "CUDA device; use -M device=cpu (or auto), or install a CUDA build of torch "
                "on a machine with a GPU."
            )
        if index >= count:
            raise HFLoraError(
                f"hf-lora: -M device={device}: only {count} CUDA device(s) are visible "
                f"(cuda:0..cuda:{count - 1}); pick one of them or -M device=auto."
            )
    elif device == "mps" and not torch.backends.mps.is_available():
        raise HFLoraError(
            "hf-lora: -M device=mps: MPS is not available on this machine or torch build; "
            "use -M device=cpu (or auto)."
        )


def plan_adapters(options: HFLoraOptions, base: str, persona: str | None) -> list[str] | None:
    """The concrete adapter specs the model of ``persona`` loads, in order.

    Returns:
        ``[]`` for the bare base, one spec for an adapter, two (distillation, introspection)
        for ``stage=introspection``; None when ``persona`` is None and the model is a
        persona template (an adapter with ``{persona}`` or a non-base stage).

    Raises:
        HFLoraError: an unknown stage, stage and adapter together, a stage on a base
            without released adapters, a persona the release lacks, or a persona where
            nothing takes one.
    """
    if options.stage is not None:
        return _plan_stage(options, base, persona)
    spec = options.adapter
    if spec is None:
        if persona is not None:
            raise HFLoraError(
                "hf-lora: -M persona= only applies with an adapter template containing "
                "{persona} or with -M stage=."
            )
        return []
    if PERSONA_PLACEHOLDER in spec:
        return None if persona is None else [spec.replace(PERSONA_PLACEHOLDER, persona)]
    if persona is not None:
        raise HFLoraError(
            f"hf-lora: -M persona={persona} given but adapter {spec!r} has no {{persona}} "
            "placeholder."
        )
    return [spec]


def _plan_stage(options: HFLoraOptions, base: str, persona: str | None) -> list[str] | None:
    stage = options.stage
    if stage not in STAGES:
        raise HFLoraError(
            f"hf-lora: -M stage={stage!r} is not a stage; choose one of {', '.join(STAGES)}."
        )
    if options.adapter is not None:
        raise HFLoraError("hf-lora: pass either -M stage= or -M adapter=, not both.")
    if stage == "base":
        return []
    rb = released_base(base)
    if rb is None:
        raise HFLoraError(
            f"hf-lora: -M stage={stage} is only defined for the bases of the persona release "
            "(meta-llama/Llama-3.1-8B-Instruct, Qwen/Qwen2.5-7B-Instruct, "
            f"google/gemma-3-4b-it); for {base!r} pass -M adapter=<local dir or Hub id> "
            "instead."
        )
    if persona is None:
        return None
    try:
        if stage == "introspection":
            return [str(rb.adapter_for("distillation", persona)),
                    str(rb.adapter_for("introspection", persona))]
        return [str(rb.adapter_for(stage, persona))]  # type: ignore[arg-type, unused-ignore]
    except ValueError as err:
        raise HFLoraError(f"hf-lora: {err}") from err
