"""``charbench lab``: persona adapters trained the way OCT's distillation stage does, on any base.

- :mod:`~charbench.lab.train`: one persona's LoRA with TRL (``DPOTrainer``, or
  ``SFTTrainer`` on the chosen replies), OCT's hyper-parameters and the CPU preset.
- :mod:`~charbench.lab.data`: chosen (persona-prompted base) / rejected (plain base) pairs
  read from ``chat_persona`` logs, written as JSONL in TRL's preference and chat formats.
- :mod:`~charbench.lab.settings`: the lab's settings and the checks before any work.
- :mod:`~charbench.lab.manifest`: ``lab.json`` (artifacts, hashes, commands; resuming).
- :mod:`~charbench.lab.pipeline` and :mod:`~charbench.lab.steps`: the steps and their runner.
- :mod:`~charbench.lab.command`: the ``charbench lab`` command.

Nothing here imports the provider: generation and evaluation go through ``charbench sweep``
(``hf-lora`` is reached by model name), training through TRL, peft and transformers, which
load only when a step runs.
"""

from charbench.lab.data import LabData, LabDataError, collect_pairs, read_pairs, write_jsonl
from charbench.lab.manifest import LabManifest, sha256_path
from charbench.lab.train import (
    CPU_SETTINGS,
    AdapterResult,
    AdapterSettings,
    PreferencePair,
    train_adapter,
)

__all__ = [
    "CPU_SETTINGS",
    "AdapterResult",
    "AdapterSettings",
    "LabData",
    "LabDataError",
    "LabManifest",
    "PreferencePair",
    "collect_pairs",
    "read_pairs",
    "sha256_path",
    "train_adapter",
    "write_jsonl",
]
