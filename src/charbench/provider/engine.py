"""The shared base model: loaded once per process, adapters resident, one batching worker.

:func:`get_shared_base` returns the :class:`SharedBase` for a (path, revision, dtype,
device, trust_remote_code) key, loading it on first use. Every ``hf-lora`` model instance
on that base (one per adapter or persona) submits its requests to the base's single worker
thread (a :class:`charbench._batcher.MicroBatcher`; scheduling in
:mod:`charbench.provider.scheduler`). Whenever the worker is free it takes
*everything* queued, groups requests with identical generation settings, and runs one
left-padded ``generate`` of up to ``max_batch_size`` rows, mixing adapters per row through
peft's ``adapter_names`` (``"__base__"`` for the bare base). There is no waiting period: a
lone request (an agent turn) starts immediately.

Per batch (:mod:`charbench.provider.batchgen`): each row is encoded on its own, so a row
the tokenizer rejects fails alone; a batch whose ``generate`` raises is rerun row by row,
so only the failing row's caller gets the error. Sampling knobs are explicit and each row
samples from its own seeded generator (:mod:`charbench.provider.sampling`). A prompt that
extends an earlier one on the same adapter starts from that one's cached key/value tensors
(:mod:`charbench.provider.kvcache`).

Why not transformers' continuous-batching manager (``generation/continuous_batching``,
evaluated on transformers 5.24): it packs every request into one row (``input_ids`` of
shape ``[1, total_tokens]`` with a paged cache), while peft's mixed-adapter dispatch
(``adapter_names``) selects LoRA weights by *batch row*, so one packed row cannot carry
several adapters; and it samples all requests from torch's global generator, so a row's
draw would again depend on its batch-mates. Instead :mod:`charbench.provider.scheduler`
decodes in chunks of ``decode_chunk`` tokens and lets unfinished rows rejoin the queue, so
a request that arrives while a batch decodes joins it at the next chunk boundary (not at
every step: true per-step joining needs a decode loop of its own, not ``generate``).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from charbench._device import default_device
from charbench.provider import kvcache
from charbench.provider.adapters import (
    AdapterInfo,
    check_base_name,
    check_shapes,
    combination_error,
    lora_module_paths,
    map_module_paths,
    prepare_config,
    read_adapter,
    safe_adapter_name,
    split_key,
    verify_loaded,
)
from charbench.provider.errors import HFLoraError
from charbench.provider.gentypes import GenResult, GenSettings
from charbench.provider.resolve import resolve_adapter
from charbench.provider.sampling import neutral_generation_config
from charbench.provider.scheduler import (
    BASE_ADAPTER,
    DEFAULT_DECODE_CHUNK,
    BatchScheduler,
    Resume,
)

__all__ = [
    "BASE_ADAPTER",
    "DEFAULT_DECODE_CHUNK",
    "DEFAULT_KV_CACHE_MB",
    "GenResult",
    "GenSettings",
    "Resume",
    "SharedBase",
    "default_device",
    "get_shared_base",
    "resolve_dtype",
]

logger = logging.getLogger(__name__)

DEFAULT_KV_CACHE_MB = 2048
"""Default prefix KV cache budget (MiB) of a shared base."""



_DTYPES = {
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "float32": "float32", "fp32": "float32", "float": "float32",
}


def resolve_dtype(dtype: str | None, device: str) -> str:
    """Canonical dtype name; default bfloat16 on CUDA, float32 elsewhere.

    Raises:
        HFLoraError: an unknown dtype name.
    """
    if dtype is None or str(dtype).lower() == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise HFLoraError(
            f"hf-lora: unknown dtype {dtype!r}; use one of bfloat16, float16, float32 (or auto)."
        )
    return _DTYPES[key]


def _load_base(
    name: str, *, revision: str | None, dtype: str, trust_remote_code: bool, token: str | None
) -> tuple[Any, Any]:
    """The tokenizer and causal LM of base ``name`` (on the CPU, in ``dtype``).

    Raises:
        HFLoraError: ``name`` looks like a local path that is not a directory, or the
            tokenizer or model cannot be loaded (the message says what to pass instead).
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    expanded = os.path.expanduser(name)
    if name.startswith(("/", "./", "../", "~")) and not os.path.isdir(expanded):
        raise HFLoraError(
            f"hf-lora: base model {name!r}: no such local directory. Pass an existing "
            "model directory (hf-lora//abs/path) or a Hub id (hf-lora/org/name)."
        )
    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            name, revision=revision, trust_remote_code=trust_remote_code, token=token
        )
        model = AutoModelForCausalLM.from_pretrained(
            name,
            revision=revision,
            dtype=getattr(torch, dtype),
            trust_remote_code=trust_remote_code,
            token=token,
        )
    except (OSError, ValueError) as err:
        raise HFLoraError(_base_load_message(name, err)) from err
    return tokenizer, model


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """Every end-of-sequence id: the generation config's (one or a list) and the tokenizer's."""
    eos: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            eos.add(value)
        elif isinstance(value, list | tuple):
            eos.update(int(v) for v in value)
    return frozenset(eos)


class SharedBase(BatchScheduler):
    """One loaded base model with its resident adapters and its batching worker.

    Use :func:`get_shared_base`; do not construct directly.
    """

    def __init__(
        self,
        name: str,
        *,
        revision: str | None,
        dtype: str,
        device: str,
        trust_remote_code: bool,
        token: str | None,
        kv_cache_mb: float = 0,
        decode_chunk: int = DEFAULT_DECODE_CHUNK,
    ) -> None:
        self.tokenizer: Any
        model: Any
        self.tokenizer, model = _load_base(
            name, revision=revision, dtype=dtype, trust_remote_code=trust_remote_code, token=token
        )
        self.name = name
        self.device = device
        self.dtype = dtype
        self.model: Any = model.to(device).eval()
        self.peft: Any = None
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.family: str = str(getattr(self.model.config, "model_type", "") or "")
        self.eos_ids: frozenset[int] = _eos_ids(self.model, self.tokenizer)
        # the model's own sampling defaults never apply: every knob is explicit
        self.original_generation_config: Any = self.model.generation_config
        self.model.generation_config = neutral_generation_config(self.model.generation_config)
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.prefix_cache: kvcache.PrefixCache | None = None
        if kv_cache_mb > 0 and kvcache.supports_reuse(self.model.config):
            self.prefix_cache = kvcache.PrefixCache(int(kv_cache_mb * 2**20))
        self.modules: set[str] = {n for n, _ in self.model.named_modules() if n}
        self.adapters: dict[str, AdapterInfo] = {}
        self._by_key: dict[tuple[str, ...], str] = {}
        self.lock = threading.RLock()
        # the Rust tokenizer must not be used from two threads at once ("Already borrowed")
        self.tokenizer_lock = threading.RLock()
        self._init_scheduler(decode_chunk)

    # ----------------------------------------------------------------- adapters

    def ensure_adapter(
        self,
        spec: str,
        *,
        revision: str | None = None,
        token: str | None = None,
        allow_pickle: bool = False,
    ) -> AdapterInfo:
        """Load the adapter named by ``spec`` (once) and return it.

        Raises:
            HFLoraError: resolution, mismatch or verification failures (see
                :mod:`charbench.provider.adapters`).
        """
        resolved = resolve_adapter(spec, revision=revision, token=token,
                                   allow_pickle=allow_pickle)
        key = ("adapter", str(resolved.path))
        with self.lock:
            if key in self._by_key:
                return self.adapters[self._by_key[key]]
            info = self._load(resolved.path, spec, allow_pickle=allow_pickle)
            self._by_key[key] = info.name
            return info

    def ensure_combined(self, parts: list[AdapterInfo], label: str) -> AdapterInfo:
        """An adapter equal to applying all ``parts`` at once (their deltas summed).

        Used for ``stage=introspection``: merging the distillation adapter into the base
        and applying the introspection adapter on top equals adding both LoRA deltas,
        because LoRA on linear layers is additive. Implemented with peft's
        ``add_weighted_adapter(combination_type="cat")`` (exact: the combined rank is the
        sum of the ranks), and checked numerically on one layer.
        """
        key = ("combined", *(p.name for p in parts))
        with self.lock:
            if key in self._by_key:
                return self.adapters[self._by_key[key]]
            for p in parts:
                cfg = p.config
                if cfg.get("use_rslora") or cfg.get("use_dora"):
                    raise HFLoraError(
                        f"hf-lora: cannot compose {p.label!r}: rsLoRA/DoRA adapters are not "
                        "additive in peft's concatenation; merge them offline instead."
                    )
            name = safe_adapter_name(label, set(self.adapters))
            self.peft.add_weighted_adapter(
                [p.name for p in parts], [1.0] * len(parts), name, combination_type="cat"
            )
            err = combination_error(self.peft, [p.name for p in parts], name)
            if err > 1e-3:
                self.peft.delete_adapter(name)
                raise HFLoraError(
                    f"hf-lora: composing {label!r} is not exact (relative error {err:.2e})."
                )
            nbytes = sum(
                t.numel() * t.element_size()
                for n, t in self.peft.named_parameters()
                if f".{name}." in n
            )
            info = AdapterInfo(name=name, label=label, path=None,
                               n_tensors=sum(p.n_tensors for p in parts), nbytes=nbytes)
            self.adapters[name] = info
            self._by_key[key] = name
            return info

    def _load(self, path: Path, label: str, *, allow_pickle: bool) -> AdapterInfo:
        from peft import PeftModel
        from peft.utils import set_peft_model_state_dict

        config, weights = read_adapter(path, allow_pickle=allow_pickle)
        check_base_name(config.get("base_model_name_or_path"), self.name, label)
        paths = {split_key(k)[0] for k in weights}
        try:
            mapping = map_module_paths(paths, self.modules)
        except HFLoraError as err:
            raise HFLoraError(f"hf-lora: adapter {label!r} does not fit the base "
                              f"{self.name}: {err}") from err
        check_shapes(weights, mapping, self.model, label)
        lora_paths, _saved = lora_module_paths(weights)
        lora_config = prepare_config(config, {p: mapping[p] for p in lora_paths} | {
            p: mapping[p] for p in paths - lora_paths})
        name = safe_adapter_name(label, set(self.adapters))
        renamed = {a: m for a, m in mapping.items() if a != m}
        if renamed:
            logger.info("hf-lora: adapter %r: remapped %d module paths (e.g. %s -> %s)",
                        label, len(renamed), *next(iter(renamed.items())))
        mapped = {}
        for key, tensor in weights.items():
            mpath, tail = split_key(key)
            mapped[f"base_model.model.{mapping[mpath]}.{tail}"] = tensor
        created = False
        try:
            if self.peft is None:
                self.peft = PeftModel(self.model, lora_config, adapter_name=name)
                self.peft.eval()
                created = True
            else:
                self.peft.add_adapter(name, lora_config)
            result: Any = set_peft_model_state_dict(self.peft, mapped, adapter_name=name)
            unexpected = [k for k in result.unexpected_keys]
            if unexpected:
                raise HFLoraError(
                    f"hf-lora: adapter {label!r}: {len(unexpected)} tensors did not land "
                    f"(e.g. {', '.join(unexpected[:3])})."
                )
            nbytes = verify_loaded(self.peft, weights, mapping, name, label)
        except HFLoraError:
            self._discard(name, created)
            raise
        except (RuntimeError, ValueError, KeyError) as err:
            self._discard(name, created)
            raise HFLoraError(f"hf-lora: loading adapter {label!r} failed: {err}") from err
        self.peft.eval()
        info = AdapterInfo(name=name, label=label, path=path, n_tensors=len(weights),
                           nbytes=nbytes, remapped=renamed, config=config)
        self.adapters[name] = info
        return info

    def _discard(self, name: str, created: bool) -> None:
        if self.peft is None:
            return
        if created:
            self.model = self.peft.unload()
            self.peft = None
            return
        if name in self.peft.peft_config:
            self.peft.delete_adapter(name)

    def adapter_bytes(self) -> int:
        """Bytes of all resident adapter weights."""
        return sum(a.nbytes for a in self.adapters.values())


def _base_load_message(name: str, err: Exception) -> str:
    text = str(err)
    low = text.lower()
    if "gated" in low or "401" in low or "403" in low:
        hint = (f"{name} is gated or private: accept its terms on https://huggingface.co/{name} "
                "and set HF_TOKEN.")
    elif "offline" in low or "connect" in low or "cannot find the requested files" in low \
            or "we couldn't connect" in low or "couldn't connect" in low:
        hint = ("the Hugging Face Hub is unreachable and the model is not cached: pass a local "
                "directory as the model name (hf-lora//path/to/base) or set HF_HUB_OFFLINE=1 "
                "with a populated cache.")
    elif "does not appear to have" in low or "not a valid model identifier" in low or \
            "is not a local folder" in low:
        hint = "no such local directory or Hub model."
    else:
        hint = text.splitlines()[0] if text else type(err).__name__
    return f"hf-lora: cannot load base model {name!r}: {hint}"


_BASES: dict[tuple[str, str | None, str, str, bool], SharedBase] = {}
_BASES_LOCK = threading.Lock()


def get_shared_base(
    name: str,
    *,
    revision: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    token: str | None = None,
    kv_cache_mb: float = DEFAULT_KV_CACHE_MB,
) -> SharedBase:
    """The process-wide :class:`SharedBase` for this key, loaded on first use.

    Args:
        name: Hub id or local directory of the base model.
        revision: Hub revision (default main).
        dtype: ``bfloat16`` / ``float16`` / ``float32`` / ``auto`` (default: bf16 on CUDA,
            fp32 otherwise).
        device: ``cuda``, ``cuda:1``, ``cpu``, ``mps`` or ``auto`` (default: auto).
        trust_remote_code: passed to transformers (default False).
        token: Hub token (default: huggingface_hub's lookup).
        kv_cache_mb: prefix KV cache budget in MiB (0: no reuse); set by the first caller
            that loads this base (:mod:`charbench.provider.kvcache`).
    """
    dev = default_device() if device in (None, "auto") else str(device)
    dt = resolve_dtype(dtype, dev)
    key = (name, revision, dt, dev, bool(trust_remote_code))
    with _BASES_LOCK:
        base = _BASES.get(key)
        if base is None:
            base = SharedBase(name, revision=revision, dtype=dt, device=dev,
                              trust_remote_code=trust_remote_code, token=token,
                              kv_cache_mb=kv_cache_mb)
            _BASES[key] = base
        return base

