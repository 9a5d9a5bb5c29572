"""Training on charbench's own outputs: persona classifiers (``charbench train-classifier``).

- :mod:`~charbench.training.classifier_data`: (reply, gold persona) pairs read from
  ``chat_persona`` logs, and the train/validation split by prompt.
- :mod:`~charbench.training.classifier_train`: fine-tuning any
  ``AutoModelForSequenceClassification`` encoder with transformers' ``Trainer``, validation
  macro-F1 with its bootstrap CI, and the checkpoint with its model card.
- :mod:`~charbench.training.classifier_command`: the ``charbench train-classifier`` command.

Nothing here imports the provider; torch and transformers load only when training starts.
"""

from charbench.training.classifier_data import (
    ClassifierData,
    DataError,
    LabelledReply,
    check_enough,
    collect_replies,
    split_by_prompt,
)
from charbench.training.classifier_train import (
    TrainResult,
    TrainSettings,
    train_classifier,
    train_into,
)

__all__ = [
    "ClassifierData",
    "DataError",
    "LabelledReply",
    "TrainResult",
    "TrainSettings",
    "check_enough",
    "collect_replies",
    "split_by_prompt",
    "train_classifier",
    "train_into",
]
