"""``HFLoraAPI``: the Inspect ModelAPI behind ``--model hf-lora/<base>``.

Model args (``-M``), all optional:

- ``adapter``: local adapter directory, Hub repo ``org/name`` (adapter at the root), Hub
  repo with subfolder ``org/name/sub/dir``, or a template containing ``{persona}``.
- ``adapter_revision``: Hub revision of the adapter repo(s) (default main).
- ``stage``: ``base`` | ``distillation`` | ``full`` | ``introspection``, for the released
  bases only (:data:`charbench.personas.RELEASED_BASES`); exclusive with ``adapter``.
  ``full`` is the released persona adapter (distillation + introspection training, the
  published tables' "full"); ``introspection`` is the OCT paper's own composition: the
  distillation adapter merged into the base with the introspection adapter applied on top
  (computed exactly as the sum of both LoRA deltas, see
  :meth:`~charbench.provider.engine.SharedBase.ensure_combined`).
- ``persona``: fills ``{persona}`` in the adapter template / picks the stage's persona.
  Without it a template or stage model is a *persona template*: it routes through
  :mod:`charbench.routing` and refuses to generate itself.
- ``revision``: Hub revision of the base (default main).
- ``dtype``: ``bfloat16`` | ``float16`` | ``float32`` | ``auto`` (default: bf16 on CUDA,
  fp32 on CPU).
- ``device``: ``auto`` (default: cuda if available, else cpu), ``cpu``, ``cuda:N``, ``mps``.
- ``trust_remote_code``: default False.
- ``do_sample``: default: greedy when ``temperature`` is 0, sampling otherwise.
- ``repetition_penalty``: transformers' repetition penalty (default none; OCT used 1.1).
- ``chat_template``: a Jinja template or a path to one (default: the tokenizer's).
- ``tool_protocol``: ``json`` (default) or ``native``.
- ``max_batch_size``: rows per ``generate`` (default 32; also the default max connections).
- ``allow_pickle``: accept pickle-only adapters (default False).
- ``kv_cache_mb``: prefix KV cache budget in MiB (default 2048; 0 turns reuse off): a
  prompt that extends an earlier one on the same adapter computes only its new tokens
  (:mod:`charbench.provider.kvcache`). Set by the first model that loads the base.

Concurrency: unless ``--max-connections`` is given, Inspect applies adaptive concurrency
(starting at 20 concurrent calls), which caps how many requests can meet in one batch. For
local generation pass ``--max-connections`` at least ``max_batch_size`` (e.g. 64).

Tool choice: ``auto`` (default) lets the model decide; ``none`` hides the tools. ``any``
requires a call: hf-lora prefills the opening of the call and the model picks the tool
(:func:`~charbench.provider.tool_protocol.forced_call_prefix`). A ``ToolFunction`` requires
that tool: with the json protocol, and when every required argument takes a string, the call
is *guided*: hf-lora writes the call's JSON and the model writes the required arguments'
values (optional arguments are left out): its own text is kept while it follows the call's
shape, and where it departs the expected key is written for it, so the call is always well
formed (unless a value runs out of tokens);
otherwise (native protocol, non-string arguments) the name is prefilled and the model writes
the arguments. The prefill is part of the logged completion; the ``ModelCall`` request
records the tool choice, the prefill and the guided fields.

Inspect's ``GenerateConfig`` supplies temperature, top_p, top_k, max_tokens (default
2048), stop_seqs and seed. Every knob is explicit: the model's ``generation_config.json``
never fills one in (no top-k unless ``--top-k``, repetition penalty 1.0 unless ``-M
repetition_penalty=``). Each sampled request draws from its own generator, seeded from
``--seed`` and the request (sample, epoch, adapter, prompt, attempt), so outputs do not
depend on what shares a batch and a retried turn is a new draw
(:mod:`charbench.provider.sampling`). The completion is decoded without special tokens and
sanitized; the ``ModelCall`` response keeps ``raw_completion`` (special tokens kept),
``sanitized`` (characters replaced) and ``seed`` (the row's sampling seed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import TYPE_CHECKING, Any

import sniffio
from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    GenerateConfig,
    ModelAPI,
    ModelCall,
    ModelInfo,
    ModelOutput,
    ModelUsage,
    set_model_info,
)
from inspect_ai.model._model_info import (
    MODEL_INFO_LOOKUP_API_KEY,
    _get_custom_model_info,
)
from inspect_ai.tool import ToolChoice, ToolFunction, ToolInfo

from charbench.personas import STAGES, released_base
from charbench.provider import tool_protocol
from charbench.provider.chat import RAW_COMPLETION_KEY, ChatRenderer, load_chat_template
from charbench.provider.errors import HFLoraError
from charbench.routing import PERSONA_PLACEHOLDER

if TYPE_CHECKING:
    from charbench.provider.engine import GenResult, GenSettings

DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_KV_CACHE_MB = 2048  # equal to charbench.provider.engine.DEFAULT_KV_CACHE_MB
DEFAULT_MAX_NEW_TOKENS = 2048

GUIDED_STOP = "\n```"
"""Where a guided call's generation stops: the model closing the call's code fence."""

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
)


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


class HFLoraAPI(ModelAPI):
    """Hugging Face causal LM + LoRA adapters, shared base, batched generation.

    See the module docstring for the model args. Implements
    :class:`charbench.routing.PersonaRoutable`.

    Raises:
        HFLoraError: unknown or invalid model args, unknown stage, stage on a base without
            released adapters, or any loading/verification failure of base or adapters.
    """

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 (Inspect's signature)
        **model_args: Any,
    ) -> None:
        super().__init__(
            model_name=model_name,
            base_url=base_url,
            api_key=api_key,
            api_key_vars=["HF_TOKEN"],
            config=config,
        )
        unknown = sorted(set(model_args) - set(KNOWN_ARGS))
        if unknown:
            raise HFLoraError(
                f"hf-lora: unknown model arg(s) {', '.join(unknown)}; valid -M args are "
                f"{', '.join(KNOWN_ARGS)}."
            )
        self._model_args: dict[str, Any] = dict(model_args)
        self.adapter_spec = _as_str("adapter", model_args.get("adapter"))
        self.adapter_revision = _as_str("adapter_revision", model_args.get("adapter_revision"))
        self.stage = _as_str("stage", model_args.get("stage"))
        self.persona = _as_str("persona", model_args.get("persona"))
        self.revision = _as_str("revision", model_args.get("revision"))
        self.dtype = _as_str("dtype", model_args.get("dtype"))
        self.device = _as_str("device", model_args.get("device"))
        self.trust_remote_code = bool(_as_bool("trust_remote_code",
                                               model_args.get("trust_remote_code")))
        self.do_sample = _as_bool("do_sample", model_args.get("do_sample"))
        self.allow_pickle = bool(_as_bool("allow_pickle", model_args.get("allow_pickle")))
        rp = model_args.get("repetition_penalty")
        self.repetition_penalty = float(rp) if rp is not None else None
        protocol = (_as_str("tool_protocol", model_args.get("tool_protocol")) or "json").lower()
        if protocol not in ("json", "native"):
            raise HFLoraError(
                f"hf-lora: -M tool_protocol={protocol!r}; use json (default) or native."
            )
        self.tool_protocol: Any = protocol
        mbs = model_args.get("max_batch_size", DEFAULT_MAX_BATCH_SIZE)
        try:
            self.max_batch_size = int(mbs)
        except (TypeError, ValueError) as err:
            raise HFLoraError(f"hf-lora: -M max_batch_size={mbs!r} must be an integer.") from err
        if self.max_batch_size < 1:
            raise HFLoraError("hf-lora: -M max_batch_size must be at least 1.")
        kv = model_args.get("kv_cache_mb", DEFAULT_KV_CACHE_MB)
        try:
            self.kv_cache_mb = float(kv)
        except (TypeError, ValueError) as err:
            raise HFLoraError(
                f"hf-lora: -M kv_cache_mb={kv!r} must be a number of MiB (0 turns reuse off)."
            ) from err
        if self.kv_cache_mb < 0:
            raise HFLoraError("hf-lora: -M kv_cache_mb must be 0 or more.")
        self._chat_template = load_chat_template(
            _as_str("chat_template", model_args.get("chat_template"))
        )
        self._adapter_parts = self._plan_adapters()

        key = f"hf-lora/{model_name}"
        if _get_custom_model_info(key) is None:
            set_model_info(key, ModelInfo(organization="local", model=model_name))

        self._base: Any = None
        self._lookup_tokenizer: Any = None
        self._renderer: ChatRenderer | None = None
        self._adapter_name = "__base__"
        if api_key == MODEL_INFO_LOOKUP_API_KEY:
            return  # built only for a model-info lookup: load nothing
        self._load()

    # ------------------------------------------------------------------ planning

    def _plan_adapters(self) -> list[str] | None:
        """The concrete adapter specs to load (None: a persona template, nothing yet)."""
        if self.stage is not None:
            if self.stage not in STAGES:
                raise HFLoraError(
                    f"hf-lora: unknown stage {self.stage!r}; choose one of {', '.join(STAGES)}."
                )
            if self.adapter_spec is not None:
                raise HFLoraError(
                    "hf-lora: pass either -M stage= or -M adapter=, not both."
                )
            if self.stage == "base":
                if self.persona is not None:
                    return []
                return []
            rb = released_base(self.model_name)
            if rb is None:
                raise HFLoraError(
                    f"hf-lora: -M stage={self.stage} is only defined for the bases of the "
                    "persona release (meta-llama/Llama-3.1-8B-Instruct, "
                    "Qwen/Qwen2.5-7B-Instruct, google/gemma-3-4b-it); for "
                    f"{self.model_name!r} pass -M adapter=<local dir or Hub id> instead."
                )
            if self.persona is None:
                return None
            try:
                if self.stage == "introspection":
                    return [
                        str(rb.adapter_for("distillation", self.persona)),
                        str(rb.adapter_for("introspection", self.persona)),
                    ]
                return [str(rb.adapter_for(self.stage, self.persona))]  # type: ignore[arg-type, unused-ignore]
            except ValueError as err:
                raise HFLoraError(f"hf-lora: {err}") from err
        if self.adapter_spec is None:
            if self.persona is not None:
                raise HFLoraError(
                    "hf-lora: -M persona= only applies with an adapter template containing "
                    "{persona} or with -M stage=."
                )
            return []
        if PERSONA_PLACEHOLDER in self.adapter_spec:
            if self.persona is None:
                return None
            return [self.adapter_spec.replace(PERSONA_PLACEHOLDER, self.persona)]
        if self.persona is not None:
            raise HFLoraError(
                f"hf-lora: -M persona={self.persona} given but adapter {self.adapter_spec!r} "
                "has no {persona} placeholder."
            )
        return [self.adapter_spec]

    def _load(self) -> None:
        from charbench.provider.engine import get_shared_base

        self._base = get_shared_base(
            self.model_name,
            revision=self.revision,
            dtype=self.dtype,
            device=self.device,
            trust_remote_code=self.trust_remote_code,
            token=self.api_key,
            kv_cache_mb=self.kv_cache_mb,
        )
        self._renderer = ChatRenderer(self._base.tokenizer, self._chat_template,
                                      self._base.family)
        if not self._adapter_parts:
            return
        infos = [
            self._base.ensure_adapter(spec, revision=self.adapter_revision, token=self.api_key,
                                      allow_pickle=self.allow_pickle)
            for spec in self._adapter_parts
        ]
        if len(infos) == 1:
            self._adapter_name = infos[0].name
        else:
            label = "introspection:" + "+".join(self._adapter_parts)
            self._adapter_name = self._base.ensure_combined(infos, label).name

    # ------------------------------------------------------------------ routing

    def is_persona_template(self) -> bool:
        """True for an adapter template with ``{persona}`` or a non-base stage, unfilled."""
        return self._adapter_parts is None

    def persona_model_args(self, persona: str) -> dict[str, Any]:
        """All of this model's ``-M`` args plus ``persona`` (the concrete persona model)."""
        if not persona or not isinstance(persona, str):
            raise HFLoraError(f"hf-lora: invalid persona {persona!r}.")
        return {**self._model_args, "persona": persona}

    def base_model_name(self) -> str:
        """The base model name or path (as given after ``hf-lora/``)."""
        return self.model_name

    def condition_name(self) -> str:
        """``-M stage`` if given; ``base`` with no adapter; else the adapter as given."""
        if self.stage is not None:
            return self.stage
        if self.adapter_spec is None:
            return "base"
        return self.adapter_spec

    def adapter_label(self) -> str | None:
        """The concrete adapter(s) in use, ``+``-joined (None for the bare base)."""
        if not self._adapter_parts:
            return None
        return "+".join(self._adapter_parts)

    def display_name(self) -> str:
        """``base`` or ``base+adapter``: written to each output's ``model`` field."""
        label = self.adapter_label()
        return f"{self.model_name}+{label}" if label else self.model_name

    # ------------------------------------------------------------------ generation

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> tuple[ModelOutput | Exception, ModelCall]:
        """Render, queue for the shared worker, await without blocking, parse tool calls."""
        from charbench.provider.engine import GenSettings

        if self.is_persona_template():
            raise HFLoraError(
                f"hf-lora: {self.display_name()} is a persona template (adapter "
                f"{self.adapter_spec or self.stage!r} without a persona), so it cannot generate "
                "itself. Tasks route each sample to its persona's model with "
                "charbench.routing.model_for_persona; to run one persona directly pass "
                "-M persona=<name>."
            )
        if self._base is None or self._renderer is None:
            raise HFLoraError("hf-lora: this instance was built for a model-info lookup only.")
        use_tools = list(tools) if tools and tool_choice != "none" else []
        prompt = self._renderer.render(input, use_tools, self.tool_protocol)
        temperature = config.temperature
        do_sample = self.do_sample if self.do_sample is not None else temperature != 0
        settings = GenSettings(
            max_new_tokens=int(config.max_tokens or DEFAULT_MAX_NEW_TOKENS),
            do_sample=bool(do_sample),
            temperature=temperature,
            top_p=config.top_p,
            top_k=config.top_k,
            repetition_penalty=self.repetition_penalty,
            seed=config.seed,
            stop_seqs=tuple(config.stop_seqs or ()),
        )
        guided = self._guided_fields(tool_choice, use_tools)
        if guided is not None:
            # a named tool is required: write the call's JSON, the model writes each value
            prefill, guided_fields = "", guided[1]
            result = await self._guided_call(prompt, guided[0], guided[1], settings)
            text = result.text
        else:
            # a required call ("any", or a tool that cannot be guided): prefill its opening
            guided_fields = None
            prefill = tool_protocol.forced_call_prefix(
                tool_choice, use_tools, self.tool_protocol, self._base.family
            )
            result = await self._run(prompt + prefill, settings)
            text = prefill + result.text
        if use_tools:
            if self.tool_protocol == "native":
                parsed = tool_protocol.parse_native_tool_calls(self._base.family, text, use_tools)
            else:
                parsed = tool_protocol.parse_tool_calls(text, use_tools)
            content, calls = parsed.content, parsed.tool_calls
        else:
            content, calls = text, []
        stop_reason: Any = "tool_calls" if calls else result.stop_reason
        name = self.display_name()
        message = ChatMessageAssistant(
            content=content,
            tool_calls=calls or None,
            model=name,
            source="generate",
            metadata={RAW_COMPLETION_KEY: text},
        )
        output = ModelOutput(
            model=name,
            choices=[ChatCompletionChoice(message=message, stop_reason=stop_reason)],
            usage=ModelUsage(
                input_tokens=result.input_tokens,
                output_tokens=result.output_tokens,
                total_tokens=result.input_tokens + result.output_tokens,
                input_tokens_cache_read=result.cached_tokens or None,
            ),
            time=result.time,
        )
        call = ModelCall.create(
            request={
                "prompt": prompt,
                "base": self.model_name,
                "adapter": self.adapter_label(),
                "adapter_name": self._adapter_name,
                "tool_protocol": self.tool_protocol if use_tools else None,
                "tool_choice": _tool_choice_str(tool_choice) if use_tools else None,
                "prefill": prefill,
                "guided_fields": guided_fields,
                "generate_kwargs": json.loads(json.dumps(
                    {**settings.generate_kwargs(), "seed": settings.seed,
                     "stop_seqs": list(settings.stop_seqs)}, default=str)),
            },
            response={
                "completion": text,
                "raw_completion": result.raw_text,
                "sanitized": result.sanitized,
                "seed": result.seed,
                "cached_tokens": result.cached_tokens,
                "input_tokens": result.input_tokens,
                "output_tokens": result.output_tokens,
                "stop_reason": result.stop_reason,
                "batch_size": result.batch_size,
            },
            time=result.time,
        )
        return output, call

    async def _run(self, prompt: str, settings: GenSettings) -> GenResult:
        """Queue one prompt for the shared worker and await its ``GenResult``."""
        assert self._base is not None
        if sniffio.current_async_library() == "asyncio":
            future = self._base.submit_async(
                prompt, self._adapter_name, settings, self.max_batch_size
            )
            return await asyncio.wrap_future(future)
        import anyio  # trio: wait in a worker thread

        future = self._base.submit(prompt, self._adapter_name, settings, self.max_batch_size)
        return await anyio.to_thread.run_sync(future.result)

    def _guided_fields(
        self, tool_choice: ToolChoice, tools: list[ToolInfo]
    ) -> tuple[ToolInfo, list[str]] | None:
        """The forced tool and its guided fields, when this turn's call can be guided."""
        if not isinstance(tool_choice, ToolFunction) or self.tool_protocol != "json":
            return None
        tool = next((t for t in tools if t.name == tool_choice.name), None)
        if tool is None:
            return None
        fields = tool_protocol.guided_call_fields(tool)
        return None if fields is None else (tool, fields)

    async def _guided_call(
        self, prompt: str, tool: ToolInfo, fields: list[str], settings: GenSettings
    ) -> GenResult:
        """Generate a forced call whose JSON is ours and whose values are the model's.

        The prompt so far is extended with ``"<first field>": "`` and the model continues
        until it closes the code fence, ends its turn or runs out of tokens. What it wrote
        is kept while it follows the call's shape: a value runs to the first unescaped
        double quote, and the model's own ``, "<next field>": "`` moves on to the next
        value. At the first departure (another key, another order, anything else) the rest
        is dropped, the expected key is written for it and the model continues from there.
        A model that follows the shape thus writes the whole call in one generation; one
        that does not is guided value by value. A value ended by the end-of-sequence token
        or the fence is closed there. The ``max_tokens`` budget covers every generation; a
        value that runs out of it leaves the call cut off, which the parser reports as such.

        Returns:
            A result whose text is the whole call block; token counts and times are summed
            over the generations (each one queued and batched like any other request).
        """
        from charbench.provider.engine import GenResult

        text = tool_protocol.guided_call_head(tool)
        budget = settings.max_new_tokens
        n_in = n_out = 0
        elapsed = 0.0
        batch_size = 1
        step = dataclasses.replace(settings, stop_seqs=(GUIDED_STOP,))
        i = 0
        while i < len(fields):
            text += (", " if i else "") + json.dumps(fields[i]) + ': "'
            if budget <= 0:
                return GenResult(text, n_in, n_out, "max_tokens", elapsed, batch_size)
            result = await self._run(prompt + text, dataclasses.replace(
                step, max_new_tokens=budget))
            n_in += result.input_tokens
            n_out += result.output_tokens
            elapsed += result.time
            batch_size = result.batch_size
            budget -= result.output_tokens
            written, i, complete = tool_protocol.take_guided_values(result.text, fields, i)
            text += written
            if not complete:
                if result.stop_reason != "stop":  # out of tokens inside the value
                    return GenResult(text, n_in, n_out, "max_tokens", elapsed, batch_size)
                text += '"'  # ended by EOS or the fence inside the value: close it
                i += 1
        return GenResult(text + "}}\n```", n_in, n_out, "stop", elapsed, batch_size)

    # ------------------------------------------------------------------ tokens

    def _tokenizer(self) -> Any:
        if self._base is not None:
            return self._base.tokenizer
        from transformers import AutoTokenizer

        if self._lookup_tokenizer is None:
            self._lookup_tokenizer = AutoTokenizer.from_pretrained(
                self.model_name, revision=self.revision,
                trust_remote_code=self.trust_remote_code)
        return self._lookup_tokenizer

    async def count_text_tokens(self, text: str) -> int:
        """Token count with the model's own tokenizer (no tiktoken download)."""
        return len(await self.tokenize(text))

    async def tokenize(self, text: str) -> list[int]:
        """Token ids with the model's own tokenizer (no special tokens added)."""
        tok = self._tokenizer()
        if self._base is None:
            return list(tok.encode(text, add_special_tokens=False))
        with self._base.tokenizer_lock:
            return list(tok.encode(text, add_special_tokens=False))

    def max_tokens(self) -> int | None:
        """Default max new tokens when the config gives none: 2048."""
        return DEFAULT_MAX_NEW_TOKENS

    def max_connections(self) -> int:
        """Default concurrency: ``max_batch_size`` (so one batch can fill)."""
        return self.max_batch_size

    def collapse_user_messages(self) -> bool:
        """Keep turns as given; the renderer merges where a template needs it."""
        return False


def _tool_choice_str(tool_choice: ToolChoice) -> str:
    """``auto``/``any``/``none``, or the name of a forced tool (for the logged request)."""
    return tool_choice if isinstance(tool_choice, str) else f"function:{tool_choice.name}"
