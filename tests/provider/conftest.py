"""Session-scoped tiny models and adapters for the hf-lora tests (built once: CPU is scarce)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.tiny_models import (
    build_lora_adapter,
    build_persona_repo,
    build_tiny_model,
    install_in_hf_cache,
)

PERSONAS = ("sarcasm", "poeticism")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def llama_dir(tiny_root: Path) -> Path:
    return build_tiny_model("llama", tiny_root / "llama")


@pytest.fixture(scope="session")
def qwen_dir(tiny_root: Path) -> Path:
    return build_tiny_model("qwen2", tiny_root / "qwen2")


@pytest.fixture(scope="session")
def gemma_dir(tiny_root: Path) -> Path:
    return build_tiny_model("gemma3", tiny_root / "gemma3")


@pytest.fixture(scope="session")
def llama_adapters(tiny_root: Path, llama_dir: Path) -> dict[str, Path]:
    """Two different adapters for the tiny llama."""
    return {
        "a": build_lora_adapter(llama_dir, tiny_root / "llama_a", seed=1),
        "b": build_lora_adapter(llama_dir, tiny_root / "llama_b", seed=2),
    }


@pytest.fixture(scope="session")
def released_llama(tiny_root: Path) -> Path:
    """A tiny llama saved under the released base's repo name (released_base() knows it)."""
    return build_tiny_model("llama", tiny_root / "released" / "Llama-3.1-8B-Instruct")


@pytest.fixture(scope="session")
def hub_cache(tiny_root: Path, released_llama: Path) -> Path:
    """An offline HF cache with the released layout for the tiny 'Llama-3.1-8B-Instruct'.

    Repos: maius/llama-3.1-8b-it-{personas,pt-distillation,pt-introspection}, one subfolder
    per persona in :data:`PERSONAS`; maius/flat-adapter with an adapter at its root.
    """
    cache = tiny_root / "hf_cache"
    src = tiny_root / "hub_src"
    for i, repo in enumerate(("personas", "pt-distillation", "pt-introspection")):
        root = build_persona_repo(released_llama, src / repo, PERSONAS, seed=100 + 10 * i,
                                  base_model_name_or_path="meta-llama/Llama-3.1-8B-Instruct")
        install_in_hf_cache(root, cache, f"maius/llama-3.1-8b-it-{repo}")
    flat = build_lora_adapter(released_llama, src / "flat", seed=7)
    install_in_hf_cache(flat, cache, "maius/flat-adapter")
    return cache


@pytest.fixture
def offline_hub(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point huggingface_hub at :func:`hub_cache` with HF_HUB_OFFLINE=1 (read at import)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    return hub_cache
