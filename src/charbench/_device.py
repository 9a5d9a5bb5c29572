"""Leaf: the torch device charbench runs on when none is given, and the check of a given one.

One implementation for the provider, the scorer, classifier training and the lab (it
imports no other charbench module, so every layer may use it).
"""

from __future__ import annotations


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def checked_device(device: str | None, flag: str = "--device") -> str:
    """``device`` (default :func:`default_device`), refused unless it is a usable cpu/cuda.

    Raises:
        ValueError: not ``cpu`` or ``cuda``, or ``cuda`` where torch sees no GPU; the message
            names ``flag``.
    """
    dev = device or default_device()
    if dev not in ("cpu", "cuda"):
        raise ValueError(f"{flag} must be cpu or cuda, got {dev!r}")
    if dev == "cuda" and default_device() != "cuda":
        raise ValueError(f"{flag} cuda: this torch build sees no CUDA device; use {flag} cpu")
    return dev
