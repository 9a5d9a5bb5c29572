"""Persona routing for providers that do not route themselves (name substitution)."""

from __future__ import annotations

from inspect_ai.model import get_model

from charbench.routing import (
    base_model_name,
    condition_name,
    is_persona_template,
    model_for_persona,
)


def test_non_template_model_is_returned_unchanged() -> None:
    model = get_model("mockllm/model")
    assert not is_persona_template(model)
    assert model_for_persona(model, "sarcasm") is model


def test_template_name_is_filled_and_connection_carried_over() -> None:
    model = get_model(
        "openai-api/local/{persona}",
        base_url="http://127.0.0.1:9/v1",
        api_key="test-key",
        organization="org-{persona}",
    )
    assert is_persona_template(model)
    routed = model_for_persona(model, "humor")
    assert str(routed) == "openai-api/local/humor"
    assert routed.api.base_url == "http://127.0.0.1:9/v1"
    assert routed.api.api_key == "test-key"
    assert routed.model_args["organization"] == "org-humor"
    # a second persona gets a different model, the same persona the same (cached) one
    assert str(model_for_persona(model, "sarcasm")) == "openai-api/local/sarcasm"
    assert model_for_persona(model, "humor") is routed


def test_vllm_base_name_and_condition() -> None:
    model = get_model(
        "vllm/meta-llama/Llama-3.1-8B-Instruct:full-{persona}",
        base_url="http://127.0.0.1:9/v1",
        api_key="x",
    )
    assert base_model_name(model) == "meta-llama/Llama-3.1-8B-Instruct"
    assert condition_name(model) == str(model)
