"""The shared base model: loaded once per process, adapters resident, one batching worker.

:func:`get_shared_base` returns the :class:`SharedBase` for a (path, revision, dtype,
device, trust_remote_code) key, loading it on first use. Every ``hf-lora`` model instance
on that base (one per adapter or persona) submits its requests to the base's single worker
thread. Whenever the worker is free it takes *everything* queued, groups requests with
identical generation settings, and runs one left-padded ``generate`` of up to
``max_batch_size`` rows, mixing adapters per row through peft's ``adapter_names``
(``"__base__"`` for the bare base). There is no waiting period: a lone request (an agent
turn) starts immediately.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from charbench.provider.resolve import resolve_adapter

logger = logging.getLogger(__name__)

BASE_ADAPTER = "__base__"
"""peft's per-row name for 'no adapter'."""


@dataclass(frozen=True)
class GenSettings:
    """Generation settings; requests are batched together only when these are equal."""

    max_new_tokens: int
    do_sample: bool
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop_seqs: tuple[str, ...] = ()
    add_special_tokens: bool = False

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model.generate`` (sampling knobs only when sampling)."""
        kw: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        if self.do_sample:
            if self.temperature is not None:
                kw["temperature"] = self.temperature
            if self.top_p is not None:
                kw["top_p"] = self.top_p
            if self.top_k is not None:
                kw["top_k"] = self.top_k
        else:
            kw.update(temperature=None, top_p=None, top_k=None)
        if self.repetition_penalty is not None:
            kw["repetition_penalty"] = self.repetition_penalty
        return kw


@dataclass
class GenResult:
    """One row's result."""

    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str  # "stop" | "max_tokens"
    time: float
    batch_size: int


BATCH_LENGTH_RATIO = 2.0
"""Longest/shortest prompt (in characters) allowed in one batch, relative to its oldest
request. Left padding makes every row cost the longest row's length: without this bound a
60-token chat prompt batched with a 3,000-token agent prompt costs 50x its own work."""


def _batchable(head: _Request, other: _Request) -> bool:
    """Whether ``other`` may share a batch with ``head`` (same settings, similar length)."""
    if other.settings != head.settings:
        return False
    a, b = max(len(head.prompt), 1), max(len(other.prompt), 1)
    return max(a, b) / min(a, b) <= BATCH_LENGTH_RATIO


@dataclass
class _Request:
    prompt: str
    adapter: str
    settings: GenSettings
    max_batch_size: int
    future: concurrent.futures.Future[GenResult] = field(
        default_factory=concurrent.futures.Future
    )


def default_device() -> str:
    """``cuda`` when available, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


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


class SharedBase:
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
    ) -> None:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        expanded = os.path.expanduser(name)
        if name.startswith(("/", "./", "../", "~")) and not os.path.isdir(expanded):
            raise HFLoraError(
                f"hf-lora: base model {name!r}: no such local directory. Pass an existing "
                "model directory (hf-lora//abs/path) or a Hub id (hf-lora/org/name)."
            )
        self.name = name
        self.device = device
        self.dtype = dtype
        transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        try:
            self.tokenizer: Any = AutoTokenizer.from_pretrained(
                name, revision=revision, trust_remote_code=trust_remote_code, token=token
            )
            model: Any = AutoModelForCausalLM.from_pretrained(
                name,
                revision=revision,
                dtype=getattr(torch, dtype),
                trust_remote_code=trust_remote_code,
                token=token,
            )
        except (OSError, ValueError) as err:
            raise HFLoraError(_base_load_message(name, err)) from err
        self.model: Any = model.to(device).eval()
        self.peft: Any = None
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.family: str = str(getattr(self.model.config, "model_type", "") or "")
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        eos: set[int] = set()
        for value in (gen_eos, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                eos.add(value)
            elif isinstance(value, list | tuple):
                eos.update(int(v) for v in value)
        self.eos_ids: frozenset[int] = frozenset(eos)
        self.modules: set[str] = {n for n, _ in self.model.named_modules() if n}
        self.adapters: dict[str, AdapterInfo] = {}
        self._by_key: dict[tuple[str, ...], str] = {}
        self.lock = threading.RLock()
        # items are lists of requests: one list per event-loop tick (see submit_async)
        self._queue: queue.Queue[list[_Request]] = queue.Queue()
        self._tick_buffers: dict[asyncio.AbstractEventLoop, list[_Request]] = {}
        self._worker: threading.Thread | None = None
        # separate from `lock` (held during generate): submit() must never wait for a batch
        self._worker_lock = threading.Lock()
        # the Rust tokenizer must not be used from two threads at once ("Already borrowed")
        self.tokenizer_lock = threading.RLock()
        self.batches_run = 0
        self.rows_run = 0

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

    # ----------------------------------------------------------------- generation

    def submit(self, prompt: str, adapter: str, settings: GenSettings,
               max_batch_size: int) -> concurrent.futures.Future[GenResult]:
        """Queue one generation request; the worker batches it with whatever is queued."""
        req = self._request(prompt, adapter, settings, max_batch_size)
        self._start_worker()
        self._queue.put([req])
        return req.future

    def submit_async(self, prompt: str, adapter: str, settings: GenSettings,
                     max_batch_size: int) -> concurrent.futures.Future[GenResult]:
        """Like :meth:`submit`, from a running asyncio loop, coalescing one loop tick.

        Requests submitted by coroutines that run in the same event-loop iteration (Inspect
        starting many samples at once) reach the worker together, as one list, at the end of
        that iteration (``loop.call_soon``). This costs no waiting time, but keeps an idle
        worker from starting a batch of one while the rest of a burst is still being
        rendered.
        """
        req = self._request(prompt, adapter, settings, max_batch_size)
        loop = asyncio.get_running_loop()
        buffer = self._tick_buffers.get(loop)
        if buffer is None:
            buffer = self._tick_buffers[loop] = []
            loop.call_soon(self._flush_tick, loop)
        buffer.append(req)
        return req.future

    def _flush_tick(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._tick_buffers.pop(loop, [])
        if batch:
            self._start_worker()
            self._queue.put(batch)

    def _request(self, prompt: str, adapter: str, settings: GenSettings,
                 max_batch_size: int) -> _Request:
        if adapter != BASE_ADAPTER and adapter not in self.adapters:
            raise HFLoraError(f"hf-lora: adapter {adapter!r} is not loaded on {self.name}.")
        return _Request(prompt=prompt, adapter=adapter, settings=settings,
                        max_batch_size=max(1, int(max_batch_size)))

    def _start_worker(self) -> None:
        with self._worker_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._loop, name=f"hf-lora-worker:{self.name}", daemon=True
                )
                self._worker.start()

    def _loop(self) -> None:
        pending: list[_Request] = []
        while True:
            if not pending:
                pending.extend(self._queue.get())
            while True:
                try:
                    pending.extend(self._queue.get_nowait())
                except queue.Empty:
                    break
            head = pending[0]  # the oldest request is always served: no starvation
            batch = [r for r in pending if _batchable(head, r)][: head.max_batch_size]
            taken = {id(r) for r in batch}
            pending = [r for r in pending if id(r) not in taken]
            batch = [r for r in batch if r.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                results = self.generate_batch(
                    [r.prompt for r in batch], [r.adapter for r in batch], head.settings
                )
            except BaseException as err:  # deliver every failure to its callers
                for r in batch:
                    r.future.set_exception(err)
                continue
            for r, res in zip(batch, results, strict=True):
                r.future.set_result(res)

    def generate_batch(self, prompts: list[str], adapters: list[str],
                       settings: GenSettings) -> list[GenResult]:
        """Run one left-padded ``generate`` over ``prompts`` (synchronously).

        Args:
            prompts: rendered prompts (tokenized without adding special tokens: the chat
                template already wrote BOS where the model wants it).
            adapters: per-row adapter names (``"__base__"`` for none).
            settings: shared generation settings.

        Returns:
            Per-row results with each row's own (unpadded) token counts.
        """
        import torch

        start = time.monotonic()
        with self.tokenizer_lock:
            enc = self.tokenizer(
                prompts,
                add_special_tokens=settings.add_special_tokens,
                padding=True,
                padding_side="left",
                return_tensors="pt",
            ).to(self.device)
        kwargs = settings.generate_kwargs()
        kwargs["pad_token_id"] = self.tokenizer.pad_token_id
        if self.eos_ids:
            kwargs["eos_token_id"] = sorted(self.eos_ids)
        if settings.stop_seqs:
            kwargs["stop_strings"] = list(settings.stop_seqs)
            kwargs["tokenizer"] = self.tokenizer
        with self.lock, torch.inference_mode():
            if settings.do_sample and settings.seed is not None:
                torch.manual_seed(settings.seed)
            uniform = len(set(adapters)) == 1
            if self.peft is not None and uniform and adapters[0] == BASE_ADAPTER:
                # one adapter for every row: the plain (faster) forward, adapters disabled
                with self.peft.disable_adapter():
                    out = self.peft.generate(
                        input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                        **kwargs,
                    )
            elif self.peft is not None and uniform:
                self.peft.base_model.set_adapter(adapters[0], inference_mode=True)
                out = self.peft.generate(
                    input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **kwargs,
                )
            elif self.peft is not None:
                out = self.peft.generate(
                    input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                    adapter_names=list(adapters), **kwargs,
                )
            else:
                if any(a != BASE_ADAPTER for a in adapters):
                    raise HFLoraError("hf-lora: no adapters are loaded on this base.")
                out = self.model.generate(
                    input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **kwargs,
                )
        elapsed = time.monotonic() - start
        self.batches_run += 1
        self.rows_run += len(prompts)
        prompt_len = enc["input_ids"].shape[1]
        lengths = enc["attention_mask"].sum(dim=1).tolist()
        results = []
        with self.tokenizer_lock:
            for i in range(len(prompts)):
                gen = out[i, prompt_len:].tolist()
                results.append(self._finish_row(gen, int(lengths[i]), settings, elapsed,
                                                len(prompts)))
        return results

    def _finish_row(self, gen: list[int], n_in: int, settings: GenSettings,
                    elapsed: float, batch_size: int) -> GenResult:
        n_out = len(gen)
        stop_reason = "max_tokens"
        body = gen
        for j, tok in enumerate(gen):
            if tok in self.eos_ids:
                n_out, body, stop_reason = j + 1, gen[:j], "stop"
                break
        text = self.tokenizer.decode(body, skip_special_tokens=False)
        if settings.stop_seqs:
            cut = min((text.find(s) for s in settings.stop_seqs if s in text), default=-1)
            if cut >= 0:
                text = text[:cut]
                stop_reason = "stop"
                for k in range(1, len(body) + 1):
                    piece = self.tokenizer.decode(body[:k], skip_special_tokens=False)
                    if any(s in piece for s in settings.stop_seqs):
                        n_out = k
                        break
        return GenResult(text=text, input_tokens=n_in, output_tokens=n_out,
                         stop_reason=stop_reason, time=elapsed, batch_size=batch_size)


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
    """
    dev = default_device() if device in (None, "auto") else str(device)
    dt = resolve_dtype(dtype, dev)
    key = (name, revision, dt, dev, bool(trust_remote_code))
    with _BASES_LOCK:
        base = _BASES.get(key)
        if base is None:
            base = SharedBase(name, revision=revision, dtype=dt, device=dev,
                              trust_remote_code=trust_remote_code, token=token)
            _BASES[key] = base
        return base


def loaded_bases() -> list[SharedBase]:
    """All bases loaded in this process (for diagnostics and tests)."""
    with _BASES_LOCK:
        return list(_BASES.values())
