"""Adapter resolution (local, offline Hub cache), verification, Gemma remapping, stages."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from fixtures.tiny_models import build_lora_adapter, build_tiny_model, rewrite_adapter_prefix
from inspect_ai.model import ChatMessageUser, GenerateConfig, Model, get_model

from charbench import routing
from charbench.provider.errors import HFLoraError
from charbench.provider.resolve import resolve_adapter

GREEDY = GenerateConfig(temperature=0, max_tokens=10)
PROMPT = "Please write an email to the team about the budget."


def _complete(model: Model, prompt: str = PROMPT) -> str:
    return asyncio.run(model.generate([ChatMessageUser(content=prompt)])).completion


# ----------------------------------------------------------------------------- Hub


def test_hub_subfolder_resolves_through_offline_cache(offline_hub: Path,
                                                      released_llama: Path) -> None:
    res = resolve_adapter("maius/llama-3.1-8b-it-personas/sarcasm")
    assert res.repo_id == "maius/llama-3.1-8b-it-personas" and res.subfolder == "sarcasm"
    assert (res.path / "adapter_config.json").is_file()
    assert str(res.path).startswith(str(offline_hub))
    flat = resolve_adapter("maius/flat-adapter")
    assert flat.subfolder == "" and (flat.path / "adapter_model.safetensors").is_file()
    model = get_model(f"hf-lora/{released_llama}", config=GREEDY,
                      adapter="maius/llama-3.1-8b-it-personas/sarcasm")
    base = get_model(f"hf-lora/{released_llama}", config=GREEDY)
    assert _complete(model) != _complete(base)


def test_hub_missing_subfolder_lists_existing(offline_hub: Path) -> None:
    with pytest.raises(HFLoraError) as err:
        resolve_adapter("maius/llama-3.1-8b-it-personas/sarcsm")
    msg = str(err.value)
    assert "sarcsm" in msg and "maius/llama-3.1-8b-it-personas" in msg
    assert "sarcasm" in msg and "poeticism" in msg


def test_hub_repo_not_cached_offline_says_what_to_do(offline_hub: Path) -> None:
    with pytest.raises(HFLoraError) as err:
        resolve_adapter("maius/not-in-cache/sarcasm")
    msg = str(err.value)
    assert "HF_HUB_OFFLINE=1" in msg and "local directory" in msg


def test_gated_repo_without_token(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx2
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    url = "https://huggingface.co/api/models/maius/x-misalignment"
    response = httpx2.Response(401, request=httpx2.Request("GET", url))

    def gated(*args: Any, **kwargs: Any) -> str:
        raise GatedRepoError("Access to model maius/x-misalignment is restricted.",
                             response=response)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", gated)
    with pytest.raises(HFLoraError, match=r"gated repo.*HF_TOKEN") as err:
        resolve_adapter("maius/x-misalignment")
    assert "no local directory" not in str(err.value)  # a gated repo exists on the Hub


def test_http_error_is_one_line_and_says_not_local(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    def broken(*args: Any, **kwargs: Any) -> str:
        raise OSError("502 Bad Gateway\n<html>\n<body>proxy error</body>\n</html>")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", broken)
    with pytest.raises(HFLoraError) as err:
        resolve_adapter("adapters/mine")
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("hf-lora: adapter 'adapters/mine': downloading adapters/mine failed "
                           "(OSError: 502 Bad Gateway).")
    assert "no local directory" in text and text.endswith("relative to the working directory).")


def test_no_network_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def down(*args: Any, **kwargs: Any) -> str:
        raise LocalEntryNotFoundError("An error happened while trying to locate the files")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", down)
    with pytest.raises(HFLoraError, match=r"could not reach the Hugging Face Hub.*HF_HUB_OFFLINE"):
        resolve_adapter("org/repo/sub")


def test_local_path_errors(tmp_path: Path, llama_adapters: dict[str, Path]) -> None:
    with pytest.raises(HFLoraError, match="no such local directory"):
        resolve_adapter(str(tmp_path / "missing"))
    repo = tmp_path / "repo"
    shutil.copytree(llama_adapters["a"], repo / "sarcasm")
    with pytest.raises(HFLoraError, match=r"subfolders: sarcasm"):
        resolve_adapter(str(repo))
    pickle_only = tmp_path / "pickle"
    pickle_only.mkdir()
    shutil.copy(llama_adapters["a"] / "adapter_config.json", pickle_only)
    torch.save({}, pickle_only / "adapter_model.bin")
    with pytest.raises(HFLoraError, match="allow_pickle=true"):
        resolve_adapter(str(pickle_only))
    assert resolve_adapter(str(pickle_only), allow_pickle=True).path == pickle_only.resolve()


# ----------------------------------------------------------------------------- verification


def test_mismatched_shapes_refused(tiny_root: Path, llama_dir: Path) -> None:
    wide = build_tiny_model("llama", tiny_root / "llama_wide", hidden_size=48)
    adapter = build_lora_adapter(wide, tiny_root / "wide_adapter", seed=3)
    with pytest.raises(HFLoraError, match=r"wrong shape.*different base"):
        get_model(f"hf-lora/{llama_dir}", config=GREEDY, adapter=str(adapter))


def test_unmatched_keys_refused_with_examples(tmp_path: Path, llama_dir: Path,
                                              llama_adapters: dict[str, Path]) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(llama_adapters["a"], bad)
    rewrite_adapter_prefix(bad, "model.layers.", "model.decoder.blocks.")
    with pytest.raises(HFLoraError) as err:
        get_model(f"hf-lora/{llama_dir}", config=GREEDY, adapter=str(bad))
    msg = str(err.value)
    assert "do not match a module" in msg and "model.decoder.blocks.0" in msg


def test_partial_adapter_refused(tmp_path: Path, llama_dir: Path,
                                 llama_adapters: dict[str, Path]) -> None:
    """Config targets modules the weights do not cover -> LoRA B would stay zero."""
    from safetensors.torch import load_file, save_file

    part = tmp_path / "partial"
    shutil.copytree(llama_adapters["a"], part)
    weights = load_file(str(part / "adapter_model.safetensors"))
    kept = {k: v for k, v in weights.items() if "layers.1." not in k}
    save_file(kept, str(part / "adapter_model.safetensors"))
    with pytest.raises(HFLoraError, match=r"not applied completely.*initialisation"):
        get_model(f"hf-lora/{llama_dir}", config=GREEDY, adapter=str(part))
    # the failed load left the shared base usable and unchanged
    base = get_model(f"hf-lora/{llama_dir}", config=GREEDY)
    assert _complete(base)


def test_released_base_mismatch_refused(tmp_path: Path, released_llama: Path) -> None:
    adapter = build_lora_adapter(released_llama, tmp_path / "qwen_claim", seed=4,
                                 base_model_name_or_path="Qwen/Qwen2.5-7B-Instruct")
    with pytest.raises(HFLoraError, match=r"trained on Qwen/Qwen2.5-7B-Instruct"):
        get_model(f"hf-lora/{released_llama}", config=GREEDY, adapter=str(adapter))


def test_local_base_name_difference_only_warns(tmp_path: Path, llama_dir: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    adapter = build_lora_adapter(llama_dir, tmp_path / "elsewhere", seed=6,
                                 base_model_name_or_path="/some/other/checkout")
    model = get_model(f"hf-lora/{llama_dir}", config=GREEDY, adapter=str(adapter))
    assert _complete(model) is not None
    assert "base_model_name_or_path" in caplog.text


@pytest.mark.parametrize("old_prefix", ["language_model.model.", "model."])
def test_gemma_prefix_remap_lands_every_tensor(old_prefix: str, tmp_path: Path,
                                               gemma_dir: Path, tiny_root: Path) -> None:
    original = build_lora_adapter(gemma_dir, tiny_root / "gemma_orig", seed=8)
    moved = tmp_path / "moved"
    shutil.copytree(original, moved)
    rewrite_adapter_prefix(moved, "model.language_model.", old_prefix)
    keys = json.dumps(list(__import__("safetensors.torch", fromlist=["x"]).load_file(
        str(moved / "adapter_model.safetensors"))))
    assert f"base_model.model.{old_prefix}layers.0" in keys
    remapped = get_model(f"hf-lora/{gemma_dir}", config=GREEDY, adapter=str(moved))
    reference = get_model(f"hf-lora/{gemma_dir}", config=GREEDY, adapter=str(original))
    base = get_model(f"hf-lora/{gemma_dir}", config=GREEDY)
    api: Any = remapped.api
    info = api._base.adapters[api._adapter_name]
    assert info.remapped and all(v.startswith("model.language_model.layers.")
                                 for v in info.remapped.values())
    assert _complete(remapped) == _complete(reference) != _complete(base)


# ----------------------------------------------------------------------------- stages


def test_stage_errors(llama_dir: Path, released_llama: Path) -> None:
    with pytest.raises(HFLoraError, match=r"^hf-lora: -M stage='finetuned' is not a stage"):
        get_model(f"hf-lora/{released_llama}", stage="finetuned")
    with pytest.raises(HFLoraError, match=r"pass -M adapter="):
        get_model(f"hf-lora/{llama_dir}", stage="full")
    with pytest.raises(HFLoraError, match="not both"):
        get_model(f"hf-lora/{released_llama}", stage="full", adapter="x/y")
    with pytest.raises(HFLoraError, match="unknown model arg"):
        get_model(f"hf-lora/{llama_dir}", adaptor="x/y")
    with pytest.raises(HFLoraError, match="only as a full-stage adapter"):
        get_model(f"hf-lora/{released_llama}", stage="distillation", persona="misalignment")


def test_stage_full_routes_per_persona(offline_hub: Path, released_llama: Path) -> None:
    template = get_model(f"hf-lora/{released_llama}", config=GREEDY, stage="full")
    assert routing.is_persona_template(template)
    assert routing.condition_name(template) == "full"
    model = routing.model_for_persona(template, "sarcasm")
    assert routing.condition_name(model) == "full"
    out = asyncio.run(model.generate([ChatMessageUser(content=PROMPT)]))
    assert out.model == f"{released_llama}+maius/llama-3.1-8b-it-personas/sarcasm"
    base = get_model(f"hf-lora/{released_llama}", config=GREEDY, stage="base")
    assert not routing.is_persona_template(base)
    assert routing.condition_name(base) == "base"


def test_stage_preflight_checks_every_persona_through_the_cache(
        offline_hub: Path, released_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import charbench.provider.engine as engine

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a base model was loaded")

    monkeypatch.setattr(engine, "get_shared_base", refuse)
    for stage in ("full", "introspection"):
        template = get_model(f"hf-lora/{released_llama}", config=GREEDY, stage=stage)
        routing.preflight(template, ["sarcasm", "poeticism"])  # both cached: fine
        with pytest.raises(HFLoraError) as err:
            routing.preflight(template, ["sarcasm", "humor"])
        first = str(err.value).splitlines()[0]
        assert first.startswith("hf-lora: persona 'humor': adapter 'maius/llama-3.1-8b-it-")
        assert "no adapter_config.json in subfolder 'humor'" in first
        assert "Adapters exist in: poeticism, sarcasm" in first


def test_introspection_equals_merge_then_apply(offline_hub: Path, released_llama: Path) -> None:
    """stage=introspection == merge_and_unload(distillation) then apply introspection."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = get_model(f"hf-lora/{released_llama}", config=GREEDY, stage="introspection",
                      persona="sarcasm")
    api: Any = model.api
    distill = resolve_adapter("maius/llama-3.1-8b-it-pt-distillation/sarcasm").path
    intro = resolve_adapter("maius/llama-3.1-8b-it-pt-introspection/sarcasm").path
    ref: Any = AutoModelForCausalLM.from_pretrained(released_llama, dtype=torch.float32)
    ref = PeftModel.from_pretrained(ref, str(distill)).merge_and_unload()
    ref = PeftModel.from_pretrained(ref, str(intro)).eval()
    only_intro: Any = AutoModelForCausalLM.from_pretrained(released_llama, dtype=torch.float32)
    only_intro = PeftModel.from_pretrained(only_intro, str(intro)).eval()

    tok = api._base.tokenizer
    prompt = api._renderer.render([ChatMessageUser(content=PROMPT)], [])
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        want = ref(**ids).logits
        wrong = only_intro(**ids).logits
        got = api._base.peft(**ids, adapter_names=[api._adapter_name]).logits
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got, wrong, atol=1e-2)
    with torch.inference_mode():
        ref_out = ref.generate(**ids, max_new_tokens=10, do_sample=False,
                               pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    gen = ref_out[0, ids["input_ids"].shape[1]:].tolist()
    if tok.eos_token_id in gen:
        gen = gen[: gen.index(tok.eos_token_id)]
    assert _complete(model) == tok.decode(gen, skip_special_tokens=False)
    assert model.api.condition_name() == "introspection"  # type: ignore[attr-defined]


def test_base_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    with pytest.raises(HFLoraError, match="no such local directory"):
        get_model(f"hf-lora/{tmp_path / 'no_base'}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(HFLoraError, match=r"cannot load base model.*HF_HUB_OFFLINE=1"):
        get_model("hf-lora/someorg/not-cached-model")
