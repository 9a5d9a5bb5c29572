"""Loading LoRA adapters onto a shared base, and verifying that every tensor landed.

peft's own loader only *warns* when adapter keys do not match the model ("Found missing
adapter keys"), leaving those LoRA weights at their initialisation (B = 0, i.e. no effect):
a silently unapplied adapter would score at chance. This module therefore

1. reads ``adapter_config.json`` and the weights (safetensors; pickle only on request),
2. checks the recorded ``base_model_name_or_path`` against the base,
3. maps each tensor's module path onto the loaded module tree (identity first; otherwise
   the Gemma 3 layouts ``model.language_model.layers.N`` / ``language_model.model.layers.N``
   / ``model.layers.N`` are matched by dropping the ``model`` and ``language_model`` path
   components, and only a unique match is accepted),
4. checks every tensor's shape against the target module before touching the model,
5. injects the adapter under its own name and loads the weights with peft, and
6. verifies that every tensor of the file sits, with its exact values, at its mapped place
   in the model and that no LoRA parameter of the adapter was left uninitialised.

Any failure raises :class:`~charbench.provider.errors.HFLoraError` and removes the
half-loaded adapter.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charbench.personas import released_base
from charbench.provider.errors import HFLoraError
from charbench.provider.resolve import (
    ADAPTER_CONFIG,
    PICKLE_WEIGHTS,
    SAFETENSORS_WEIGHTS,
    ResolvedAdapter,
    resolve_adapter,
)

logger = logging.getLogger(__name__)

PEFT_PREFIX = "base_model.model."
_LORA_PARTS = (
    "lora_A",
    "lora_B",
    "lora_embedding_A",
    "lora_embedding_B",
    "lora_magnitude_vector",
)
_DROPPABLE = frozenset({"model", "language_model"})


@dataclass
class AdapterInfo:
    """A loaded adapter.

    Attributes:
        name: the adapter's name inside the shared ``PeftModel``.
        label: what the user called it (spec, or a composite label).
        path: the directory it was loaded from (None for composites).
        n_tensors: number of tensors loaded.
        nbytes: bytes of adapter weights resident in the model.
        remapped: adapter module path -> model module path, for every path that was renamed.
        config: ``adapter_config.json`` as loaded.
    """

    name: str
    label: str
    path: Path | None
    n_tensors: int
    nbytes: int
    remapped: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


def split_key(key: str) -> tuple[str, str]:
    """Split an adapter tensor key into (module path, parameter tail).

    ``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`` ->
    (``model.layers.0.self_attn.q_proj``, ``lora_A.weight``). Keys without a LoRA part
    (``modules_to_save`` copies, e.g. ``lm_head.weight``) split at the last component.
    """
    body = key[len(PEFT_PREFIX):] if key.startswith(PEFT_PREFIX) else key
    parts = body.split(".")
    for i, part in enumerate(parts):
        if part in _LORA_PARTS:
            return ".".join(parts[:i]), ".".join(parts[i:])
    return ".".join(parts[:-1]), parts[-1]


def peft_param_name(module_path: str, tail: str, adapter_name: str) -> str:
    """Name the loaded parameter of ``module_path``/``tail`` has in the PeftModel."""
    first, _, rest = tail.partition(".")
    if first in ("lora_A", "lora_B", "lora_magnitude_vector"):
        suffix = f"{first}.{adapter_name}.{rest}" if rest else f"{first}.{adapter_name}"
    elif first in ("lora_embedding_A", "lora_embedding_B"):
        suffix = f"{first}.{adapter_name}"
    else:
        suffix = f"modules_to_save.{adapter_name}.{tail}"
    return f"{PEFT_PREFIX}{module_path}.{suffix}"


def _normalise(path: str) -> str:
    return ".".join(p for p in path.split(".") if p not in _DROPPABLE)


def map_module_paths(paths: set[str], model_modules: set[str]) -> dict[str, str]:
    """Map adapter module paths onto the model's module names.

    Identity where the path exists; otherwise the unique model module with the same path
    after dropping ``model`` / ``language_model`` components (Gemma 3 layouts).

    Returns:
        adapter path -> model path, for every path.

    Raises:
        HFLoraError: a path matches no module, or several (ambiguous).
    """
    index: dict[str, list[str]] = {}
    for name in model_modules:
        index.setdefault(_normalise(name), []).append(name)
    mapping: dict[str, str] = {}
    unmatched: list[str] = []
    ambiguous: list[tuple[str, list[str]]] = []
    for path in sorted(paths):
        if path in model_modules:
            mapping[path] = path
            continue
        hits = index.get(_normalise(path), [])
        if len(hits) == 1:
            mapping[path] = hits[0]
        elif hits:
            ambiguous.append((path, sorted(hits)))
        else:
            unmatched.append(path)
    if unmatched or ambiguous:
        sample = sorted(model_modules, key=lambda n: (n.count("."), n))
        like = [n for n in sample if n.endswith(("q_proj", "down_proj"))][:3] or sample[:3]
        msg = [f"{len(unmatched) + len(ambiguous)} of {len(paths)} adapter modules do not "
               "match a module of the base model"]
        if unmatched:
            msg.append(f"unmatched, e.g.: {', '.join(unmatched[:5])}")
        if ambiguous:
            msg.append("ambiguous, e.g.: " + "; ".join(
                f"{p} -> {' | '.join(h[:3])}" for p, h in ambiguous[:3]))
        msg.append(f"the base has modules like: {', '.join(like)}")
        raise HFLoraError("; ".join(msg))
    return mapping


def read_adapter_config(path: Path) -> dict[str, Any]:
    """Read and check ``adapter_config.json`` of the adapter in ``path`` (no weights).

    Raises:
        HFLoraError: the file is unreadable, not a JSON object, or not a LoRA config.
    """
    cfg_path = path / ADAPTER_CONFIG
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HFLoraError(f"hf-lora: cannot read {cfg_path}: {err}") from err
    if not isinstance(config, dict):
        raise HFLoraError(f"hf-lora: {cfg_path} is not a JSON object.")
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise HFLoraError(
            f"hf-lora: adapter {path} is a {peft_type} adapter; only LoRA adapters are supported."
        )
    return config


def base_skeleton(base_name: str, *, revision: str | None = None,
                  trust_remote_code: bool = False, token: str | None = None) -> Any | None:
    """The base model's module tree on torch's meta device: shapes, no weights, no memory.

    Built from the base's ``config.json`` alone (a local directory, the Hugging Face cache,
    or a download of that one file), so adapters can be shape-checked before the base loads.

    Returns:
        The skeleton, or None when the config cannot be read or built (the base's own load
        then reports why, with its own what-to-do message).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(base_name, revision=revision, token=token,
                                            trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            skeleton: Any = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
                config, trust_remote_code=trust_remote_code)
        return skeleton
    except (OSError, ValueError, KeyError, ImportError) as err:
        logger.info("hf-lora: no shape preflight for %s (%s: %s)", base_name,
                    type(err).__name__, str(err).splitlines()[0] if str(err) else "")
        return None


def check_adapter_files(path: Path, label: str, base_name: str,
                        skeleton: Any | None = None) -> None:
    """Check an adapter's files without loading any weights (the preflight's deep check).

    Reads ``adapter_config.json`` (:func:`read_adapter_config`), compares its recorded
    base with ``base_name`` (:func:`check_base_name`: another released base is an error),
    and reads the safetensors header (when there is one) to check that it lists LoRA
    tensors. With a ``skeleton`` (:func:`base_skeleton`) it also maps every tensor onto the
    base's modules (:func:`map_module_paths`) and checks its shape (:func:`check_shapes`),
    as the load will. A pickle-only adapter gets the config checks only.

    Raises:
        HFLoraError: naming the adapter, the file and what is wrong with it.
    """
    from safetensors import SafetensorError, safe_open

    config = read_adapter_config(path)
    check_base_name(config.get("base_model_name_or_path"), base_name, label)
    st = path / SAFETENSORS_WEIGHTS
    if not st.is_file():
        return  # a pickle-only adapter, allowed by -M allow_pickle (checked at resolution)
    try:
        with safe_open(str(st), framework="pt") as handle:
            # (a safe_open handle is not iterable: .keys() is its API)
            shapes = {k: tuple(handle.get_slice(k).get_shape())
                      for k in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as err:
        raise HFLoraError(f"hf-lora: adapter {label!r}: cannot read {st}: {err}") from err
    if not any(split_key(k)[1].startswith(_LORA_PARTS) for k in shapes):
        raise HFLoraError(
            f"hf-lora: adapter {label!r}: {st} holds no LoRA tensors ({len(shapes)} tensors, "
            f"e.g. {', '.join(list(shapes)[:3]) or 'none'})."
        )
    if skeleton is not None:
        _check_fits(shapes, skeleton, label, base_name)


def _check_fits(shapes: dict[str, tuple[int, ...]], skeleton: Any, label: str,
                base_name: str) -> None:
    """Map and shape-check tensors of the given shapes against a meta-device base."""
    import torch

    modules = {n for n, _ in skeleton.named_modules() if n}
    try:
        mapping = map_module_paths({split_key(k)[0] for k in shapes}, modules)
    except HFLoraError as err:
        raise HFLoraError(f"hf-lora: adapter {label!r} does not fit the base {base_name}: "
                          f"{err}") from err
    meta = {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}
    check_shapes(meta, mapping, skeleton, label)


def verify_adapter(
    spec: str,
    *,
    base_name: str,
    revision: str | None = None,
    token: str | None = None,
    allow_pickle: bool = False,
    skeleton: Any | None = None,
) -> ResolvedAdapter:
    """Resolve ``spec`` and check its files against ``base_name``, loading no weights.

    The preflight of a persona template and of a concrete ``-M adapter``: local
    directories are checked in place, Hub specs are fetched into (or read from) the Hugging
    Face cache (:func:`~charbench.provider.resolve.resolve_adapter`), then
    :func:`check_adapter_files` reads the config and the weights' header (and, given the
    base's ``skeleton``, checks every tensor's module and shape).

    Raises:
        HFLoraError: whatever resolution or the file checks found, naming ``spec``.
    """
    resolved = resolve_adapter(spec, revision=revision, token=token, allow_pickle=allow_pickle)
    check_adapter_files(resolved.path, spec, base_name, skeleton)
    return resolved


def read_adapter(path: Path, *, allow_pickle: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``adapter_config.json`` and the weights of the adapter in ``path``.

    Returns:
        (config dict, state dict of CPU tensors).
    """
    import torch
    from safetensors.torch import load_file

    config = read_adapter_config(path)
    st = path / SAFETENSORS_WEIGHTS
    weights: Any
    if st.is_file():
        try:
            weights = load_file(str(st))
        except Exception as err:  # safetensors raises its own error types on a bad file
            raise HFLoraError(f"hf-lora: cannot read {st}: {err}") from err
    elif allow_pickle and (path / PICKLE_WEIGHTS).is_file():
        try:
            # weights_only: even an opted-in pickle may hold tensors only, never run code
            weights = torch.load(str(path / PICKLE_WEIGHTS), map_location="cpu",
                                 weights_only=True)
        except Exception as err:
            raise HFLoraError(
                f"hf-lora: refused {path / PICKLE_WEIGHTS}: it is not a plain tensor "
                f"checkpoint ({type(err).__name__}: {str(err).splitlines()[0]}). Convert the "
                f"adapter to {SAFETENSORS_WEIGHTS} from a trusted copy."
            ) from err
        if not isinstance(weights, dict) or not all(
            isinstance(v, torch.Tensor) for v in weights.values()
        ):
            raise HFLoraError(
                f"hf-lora: {path / PICKLE_WEIGHTS} is not a state dict of tensors."
            )
    else:
        raise HFLoraError(f"hf-lora: no {SAFETENSORS_WEIGHTS} in {path}.")
    if not weights:
        raise HFLoraError(f"hf-lora: adapter {path} has no tensors.")
    return config, weights


def check_base_name(adapter_base: str | None, base_name: str, label: str) -> None:
    """Compare an adapter's recorded base with the loaded base.

    Two different *released* bases (e.g. a Qwen adapter on Llama) are an error. Any other
    difference only warns: adapters trained on a local copy or a fine-tune record a path
    that legitimately differs. Shapes are checked separately and are always enforced.
    """
    if not adapter_base:
        return
    a, b = adapter_base.rstrip("/"), base_name.rstrip("/")
    if a.lower() == b.lower() or a.lower().rsplit("/", 1)[-1] == b.lower().rsplit("/", 1)[-1]:
        return
    ra, rb = released_base(a), released_base(b)
    if ra is not None and rb is not None and ra != rb:
        raise HFLoraError(
            f"hf-lora: adapter {label!r} was trained on {adapter_base} "
            f"({ra.short}), but the base model is {base_name} ({rb.short}). Use the matching "
            "base, or the adapter released for this base."
        )
    logger.warning(
        "hf-lora: adapter %r records base_model_name_or_path=%r, the loaded base is %r; "
        "continuing because shapes will be checked (a local or fine-tuned copy can differ).",
        label, adapter_base, base_name,
    )


def check_shapes(
    weights: dict[str, Any], mapping: dict[str, str], base_model: Any, label: str
) -> None:
    """Check every LoRA tensor's shape against its target module before loading.

    Raises:
        HFLoraError: listing examples of mismatched tensors.
    """
    bad: list[str] = []
    for key, tensor in weights.items():
        path, tail = split_key(key)
        module = base_model.get_submodule(mapping[path])
        base_layer = getattr(module, "base_layer", module)
        shape = tuple(tensor.shape)
        expect: str | None = None
        if tail.startswith("lora_A.") and hasattr(base_layer, "in_features"):
            if shape[-1] != base_layer.in_features:
                expect = f"in_features {base_layer.in_features}"
        elif tail.startswith("lora_B.weight") and hasattr(base_layer, "out_features"):
            if shape[0] != base_layer.out_features:
                expect = f"out_features {base_layer.out_features}"
        elif tail == "lora_embedding_A" and hasattr(base_layer, "num_embeddings"):
            if shape[-1] != base_layer.num_embeddings:
                expect = f"num_embeddings {base_layer.num_embeddings}"
        elif tail == "lora_embedding_B" and hasattr(base_layer, "embedding_dim"):
            if shape[0] != base_layer.embedding_dim:
                expect = f"embedding_dim {base_layer.embedding_dim}"
        elif not tail.startswith(_LORA_PARTS):
            param = dict(base_layer.named_parameters()).get(tail)
            if param is not None and tuple(param.shape) != shape:
                expect = f"shape {tuple(param.shape)}"
        if expect:
            bad.append(f"{key} {shape} vs the base's {mapping[path]} ({expect})")
    if bad:
        raise HFLoraError(
            f"hf-lora: adapter {label!r} does not fit the base model: {len(bad)} tensor(s) have "
            f"the wrong shape, e.g. {'; '.join(bad[:3])}. It was trained on a different base."
        )


def prepare_config(config: dict[str, Any], mapping: dict[str, str]) -> Any:
    """Build the peft ``LoraConfig`` for injection, remapped where paths were renamed."""
    from peft import LoraConfig

    cfg = dict(config)
    known = set(LoraConfig.__dataclass_fields__)
    cfg = {k: v for k, v in cfg.items() if k in known}
    cfg["inference_mode"] = True
    renamed = {a: m for a, m in mapping.items() if a != m}
    if renamed:
        lora_paths = sorted({m for m in mapping.values()})
        cfg["target_modules"] = lora_paths
        cfg["exclude_modules"] = None
        for pattern_key in ("rank_pattern", "alpha_pattern"):
            pattern = cfg.get(pattern_key) or {}
            cfg[pattern_key] = {renamed.get(k, k): v for k, v in pattern.items()}
        mts = cfg.get("modules_to_save")
        if mts:
            cfg["modules_to_save"] = [renamed.get(m, m) for m in mts]
    try:
        return LoraConfig(**cfg)
    except (TypeError, ValueError) as err:
        raise HFLoraError(f"hf-lora: invalid adapter_config.json: {err}") from err


def lora_module_paths(weights: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(paths of modules with LoRA tensors, paths of modules_to_save copies)."""
    lora: set[str] = set()
    saved: set[str] = set()
    for key in weights:
        path, tail = split_key(key)
        (lora if tail.startswith(_LORA_PARTS) else saved).add(path)
    return lora, saved


def verify_loaded(
    peft_model: Any, weights: dict[str, Any], mapping: dict[str, str], name: str, label: str
) -> int:
    """Verify every tensor of ``weights`` landed with its values; return resident bytes.

    Raises:
        HFLoraError: tensors that did not land, landed with other values, or adapter
            parameters left uninitialised.
    """
    import torch

    params = dict(peft_model.named_parameters())
    params.update(dict(peft_model.named_buffers()))
    missing: list[str] = []
    differ: list[str] = []
    landed: set[str] = set()
    for key, tensor in weights.items():
        path, tail = split_key(key)
        target = peft_param_name(mapping[path], tail, name)
        param = params.get(target)
        if param is None:
            missing.append(key)
            continue
        landed.add(target)
        if tuple(param.shape) != tuple(tensor.shape) or not torch.equal(
            param.detach().to("cpu", tensor.dtype), tensor
        ):
            differ.append(key)
    seg = f".{name}."
    own = [n for n in params if seg in n or n.endswith(f".{name}")]
    untouched = sorted(set(own) - landed)
    if missing or differ or untouched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of {len(weights)} tensors did not land on any module "
                         f"(e.g. {', '.join(missing[:3])})")
        if differ:
            parts.append(f"{len(differ)} tensors landed with different values "
                         f"(e.g. {', '.join(differ[:3])})")
        if untouched:
            parts.append(f"{len(untouched)} LoRA parameters of the adapter got no weights and "
                         f"would stay at their initialisation (e.g. {', '.join(untouched[:3])})")
        raise HFLoraError(
            f"hf-lora: adapter {label!r} was not applied completely: {'; '.join(parts)}. "
            "A partly applied adapter silently changes what is measured, so it is refused."
        )
    return int(sum(params[n].numel() * params[n].element_size() for n in own))


def combination_error(peft_model: Any, parts: list[str], combined: str) -> float:
    """Relative error of a combined adapter's delta against the sum of its parts' deltas.

    Checked on the first LoRA layer that carries the combined adapter (cheap).

    Returns:
        ``max|combined - sum(parts)| / max|sum(parts)|`` on that layer (``max|combined|``
        when no part is on it; 0.0 when no layer carries ``combined``). An exact
        composition gives about 1e-7 in float32; callers compare against a tolerance.
    """
    from peft.tuners.lora import LoraLayer

    for module in peft_model.modules():
        if isinstance(module, LoraLayer) and combined in module.lora_A:
            layer: Any = module
            total = None
            for part in parts:
                if part in module.lora_A:
                    delta = layer.get_delta_weight(part).float()
                    total = delta if total is None else total + delta
            got = layer.get_delta_weight(combined).float()
            if total is None:
                return float(got.abs().max())
            scale = float(total.abs().max()) or 1.0
            return float((got - total).abs().max()) / scale
    return 0.0


_NAME_RE = re.compile(r"[^A-Za-z0-9_]")


def safe_adapter_name(label: str, taken: set[str]) -> str:
    """A peft-safe, unique adapter name derived from ``label``."""
    stem = _NAME_RE.sub("_", label)[-48:].strip("_") or "adapter"
    name, i = stem, 1
    while name in taken or name == "__base__":
        i += 1
        name = f"{stem}_{i}"
    return name
