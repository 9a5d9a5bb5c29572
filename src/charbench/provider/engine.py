"""The shared base model: loaded once per process, adapters resident, one batching worker.

:func:`get_shared_base` returns the :class:`SharedBase` for a (path, revision, dtype,
device, trust_remote_code) key, loading it on first use. Every ``hf-lora`` model instance
on that base (one per adapter or persona) submits its requests to the base's single worker
thread (a :class:`charbench._batcher.MicroBatcher`). Whenever the worker is free it takes
*everything* queued, groups requests with identical generation settings, and runs one
left-padded ``generate`` of up to ``max_batch_size`` rows, mixing adapters per row through
peft's ``adapter_names`` (``"__base__"`` for the bare base). There is no waiting period: a
lone request (an agent turn) starts immediately.

Per batch (:mod:`charbench.provider.batchgen`): each row is encoded on its own, so a row
the tokenizer rejects fails alone; a batch whose ``generate`` raises is rerun row by row,
so only the failing row's caller gets the error. Sampling knobs are explicit and each row
samples from its own seeded generator (:mod:`charbench.provider.sampling`).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charbench._batcher import MicroBatcher, Pending
from charbench.provider import batchgen, kvcache
from charbench.provider.adapters import (
    AdapterInfo,
    check_base_name,
    check_shapes,
    combination_is_exact,
    lora_module_paths,
    map_module_paths,
    prepare_config,
    read_adapter,
    safe_adapter_name,
    split_key,
    verify_loaded,
)
from charbench.provider.batchgen import RowError
from charbench.provider.errors import HFLoraError
from charbench.provider.resolve import resolve_adapter
from charbench.provider.sampling import (
    SeedBook,
    active_sample_key,
    neutral_generation_config,
    prompt_digest,
    request_seed,
)

logger = logging.getLogger(__name__)

DEFAULT_KV_CACHE_MB = 2048
"""Default prefix KV cache budget (MiB) of a shared base."""

BASE_ADAPTER = "__base__"
"""peft's per-row name for 'no adapter'."""


@dataclass(frozen=True)
class GenSettings:
    """Generation settings; requests are batched together only when these are equal.

    Every knob is explicit (see :mod:`charbench.provider.sampling`): the model's
    ``generation_config.json`` never fills one in. ``top_k`` None (or 0) means no top-k,
    ``top_p`` None means no nucleus cut, ``repetition_penalty`` None means 1.0, and
    ``temperature`` None with sampling means 1.0 (vLLM's default).
    """

    max_new_tokens: int
    do_sample: bool
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop_seqs: tuple[str, ...] = ()
    add_special_tokens: bool = False
    """Tokenize the rendered prompt with the tokenizer's special tokens added (``-M
    bos=vllm``: the study's vLLM did, doubling BOS for Llama and Gemma)."""

    def effective_temperature(self) -> float | None:
        """The sampling temperature, or None for greedy decoding."""
        if not self.do_sample:
            return None
        t = 1.0 if self.temperature is None else float(self.temperature)
        return t if t > 0 else None

    def effective_repetition_penalty(self) -> float:
        """The repetition penalty passed to ``generate`` (1.0: none)."""
        return 1.0 if self.repetition_penalty is None else float(self.repetition_penalty)

    def generate_kwargs(self) -> dict[str, Any]:
        """The effective knobs, for the logged request (what the engine applies)."""
        temperature = self.effective_temperature()
        kw: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": temperature is not None,
            "repetition_penalty": self.effective_repetition_penalty(),
            "add_special_tokens": self.add_special_tokens,
        }
        if temperature is not None:
            kw.update(temperature=temperature, top_p=self.top_p or 1.0,
                      top_k=self.top_k or 0)
        return kw


@dataclass
class GenResult:
    """One row's result.

    ``text`` is decoded without special tokens and sanitized (:mod:`charbench.textsafe`);
    ``raw_text`` is the same completion with special tokens kept and nothing replaced (None
    when not known, e.g. a result assembled by the caller); ``sanitized`` counts the
    characters :func:`~charbench.textsafe.sanitize` replaced in ``text``; ``seed`` is the
    row's own sampling seed (None when greedy); ``cached_tokens`` the prompt tokens reused
    from :mod:`charbench.provider.kvcache` instead of computed.
    """

    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str  # "stop" | "max_tokens"
    time: float
    batch_size: int
    raw_text: str | None = None
    sanitized: int = 0
    seed: int | None = None
    cached_tokens: int = 0
    """Prompt tokens taken from the prefix cache (not computed) for this row."""


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


@dataclass(frozen=True)
class _Request:
    prompt: str
    adapter: str
    settings: GenSettings
    max_batch_size: int
    seed: int | None = None
    """This row's sampling seed (:func:`~charbench.provider.sampling.request_seed`)."""


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
        kv_cache_mb: float = 0,
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
        self._intake: MicroBatcher[_Request, GenResult] = MicroBatcher(
            self._serve_round, f"hf-lora-worker:{name}")
        self._seeds = SeedBook()
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
            err = combination_is_exact(self.peft, [p.name for p in parts], name)
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
        """Queue one generation request; the worker batches it with whatever is queued.

        A sampled request gets its own seed here (:func:`request_seed` of the settings'
        seed and the request's key: the active Inspect sample and epoch, the adapter, a
        hash of the prompt and how often this exact request was made before).
        """
        return self._intake.submit(self._request(prompt, adapter, settings, max_batch_size))

    def submit_async(self, prompt: str, adapter: str, settings: GenSettings,
                     max_batch_size: int) -> concurrent.futures.Future[GenResult]:
        """Like :meth:`submit`, from a running asyncio loop, coalescing one loop tick.

        Requests submitted by coroutines that run in the same event-loop iteration (Inspect
        starting many samples at once) reach the worker together (see
        :meth:`charbench._batcher.MicroBatcher.submit_in_loop`).
        """
        req = self._request(prompt, adapter, settings, max_batch_size)
        return self._intake.submit_in_loop(req)

    def close(self) -> None:
        """Stop this base's worker (queued requests are served first; later ones fail)."""
        self._intake.close()

    def _request(self, prompt: str, adapter: str, settings: GenSettings,
                 max_batch_size: int) -> _Request:
        if adapter != BASE_ADAPTER and adapter not in self.adapters:
            raise HFLoraError(f"hf-lora: adapter {adapter!r} is not loaded on {self.name}.")
        seed = None
        if settings.effective_temperature() is not None:
            key = f"{active_sample_key()}|{adapter}|{prompt_digest(prompt)}"
            seed = request_seed(settings.seed, f"{key}|{self._seeds.attempt(key)}")
        return _Request(prompt=prompt, adapter=adapter, settings=settings,
                        max_batch_size=max(1, int(max_batch_size)), seed=seed)

    def _serve_round(self, pending: list[Pending[_Request, GenResult]]
                     ) -> list[Pending[_Request, GenResult]]:
        """Serve the oldest request and what may share its batch; keep the rest."""
        head = pending[0].item  # the oldest request is always served: no starvation
        batch = [e for e in pending if _batchable(head, e.item)][: head.max_batch_size]
        taken = {id(e) for e in batch}
        self._serve_batch(batch)
        return [e for e in pending if id(e) not in taken]

    def _serve_batch(self, batch: list[Pending[_Request, GenResult]]) -> None:
        """Run one batch; a failure reaches only the rows it belongs to.

        Rows that cannot be encoded fail alone (:func:`batchgen.encode_rows`). If the
        batched ``generate`` itself raises, each row is run again on its own so that only
        the row that fails gets the error.
        """
        try:
            results = self._generate(batch)
        except Exception as err:
            if len(batch) == 1:
                batch[0].fail(err)
                return
            logger.warning("hf-lora: a batch of %d failed (%s); running its rows one by one",
                           len(batch), err)
            for entry in batch:
                try:
                    [result] = self._generate([entry])
                except Exception as row_err:
                    entry.fail(row_err)
                    continue
                _deliver(entry, result)
            return
        for entry, result in zip(batch, results, strict=True):
            _deliver(entry, result)

    def _generate(self, batch: list[Pending[_Request, GenResult]]
                  ) -> list[GenResult | Exception]:
        reqs = [e.item for e in batch]
        args: list[Any] = [[r.prompt for r in reqs], [r.adapter for r in reqs], reqs[0].settings]
        if reqs[0].seed is not None:
            args.append([r.seed for r in reqs])
        return list(self.generate_batch(*args))

    def generate_batch(self, prompts: list[str], adapters: list[str], settings: GenSettings,
                       seeds: list[int] | None = None) -> list[GenResult | Exception]:
        """Run one left-padded ``generate`` over ``prompts`` (synchronously).

        Args:
            prompts: rendered prompts (tokenized without special tokens unless
                ``settings.add_special_tokens``: the chat template already wrote BOS).
            adapters: per-row adapter names (``"__base__"`` for none).
            settings: shared generation settings.
            seeds: per-row sampling seeds (required when sampling; default: from
                ``settings.seed`` and the row index).

        Returns:
            Per-row results with each row's own (unpadded) token counts, or the row's own
            exception (:class:`~charbench.provider.batchgen.RowError`) where it alone
            failed (e.g. a prompt the tokenizer rejects).
        """
        import torch

        start = time.monotonic()
        with self.tokenizer_lock:
            enc, errors = batchgen.encode_rows(self.tokenizer, prompts,
                                               settings.add_special_tokens)
        missing = RowError("hf-lora: this row was not generated")
        out: list[GenResult | Exception] = [errors.get(i, missing) for i in range(len(prompts))]
        if not enc.rows:
            return out
        row_adapters = [adapters[i] for i in enc.rows]
        row_seeds = None
        if settings.effective_temperature() is not None:
            row_seeds = [seeds[i] if seeds else request_seed(settings.seed, f"row{i}")
                         for i in enc.rows]
        kwargs = batchgen.generate_kwargs(settings, row_seeds, self.device, self.pad_id,
                                          self.eos_ids, self.tokenizer)
        with self.lock, torch.inference_mode():
            layout = self._layout(enc, row_adapters)
            gen = self._run_generate(layout, row_adapters, kwargs)
        sequences = gen.sequences if self.prefix_cache is not None else gen
        elapsed = time.monotonic() - start
        self.batches_run += 1
        self.rows_run += len(enc.rows)
        width = layout.input_ids.shape[1]
        with self.tokenizer_lock:
            for j, i in enumerate(enc.rows):
                new = sequences[j, width:].tolist()
                res = self._finish_row(new, len(enc.ids[j]), settings, elapsed, len(enc.rows))
                res.seed = row_seeds[j] if row_seeds else None
                res.cached_tokens = layout.cached[j]
                out[i] = res
        if self.prefix_cache is not None:
            self._keep_kv(gen.cache, layout, enc, row_adapters, sequences[:, width:])
        return out

    def _layout(self, enc: batchgen.Encoded, adapters: list[str]) -> kvcache.Layout:
        """Batch tensors, starting each row from its longest cached prefix (if reuse is on)."""
        if self.prefix_cache is None:
            hits = [kvcache.Hit(0) for _ in enc.ids]
        else:
            hits = [self.prefix_cache.lookup(a, ids) for a, ids in zip(adapters, enc.ids,
                                                                       strict=True)]
            for ids, hit in zip(enc.ids, hits, strict=True):
                self.prefix_cache.record(len(ids), len(ids) - hit.length, hit.length > 0)
        return kvcache.build_layout(enc.ids, hits, self.pad_id, self.model.config,
                                    self.device)

    def _keep_kv(self, cache: Any, layout: kvcache.Layout, enc: batchgen.Encoded,
                 adapters: list[str], generated: Any) -> None:
        """Store each row's tensors: its prompt and the generated tokens the model consumed."""
        import torch

        assert self.prefix_cache is not None
        width = layout.input_ids.shape[1]
        fed = cache.get_seq_length() - width  # generated tokens whose KV was computed
        for j, ids in enumerate(enc.ids):
            new = generated[j].tolist()
            body = next((k for k, t in enumerate(new) if t in self.eos_ids), len(new))
            n = max(0, min(body, fed))
            cols = torch.cat([layout.columns[j].to(self.device),
                              torch.arange(width, width + n, device=self.device)])
            keys, values = kvcache.row_tensors(cache, j, cols)
            self.prefix_cache.store(adapters[j], ids + new[:n], len(ids), keys, values,
                                    parent=layout.hits[j])

    def _run_generate(self, layout: kvcache.Layout, adapters: list[str],
                      kwargs: dict[str, Any]) -> Any:
        """One ``generate`` call, mixing adapters per row (call with ``self.lock``)."""
        inputs: dict[str, Any] = {"input_ids": layout.input_ids,
                                  "attention_mask": layout.attention_mask}
        if self.prefix_cache is not None:
            inputs["return_dict_in_generate"] = True
            if layout.cache is not None:
                inputs["cache"] = layout.cache
        uniform = len(set(adapters)) == 1
        if self.peft is None:
            if any(a != BASE_ADAPTER for a in adapters):
                raise HFLoraError("hf-lora: no adapters are loaded on this base.")
            return self.model.generate(**inputs, **kwargs)
        if uniform and adapters[0] == BASE_ADAPTER:
            # one adapter for every row: the plain (faster) forward, adapters disabled
            with self.peft.disable_adapter():
                return self.peft.generate(**inputs, **kwargs)
        if uniform:
            self.peft.base_model.set_adapter(adapters[0], inference_mode=True)
            return self.peft.generate(**inputs, **kwargs)
        return self.peft.generate(**inputs, adapter_names=list(adapters), **kwargs)

    def _finish_row(self, gen: list[int], n_in: int, settings: GenSettings,
                    elapsed: float, batch_size: int) -> GenResult:
        """See :func:`charbench.provider.batchgen.finish_row`."""
        return batchgen.finish_row(self.tokenizer, self.eos_ids, gen, n_in, settings,
                                   elapsed, batch_size)


def _deliver(entry: Pending[_Request, GenResult], result: GenResult | Exception) -> None:
    if isinstance(result, Exception):
        entry.fail(result)
    else:
        entry.resolve(result)


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

