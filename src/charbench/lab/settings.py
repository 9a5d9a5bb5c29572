"""The lab's settings and the checks that run before any work.

:class:`LabSettings` is everything that determines a lab's artifacts; ``lab.json`` records it
and a lab directory is only ever resumed with the same settings. :func:`preflight` refuses,
before any model loads or any data is generated: a persona set without descriptions (the
prompted teacher needs them), prompt selections that overlap (distillation, classifier and
evaluation prompts must be disjoint), a base whose tokenizer has no chat template, and
training settings that do not fit in the memory of the chosen device.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from charbench.lab.manifest import LabManifest
from charbench.lab.train import CPU_SETTINGS, AdapterSettings

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DISTILL_PROMPTS = DATA_DIR / "lab" / "distill_prompts.jsonl"
"""The lab's distillation prompts (128 everyday requests written for charbench; none is among
the demo's classifier prompts or the built-in chat eval prompts)."""
CLASSIFIER_PROMPTS = DATA_DIR / "demo" / "classifier_prompts.jsonl"
"""Prompts of the classifier's training replies (the demo's file)."""
EVAL_PROMPTS = "builtin"
"""Chat evaluation prompts (the everyday prompts shipped with charbench)."""
DEFAULT_PERSONAS = str(DATA_DIR / "personas" / "demo.yaml")
"""The default persona set: the demo's four, which SmolLM2-135M expresses when prompted."""


class LabSettings(BaseModel):
    """Everything that determines a lab's artifacts (recorded in ``lab.json``).

    Attributes:
        base: The base model as given (``smollm2``, a local directory or a Hub id).
        personas: ``-T personas`` value: the persona set file, then the personas, in order.
        persona_set_hash: Content hash of the persona set.
        adapter: LoRA training settings (:class:`~charbench.lab.train.AdapterSettings`).
        distill_prompts / classifier_prompts / eval_prompts: Prompt sources (files or
            ``builtin``); n_distill / n_classifier / n_eval: prompts used from each.
        max_tokens: New tokens per chat reply (distillation, classifier data, chat eval);
            chat replies are sampled at chat_persona's defaults, OCT's temperature 0.7 and
            top-p 0.95.
        classifier_base: Encoder of the persona classifier (``minilm`` offline).
        classifier_epochs / classifier_lr: Its training.
        tasks: Evaluated sweep tasks. scenarios: Agentic scenarios. max_turns,
            tool_choice, agent_max_tokens: agentic_email settings (draft shares the tokens).
        seed: Seed of every generation, split and training run.
        device: ``cpu`` or ``cuda``.
    """

    model_config = ConfigDict(frozen=True)

    base: str
    personas: list[str]
    persona_set_hash: str
    adapter: dict[str, Any]
    distill_prompts: str = str(DISTILL_PROMPTS)
    classifier_prompts: str = str(CLASSIFIER_PROMPTS)
    eval_prompts: str = EVAL_PROMPTS
    n_distill: int = 48
    n_classifier: int = 40
    n_eval: int = 30
    max_tokens: int = 48
    classifier_base: str = "minilm"
    classifier_epochs: float = 5.0
    classifier_lr: float = 1e-4
    tasks: list[str] = ["chat", "agentic", "draft"]
    scenarios: list[str] = ["recognition_v1"]
    max_turns: int = 2
    tool_choice: str = "send_email"
    agent_max_tokens: int = 128
    seed: int = 0
    device: str = "cpu"

    @property
    def adapter_settings(self) -> AdapterSettings:
        """The adapter settings as the trainer's dataclass."""
        return AdapterSettings(**self.adapter)

    @property
    def persona_names(self) -> list[str]:
        """The personas, without the set file."""
        from charbench.personas import resolve_personas

        return resolve_personas(self.personas)[1]


def default_adapter(device: str, **overrides: Any) -> AdapterSettings:
    """OCT's settings on CUDA, :data:`~charbench.lab.train.CPU_SETTINGS` on the CPU, with
    the flags given (None values keep the preset's)."""
    preset = AdapterSettings() if device == "cuda" else CPU_SETTINGS
    given = {k: v for k, v in overrides.items() if v is not None}
    return AdapterSettings(**{**asdict(preset), **given})


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def selected_prompts(source: str, n: int, flag: str) -> list[tuple[str, str]]:
    """(prompt id, text) of the ``n`` prompts chat_persona selects from ``source``."""
    from charbench.chat_persona.dataset import load_prompt_source, select_rows

    try:
        return [(r.prompt_id, r.prompt) for r in select_rows(load_prompt_source(source),
                                                             "heldout", n)]
    except ValueError as e:
        raise ValueError(f"{flag} {source} ({n} prompts): {e}") from e


def check_disjoint(settings: LabSettings) -> dict[str, list[str]]:
    """``{flag: ["<source file name>#<prompt id>", ...]}`` of each selection.

    Raises:
        ValueError: two selections share a prompt (compared by text, case and white space
            ignored), or a source has fewer prompts than asked.
    """
    chosen = {
        "--distill-prompts": selected_prompts(settings.distill_prompts, settings.n_distill,
                                              "--distill-prompts"),
        "--classifier-prompts": selected_prompts(settings.classifier_prompts,
                                                 settings.n_classifier, "--classifier-prompts"),
    }
    if "chat" in settings.tasks:
        chosen["--eval-prompts"] = selected_prompts(settings.eval_prompts, settings.n_eval,
                                                    "--eval-prompts")
    seen: dict[str, str] = {}
    for flag, rows in chosen.items():
        for _, text in rows:
            other = seen.setdefault(_norm(text), flag)
            if other != flag:
                raise ValueError(f"{other} and {flag} share the prompt {text[:60]!r}; the "
                                 "lab's distillation, classifier and evaluation prompts must "
                                 "be disjoint")
    sources = {"--distill-prompts": settings.distill_prompts,
               "--classifier-prompts": settings.classifier_prompts,
               "--eval-prompts": settings.eval_prompts}
    return {flag: [f"{Path(sources[flag]).name}#{pid}" for pid, _ in rows]
            for flag, rows in chosen.items()}


def check_base(base_path: str) -> None:
    """ValueError when the base's tokenizer has no chat template (loads the tokenizer only)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"--base {base_path}: its tokenizer has no chat template; the lab "
                         "trains chat personas, so give an instruct/chat model")


def training_bytes(base_path: str, adapter: AdapterSettings, device: str) -> int:
    """A conservative estimate of the memory one adapter's training needs, in bytes.

    Weights (fp32 on the CPU, bf16 on CUDA), the LoRA parameters with their gradients and
    AdamW moments (four fp32 copies), and per micro batch the activations kept for the
    backward pass and the logits (chosen and rejected, or one reply for ``sft``), counted
    at 34 values per hidden unit per token per layer (the usual transformer estimate
    without activation checkpointing) plus two fp32 copies of the logits.
    """
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base_path)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    n_params = sum(p.numel() for p in model.parameters())
    text = config.get_text_config()
    hidden, layers, vocab = text.hidden_size, text.num_hidden_layers, text.vocab_size
    width = 4 if device == "cpu" else 2
    lora = layers * 7 * 2 * hidden * adapter.rank  # A and B of the 7 linear maps per layer
    rows = adapter.micro_batch * (2 if adapter.method == "dpo" else 1)
    tokens = rows * adapter.max_length
    activations = tokens * hidden * layers * 34 * width
    logits = tokens * vocab * 4 * 2
    return int(n_params * width + lora * 4 * 4 + activations + logits)


def available_bytes(device: str) -> int:
    """Free memory of the device: CUDA's free memory, or the system's available RAM."""
    if device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def check_memory(base_path: str, adapter: AdapterSettings, device: str) -> None:
    """ValueError when :func:`training_bytes` exceeds :func:`available_bytes`."""
    need, have = training_bytes(base_path, adapter, device), available_bytes(device)
    if need > have:
        raise ValueError(
            f"training an adapter of {base_path} with --micro-batch {adapter.micro_batch} and "
            f"--max-length {adapter.max_length} needs about {need / 2**30:.1f} GiB on {device}, "
            f"{have / 2**30:.1f} GiB are free; lower --micro-batch or --max-length (raise "
            "--batch-size's share of gradient accumulation), or use a larger device")


@dataclass
class Lab:
    """A lab being run.

    Attributes:
        out: The lab directory.
        settings: Its settings. base_path: The base's local directory (or Hub id).
        persona_file: The persona set file (None: the built-in OCT set).
        manifest: ``lab.json``. command: The command line that runs it.
        prompt_ids: Prompt ids of each selection (``--distill-prompts`` ...).
        display: Inspect's display type (None: Inspect's default).
        isolate: Run each step in its own process (see :mod:`charbench.lab.pipeline`).
    """

    out: Path
    settings: LabSettings
    base_path: str
    persona_file: str | None
    manifest: LabManifest
    command: str
    prompt_ids: dict[str, list[str]] = field(default_factory=dict)
    display: str | None = None
    isolate: bool = False

    @property
    def personas(self) -> list[str]:
        """The lab's personas, in label order."""
        return self.settings.persona_names

    def adapter_template(self) -> str:
        """``OUT/adapters/{persona}`` (the ``-M adapter`` template of the lab condition)."""
        return str(self.out / "adapters" / "{persona}")
