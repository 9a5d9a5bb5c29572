"""One persona adapter trained with TRL on the lab's distillation pairs (LoRA through peft).

The recipe is OCT's distillation stage (``finetuning/distillation/*.sh`` in
maiush/OpenCharacterTraining, which runs OpenRLHF's ``train_dpo``), expressed with TRL:

==========================  ===========================  =====================================
OCT (OpenRLHF flag)         value                        here (:class:`AdapterSettings`)
==========================  ===========================  =====================================
``--beta``                  0.1                          ``beta``
``--nll_loss_coef``         0.1                          ``nll_weight``: DPO ``loss_type``
                                                         ``["sigmoid", "sft"]`` weighted
                                                         ``[1, nll_weight]``
``--lora_rank/alpha``       64 / 128 (all linear layers) ``rank`` / ``alpha``
                                                         (``target_modules="all-linear"``)
``--learning_rate``         5e-5, warmup ratio 0.1       ``lr`` / ``warmup_ratio``
``--train_batch_size``      32 (micro batch 2)           ``batch_size`` / ``micro_batch``
``--max_epochs``            1                            ``epochs``
``--max_len``               1024                         ``max_length``
``--max_norm``, Adam betas  1.0, (0.9, 0.98)             fixed
==========================  ===========================  =====================================

``method="sft"`` trains the same LoRA on the chosen replies alone with ``SFTTrainer``
(prompt-completion data: the loss covers the reply, not the prompt).

What :func:`train_adapter` guarantees:

1. the prompt is the user message alone, formatted by the base's own chat template, exactly
   as ``hf-lora`` formats a chat sample with no system prompt (the persona has to come from
   the weights);
2. the result is a standard peft adapter directory (``adapter_config.json`` and
   ``adapter_model.safetensors``) whose ``base_model_name_or_path`` is ``base``, usable as
   ``-M adapter=OUT``;
3. the same pairs, settings and seed give the same weights on the CPU (seeded python, numpy
   and torch, ``Trainer``'s ``full_determinism``, no data-loader workers);
4. training writes into ``OUT.partial`` and renames it into place when finished, so an
   interrupted run never leaves a half-trained adapter at ``OUT``.

No training loop is written here: TRL's trainers (on transformers' ``Trainer``) do it all.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

Method = Literal["dpo", "sft"]
METHODS: tuple[Method, ...] = ("dpo", "sft")


@dataclass(frozen=True)
class PreferencePair:
    """One distillation example of one persona.

    Attributes:
        prompt_id: The prompt's id in its source (the unit that keeps prompts disjoint).
        prompt: The user message.
        chosen: The base's reply with the persona's description as its system prompt.
        rejected: The base's reply without it.
    """

    prompt_id: str
    prompt: str
    chosen: str
    rejected: str

    def dpo_record(self) -> dict[str, Any]:
        """TRL's conversational preference format (``prompt``/``chosen``/``rejected``)."""
        return {
            "prompt_id": self.prompt_id,
            "prompt": [{"role": "user", "content": self.prompt}],
            "chosen": [{"role": "assistant", "content": self.chosen}],
            "rejected": [{"role": "assistant", "content": self.rejected}],
        }

    def sft_record(self) -> dict[str, Any]:
        """The chat ``messages`` format of the chosen conversation."""
        return {
            "prompt_id": self.prompt_id,
            "messages": [
                {"role": "user", "content": self.prompt},
                {"role": "assistant", "content": self.chosen},
            ],
        }


@dataclass(frozen=True)
class AdapterSettings:
    """Hyper-parameters of one adapter (the ``charbench lab`` flags).

    Defaults are OCT's distillation stage (see the module docstring); :data:`CPU_SETTINGS`
    is the smaller CPU preset.

    Attributes:
        method: ``dpo`` (default, OCT's distillation) or ``sft`` (chosen replies only).
        epochs: Passes over the pairs.
        lr: Peak learning rate (AdamW, linear warm-up then linear decay).
        beta: DPO's beta.
        nll_weight: Weight of the NLL loss on the chosen reply added to DPO's (OCT's
            ``nll_loss_coef``); ignored by ``sft``.
        rank: LoRA rank. alpha: LoRA alpha. Every linear layer gets a LoRA.
        batch_size: Pairs per optimiser step; micro_batch: pairs per forward pass
            (``batch_size`` must be a multiple of it).
        warmup_ratio: Share of steps of linear warm-up.
        max_length: Prompt plus reply, in tokens; longer ones are cut at the end.
        seed: Seed of the LoRA initialisation and the data order.
    """

    method: Method = "dpo"
    epochs: float = 1.0
    lr: float = 5e-5
    beta: float = 0.1
    nll_weight: float = 0.1
    rank: int = 64
    alpha: int = 128
    batch_size: int = 32
    micro_batch: int = 2
    warmup_ratio: float = 0.1
    max_length: int = 1024
    seed: int = 0

    def check(self) -> None:
        """Raise ValueError naming the first invalid setting (before anything loads)."""
        if self.method not in METHODS:
            raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("epochs", "lr", "beta", "rank", "alpha", "batch_size", "micro_batch",
                     "max_length"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, "
                                 f"got {getattr(self, name)}")
        if self.batch_size % self.micro_batch:
            raise ValueError(f"--batch-size {self.batch_size} must be a multiple of "
                             f"--micro-batch {self.micro_batch}")
        if self.nll_weight < 0 or not 0 <= self.warmup_ratio < 1:
            raise ValueError("--nll-weight must be >= 0 and --warmup-ratio in [0, 1)")


CPU_SETTINGS = AdapterSettings(
    epochs=2.0, lr=5e-4, rank=16, alpha=32, batch_size=8, micro_batch=8, max_length=256
)
"""The CPU preset (``charbench lab`` on a machine without CUDA). One DPO step of 8 pairs of
SmolLM2-135M (about 1,500 tokens with the reference pass) took 14 s on the 2-core development
machine, so the lab's 30-minute budget for four personas leaves about a dozen steps per
adapter: 48 pairs x 2 epochs in batches of 8. Rank 16 instead of 64 keeps those steps cheap;
a learning rate ten times OCT's makes up for training on 48 pairs instead of thousands for
one epoch. beta, the NLL weight, the warm-up and the optimiser stay OCT's."""


@dataclass(frozen=True)
class AdapterResult:
    """What training one adapter did (also written as ``training.json`` beside it).

    Attributes:
        out: The adapter directory.
        pairs: Pairs trained on. steps: Optimiser steps.
        final_loss: Mean training loss over the run (TRL's ``train_loss``).
        log: Trainer's log history (loss, reward accuracies and margins per logging step).
    """

    out: Path
    pairs: int
    steps: int
    final_loss: float
    log: list[dict[str, Any]]


def _common_args(settings: AdapterSettings, out: Path, device: str, n_pairs: int) -> dict[str, Any]:
    steps_per_epoch = max(1, -(-n_pairs // settings.batch_size))
    return {
        "output_dir": str(out), "num_train_epochs": settings.epochs,
        "learning_rate": settings.lr, "warmup_steps": int(settings.warmup_ratio
                                                          * steps_per_epoch * settings.epochs),
        "per_device_train_batch_size": settings.micro_batch,
        "gradient_accumulation_steps": settings.batch_size // settings.micro_batch,
        "lr_scheduler_type": "linear", "max_grad_norm": 1.0, "adam_beta2": 0.98,
        "seed": settings.seed, "data_seed": settings.seed, "full_determinism": True,
        "max_length": settings.max_length, "logging_steps": 1, "save_strategy": "no",
        "report_to": [], "use_cpu": device == "cpu", "bf16": device == "cuda",
        "dataloader_num_workers": 0, "disable_tqdm": False,
        # no activation checkpointing: faster on small models, and what the memory check
        # (charbench.lab.settings.training_bytes) assumes
        "gradient_checkpointing": False,
    }


def _trainer(base_model: Any, tokenizer: Any, pairs: Sequence[PreferencePair],
             settings: AdapterSettings, work: Path, device: str) -> Any:
    from datasets import Dataset
    from peft import LoraConfig
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    lora = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    common = _common_args(settings, work, device, len(pairs))
    if settings.method == "dpo":
        data = Dataset.from_list([
            {k: v for k, v in p.dpo_record().items() if k != "prompt_id"} for p in pairs])
        # the reference (the base: peft disables the adapter) is scored once, before training,
        # instead of once per epoch: identical log-probabilities, fewer forward passes
        config = DPOConfig(beta=settings.beta, loss_type=["sigmoid", "sft"],
                           loss_weights=[1.0, settings.nll_weight],
                           precompute_ref_log_probs=True, **common)
        return DPOTrainer(model=base_model, args=config, train_dataset=data,
                          processing_class=tokenizer, peft_config=lora)
    data = Dataset.from_list([
        {"prompt": [{"role": "user", "content": p.prompt}],
         "completion": [{"role": "assistant", "content": p.chosen}]} for p in pairs])
    sft = SFTConfig(completion_only_loss=True, **common)
    return SFTTrainer(model=base_model, args=sft, train_dataset=data,
                      processing_class=tokenizer, peft_config=lora)


def train_adapter(
    base: str,
    pairs: Sequence[PreferencePair],
    out: str | Path,
    settings: AdapterSettings,
    device: str = "cpu",
) -> AdapterResult:
    """Train one persona's LoRA on ``pairs`` and save it at ``out`` (see the module docstring).

    Args:
        base: The base model (local directory or Hub id), as the adapter will record it.
        pairs: The persona's distillation pairs (at least one).
        out: The adapter directory to create (must not exist).
        settings: Hyper-parameters (checked first).
        device: ``cpu`` or ``cuda`` (bf16 on CUDA, fp32 on the CPU).

    Raises:
        ValueError: invalid settings, no pairs, or ``out`` exists.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    settings.check()
    out = Path(out)
    if not pairs:
        raise ValueError(f"no distillation pairs to train {out.name} on")
    if out.exists():
        raise ValueError(f"{out} exists; remove it to retrain the adapter")
    work = out.with_name(out.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    set_seed(settings.seed, deterministic=True)
    tokenizer = AutoTokenizer.from_pretrained(base)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    model = model.to(device)
    trainer = _trainer(model, tokenizer, pairs, settings, work, device)
    stats = trainer.train()
    trainer.model.save_pretrained(str(work))
    result = AdapterResult(out, len(pairs), int(stats.global_step),
                           float(stats.training_loss), list(trainer.state.log_history))
    record = {"base": base, "device": device, "settings": asdict(settings),
              "pairs": result.pairs, "steps": result.steps, "train_loss": result.final_loss,
              "log_history": result.log}
    (work / "training.json").write_text(json.dumps(record, indent=2, default=str) + "\n",
                                        encoding="utf-8")
    for extra in ("README.md",):  # peft's empty model card template says nothing true
        (work / extra).unlink(missing_ok=True)
    work.rename(out)
    return result
