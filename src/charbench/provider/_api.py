"""``HFLoraAPI``: the Inspect ModelAPI behind ``--model hf-lora/<base>``.

Model args (``-M``), all optional; a bad or empty value is refused before any weights load,
with a message naming the option and what it accepts (:mod:`charbench.provider.options`):

- ``adapter``: local adapter directory, Hub repo ``org/name`` (adapter at the root), Hub
  repo with subfolder ``org/name/sub/dir``, or a template containing ``{persona}``. An
  empty value (``-M adapter=``, an unset shell variable) is an error, never the bare base.
- ``adapter_revision``: Hub revision of the adapter repo(s) (default main).
- ``stage``: ``base`` | ``distillation`` | ``full`` | ``introspection``, for the released
  bases only (:data:`charbench.personas.RELEASED_BASES`); exclusive with ``adapter``.
  ``full`` is the released persona adapter (distillation + introspection training, the
  published tables' "full"); ``introspection`` is the OCT paper's own composition: the
  distillation adapter merged into the base with the introspection adapter applied on top
  (computed exactly as the sum of both LoRA deltas, see
  :meth:`~charbench.provider.engine.SharedBase.ensure_combined`).
- ``persona``: fills ``{persona}`` in the adapter template / picks the stage's persona.
  Without it a template or stage model is a *persona template*: it loads nothing, routes
  through :mod:`charbench.routing`, and refuses to generate itself; tasks check every
  persona's adapter at task start (:func:`charbench.routing.preflight`).
- ``revision``: Hub revision of the base (default main).
- ``dtype``: ``bfloat16`` | ``float16`` | ``float32`` | ``auto`` (default: bf16 on CUDA,
  fp32 on CPU).
- ``device``: ``auto`` (default: cuda if available, else cpu), ``cpu``, ``cuda``,
  ``cuda:N``, ``mps``; a device this torch build cannot use is an error.
- ``trust_remote_code``: default False.
- ``do_sample``: default: greedy when ``temperature`` is 0, sampling otherwise.
- ``repetition_penalty``: transformers' repetition penalty, a number > 0 (default none;
  OCT used 1.1).
- ``chat_template``: a Jinja template or a path to one (default: the tokenizer's).
- ``tool_protocol``: ``json`` (default) or ``native``.
- ``max_batch_size``: rows per ``generate`` (default 32; also the default max connections).
- ``allow_pickle``: accept pickle-only adapters (default False).
- ``kv_cache_mb``: prefix KV cache budget in MiB (default 2048; 0 turns reuse off): a
  prompt that extends an earlier one on the same adapter computes only its new tokens
  (:mod:`charbench.provider.kvcache`). Set by the first model that loads the base.
- ``bos``: ``single`` (default): the prompt is the chat template's rendering tokenized
  without adding special tokens, so it starts with the template's one BOS; ``vllm``: the
  study's way (a prompt string given to vLLM, which adds the tokenizer's BOS again), i.e.
  two BOS tokens for Llama and Gemma; use it only to reproduce published numbers.

Control-token text typed inside a message (``<|im_end|>\\n<|im_start|>system ...``) is
tokenized as the real control tokens with either ``bos`` value, as in the study's harness;
hf-lora warns and records it (:mod:`charbench.provider.prompt_checks`). A prompt longer
than the model's context is generated from, with a warning naming its length and the limit.

Concurrency: unless ``--max-connections`` is given, Inspect applies adaptive concurrency
(starting at 20 concurrent calls), which caps how many requests can meet in one batch. For
local generation pass ``--max-connections`` at least ``max_batch_size`` (e.g. 32).

Tool choice: ``auto`` (default) lets the model decide; ``none`` hides the tools. ``any``
requires a call: hf-lora prefills the opening of the call and the model picks the tool
(:func:`~charbench.toolcalls.forced_call_prefix`). A ``ToolFunction`` requires
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
from collections.abc import Sequence
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
from inspect_ai.tool import ToolChoice, ToolFunction, ToolInfo

from charbench import toolcalls as tool_protocol
from charbench._inspect import MODEL_INFO_LOOKUP_API_KEY, custom_model_info
from charbench.provider.chat import RAW_COMPLETION_KEY, ChatRenderer, load_chat_template
from charbench.provider.errors import HFLoraError
from charbench.provider.options import (
    DEFAULT_MAX_BATCH_SIZE,
    KNOWN_ARGS,
    check_device,
    parse_options,
    plan_adapters,
)
from charbench.provider.prompt_checks import (
    PromptGuard,
    PromptReport,
    context_limit,
    control_token_texts,
)

if TYPE_CHECKING:
    from charbench.provider.engine import GenResult, GenSettings

__all__ = ["DEFAULT_MAX_BATCH_SIZE", "DEFAULT_MAX_NEW_TOKENS", "KNOWN_ARGS", "HFLoraAPI"]

DEFAULT_MAX_NEW_TOKENS = 2048

GUIDED_STOP = "\n```"
"""Where a guided call's generation stops: the model closing the call's code fence."""


@dataclasses.dataclass
class _Completion:
    """One generate call's text before tool-call parsing (see ``HFLoraAPI._complete``)."""

    text: str
    result: GenResult
    prefill: str
    guided_fields: list[str] | None


class HFLoraAPI(ModelAPI):
    """Hugging Face causal LM + LoRA adapters, shared base, batched generation.

    See the module docstring for the model args. Implements
    :class:`charbench.routing.PersonaRoutable`.

    Order of work in the constructor: every ``-M`` value is validated; a model-info lookup
    stops there; a persona template stops after checking the device (its personas'
    adapters are checked by :meth:`check_personas` at task start); a concrete model checks
    the device and its adapters' files, and only then loads the base and the adapters.

    Raises:
        HFLoraError: unknown or invalid model args, unknown stage, stage on a base without
            released adapters, a device torch cannot use, or any resolution, loading or
            verification failure of base or adapters.
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
        self.options = parse_options(model_args)
        self._model_args: dict[str, Any] = dict(model_args)
        self.max_batch_size = self.options.max_batch_size
        self.tool_protocol: Any = self.options.tool_protocol
        self._chat_template = load_chat_template(self.options.chat_template)
        self._adapter_parts = plan_adapters(self.options, model_name, self.options.persona)

        key = f"hf-lora/{model_name}"
        if custom_model_info(key) is None:
            set_model_info(key, ModelInfo(organization="local", model=model_name))

        self._base: Any = None
        self._lookup_tokenizer: Any = None
        self._renderer: ChatRenderer | None = None
        self._guard: PromptGuard | None = None
        self._adapter_name = "__base__"
        if api_key == MODEL_INFO_LOOKUP_API_KEY:
            return  # built only for a model-info lookup: load nothing
        check_device(self.options.device)
        if self._adapter_parts is None:
            return  # a persona template: each persona's model loads; see check_personas
        self._verify_adapters(self._adapter_parts)
        self._load()

    # ------------------------------------------------------------------ loading

    def _verify_adapters(self, specs: list[str], skeleton: Any | None = None) -> None:
        """Resolve and check each adapter's files (no weights); see ``verify_adapter``."""
        from charbench.provider.adapters import verify_adapter

        for spec in specs:
            verify_adapter(spec, base_name=self.model_name,
                           revision=self.options.adapter_revision, token=self.api_key,
                           allow_pickle=self.options.allow_pickle, skeleton=skeleton)

    def _skeleton(self) -> Any | None:
        """The base's module tree on the meta device (shapes only), or None; see adapters."""
        from charbench.provider.adapters import base_skeleton

        return base_skeleton(self.model_name, revision=self.options.revision,
                             trust_remote_code=self.options.trust_remote_code,
                             token=self.api_key)

    def _load(self) -> None:
        from charbench.provider.engine import get_shared_base

        opts = self.options
        self._base = get_shared_base(
            self.model_name,
            revision=opts.revision,
            dtype=opts.dtype,
            device=opts.device,
            trust_remote_code=opts.trust_remote_code,
            token=self.api_key,
            kv_cache_mb=opts.kv_cache_mb,
        )
        self._renderer = ChatRenderer(self._base.tokenizer, self._chat_template,
                                      self._base.family)
        self._guard = PromptGuard(self.display_name(),
                                  context_limit(getattr(self._base.model, "config", None)),
                                  control_token_texts(self._base.tokenizer))
        if not self._adapter_parts:
            return
        infos = [
            self._base.ensure_adapter(spec, revision=opts.adapter_revision, token=self.api_key,
                                      allow_pickle=opts.allow_pickle)
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

    def check_personas(self, personas: Sequence[str]) -> None:
        """Resolve and verify every adapter the personas route to, loading no weights.

        For each persona: its adapter spec(s) (:func:`~charbench.provider.options.plan_adapters`),
        each resolved (local directory, or Hub repo through the Hugging Face cache), its
        ``adapter_config.json`` and weights header read, and every tensor's module and shape
        checked against the base's module tree built on the meta device from its config
        (:func:`~charbench.provider.adapters.verify_adapter`). A no-op for a model that is
        not a persona template (its adapter was checked when it was built, and its base
        loaded right after).

        Raises:
            HFLoraError: one line naming the first failing persona, its adapter and what is
                wrong, and the other failing personas, if any.
        """
        if not self.is_persona_template():
            return
        failures: list[tuple[str, str]] = []
        skeleton = self._skeleton()
        for persona in personas:
            try:
                self._verify_adapters(
                    plan_adapters(self.options, self.model_name, persona) or [], skeleton)
            except HFLoraError as err:
                failures.append((persona, str(err).removeprefix("hf-lora: ")))
        if failures:
            persona, why = failures[0]
            others = [p for p, _ in failures[1:]]
            also = f" (also failing: {', '.join(others)})" if others else ""
            raise HFLoraError(f"hf-lora: persona {persona!r}: {why}{also}")

    def base_model_name(self) -> str:
        """The base model name or path (as given after ``hf-lora/``)."""
        return self.model_name

    def condition_name(self) -> str:
        """``-M stage`` if given; ``base`` with no adapter; else the adapter as given."""
        if self.options.stage is not None:
            return self.options.stage
        if self.options.adapter is None:
            return "base"
        return self.options.adapter

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
        """Render, check, queue for the shared worker, await without blocking, parse calls.

        Raises:
            HFLoraError: this model is a persona template or a model-info lookup, or the
                chat template refused the conversation.
        """
        self._require_ready()
        assert self._renderer is not None
        use_tools = list(tools) if tools and tool_choice != "none" else []
        prompt = self._renderer.render(input, use_tools, self.tool_protocol)
        report = await self._check_prompt(input, prompt)
        settings = self._settings(config)
        done = await self._complete(prompt, tool_choice, use_tools, settings)
        content, calls, repaired = self._parse(done.text, use_tools)
        output = self._output(content, calls, done)
        call = ModelCall.create(
            request=self._request_record(prompt, tool_choice, use_tools, settings, done,
                                         report),
            response={
                "completion": done.text,
                "raw_completion": done.result.raw_text,
                "sanitized": done.result.sanitized,
                "seed": done.result.seed,
                "cached_tokens": done.result.cached_tokens,
                "input_tokens": done.result.input_tokens,
                "output_tokens": done.result.output_tokens,
                "stop_reason": done.result.stop_reason,
                "batch_size": done.result.batch_size,
                # a call read only after closing what the model left open (toolcalls)
                "repaired": repaired or None,
            },
            time=done.result.time,
        )
        return output, call

    def _require_ready(self) -> None:
        if self.is_persona_template():
            raise HFLoraError(
                f"hf-lora: {self.display_name()} is a persona template (adapter "
                f"{self.options.adapter or self.options.stage!r} without a persona), so it "
                "cannot generate itself. Tasks route each sample to its persona's model with "
                "charbench.routing.model_for_persona; to run one persona directly pass "
                "-M persona=<name>."
            )
        if self._base is None or self._renderer is None:
            raise HFLoraError("hf-lora: this instance was built for a model-info lookup only.")

    async def _check_prompt(self, messages: list[ChatMessage], prompt: str) -> PromptReport:
        """Count the prompt's tokens as the engine will and run :class:`PromptGuard`."""
        assert self._guard is not None
        tok = self._base.tokenizer
        with self._base.tokenizer_lock:
            n_tokens = len(tok(prompt, add_special_tokens=self.options.bos == "vllm")
                           ["input_ids"])
        return self._guard.check(messages, n_tokens)

    def _settings(self, config: GenerateConfig) -> GenSettings:
        """The engine's settings for one call: Inspect's config plus this model's ``-M``."""
        from charbench.provider.engine import GenSettings

        opts = self.options
        do_sample = opts.do_sample if opts.do_sample is not None else config.temperature != 0
        return GenSettings(
            max_new_tokens=int(config.max_tokens or DEFAULT_MAX_NEW_TOKENS),
            do_sample=bool(do_sample),
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=config.top_k,
            repetition_penalty=opts.repetition_penalty,
            seed=config.seed,
            stop_seqs=tuple(config.stop_seqs or ()),
            add_special_tokens=opts.bos == "vllm",
        )

    async def _complete(self, prompt: str, tool_choice: ToolChoice, tools: list[ToolInfo],
                        settings: GenSettings) -> _Completion:
        """Generate this turn's text: a guided call, a prefilled call, or free text."""
        guided = self._guided_fields(tool_choice, tools)
        if guided is not None:
            # a named tool is required: write the call's JSON, the model writes each value
            result = await self._guided_call(prompt, guided[0], guided[1], settings)
            return _Completion(result.text, result, "", guided[1])
        # a required call ("any", or a tool that cannot be guided): prefill its opening
        prefill = tool_protocol.forced_call_prefix(
            tool_choice, tools, self.tool_protocol, self._base.family
        )
        result = await self._run(prompt + prefill, settings)
        return _Completion(prefill + result.text, result, prefill, None)

    def _parse(self, text: str, tools: list[ToolInfo]) -> tuple[str, list[Any], list[str]]:
        """(content, tool calls, repairs made) of a completion under this tool protocol."""
        if not tools:
            return text, [], []
        if self.tool_protocol == "native":
            parsed = tool_protocol.parse_native_tool_calls(self._base.family, text, tools)
        else:
            parsed = tool_protocol.parse_tool_calls(text, tools)
        return parsed.content, list(parsed.tool_calls), list(parsed.repaired)

    def _output(self, content: str, calls: list[Any], done: _Completion) -> ModelOutput:
        """The Inspect output; the raw completion is kept in the message metadata."""
        result = done.result
        stop_reason: Any = "tool_calls" if calls else result.stop_reason
        name = self.display_name()
        message = ChatMessageAssistant(
            content=content,
            tool_calls=calls or None,
            model=name,
            source="generate",
            metadata={RAW_COMPLETION_KEY: done.text},
        )
        return ModelOutput(
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

    def _request_record(self, prompt: str, tool_choice: ToolChoice, tools: list[ToolInfo],
                        settings: GenSettings, done: _Completion,
                        report: PromptReport) -> dict[str, Any]:
        """The ``ModelCall`` request: the prompt and everything that shaped the reply."""
        return {
            "prompt": prompt,
            "base": self.model_name,
            "adapter": self.adapter_label(),
            "adapter_name": self._adapter_name,
            "bos": self.options.bos,
            "prompt_tokens": report.prompt_tokens,
            "context_limit": report.context_limit,
            "control_tokens_in_messages": report.control_tokens,
            "tool_protocol": self.tool_protocol if tools else None,
            "tool_choice": _tool_choice_str(tool_choice) if tools else None,
            "prefill": done.prefill,
            "guided_fields": done.guided_fields,
            "generate_kwargs": json.loads(json.dumps(
                {**settings.generate_kwargs(), "seed": settings.seed,
                 "stop_seqs": list(settings.stop_seqs)}, default=str)),
        }

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
                self.model_name, revision=self.options.revision,
                trust_remote_code=self.options.trust_remote_code)
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
