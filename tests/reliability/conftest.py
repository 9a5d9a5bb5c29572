"""Session fixtures of the reliability suite: tiny models built once (CPU is scarce)."""

from __future__ import annotations

from pathlib import Path

import pytest

from charbench.personas import DEFAULT_PERSONAS


@pytest.fixture(scope="session")
def rel_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="session")
def tiny_clf(rel_root: Path) -> Path:
    """A tiny random ModernBERT persona classifier (11 labels, safetensors)."""
    from fixtures.tiny_classifier import build_tiny_classifier

    return build_tiny_classifier(rel_root / "clf")


@pytest.fixture(scope="session")
def tiny_llama(rel_root: Path) -> Path:
    """A tiny random Llama-family base with a Llama-3.1-shaped chat template."""
    from fixtures.tiny_models import build_tiny_model

    return build_tiny_model("llama", rel_root / "llama")


@pytest.fixture(scope="session")
def persona_repo(rel_root: Path, tiny_llama: Path) -> Path:
    """One LoRA adapter per default persona (10), ``repo/<persona>/adapter_*``."""
    from fixtures.tiny_models import build_persona_repo

    return build_persona_repo(tiny_llama, rel_root / "personas", DEFAULT_PERSONAS, r=2)
