"""The Inspect internals charbench relies on (:mod:`charbench._inspect`) keep their shape.

Each test names the internal it checks in its failure message, so an Inspect upgrade that
moves or changes one fails here, loudly, instead of deep inside an eval.
"""

from __future__ import annotations

import importlib
import inspect as pyinspect
from typing import Any

import pytest
from inspect_ai import Task, eval, task
from inspect_ai.dataset import Sample
from inspect_ai.event import ModelEvent
from inspect_ai.model import GenerateConfig, ModelInfo, ModelOutput, set_model_info
from inspect_ai.solver import Generate, TaskState, solver

from charbench import _inspect

PRIVATE = {
    "PrerequisiteError": ("inspect_ai._util.error", "PrerequisiteError"),
    "MODEL_INFO_LOOKUP_API_KEY": ("inspect_ai.model._model_info", "MODEL_INFO_LOOKUP_API_KEY"),
    "custom_model_info": ("inspect_ai.model._model_info", "_get_custom_model_info"),
    "active_model": ("inspect_ai.model._model", "active_model"),
    "active_generate_config": ("inspect_ai.model._generate_config", "active_generate_config"),
    "active_eval_id": ("inspect_ai.log._samples", "sample_active"),
    "active_sample_key": ("inspect_ai.log._samples", "sample_active"),
    "record_model_event": ("inspect_ai.log._transcript", "Transcript"),
}


@pytest.mark.parametrize("name", sorted(PRIVATE))
def test_private_name_still_exists(name: str) -> None:
    module, attr = PRIVATE[name]
    try:
        mod = importlib.import_module(module)
    except ImportError as ex:  # pragma: no cover - only on an Inspect upgrade
        pytest.fail(f"charbench._inspect.{name}: Inspect module {module} is gone ({ex})")
    assert hasattr(mod, attr), f"charbench._inspect.{name}: {module}.{attr} is gone"


def test_prerequisite_error_keeps_its_message() -> None:
    err = _inspect.PrerequisiteError("do this")
    assert isinstance(err, Exception), "charbench._inspect.PrerequisiteError is no Exception"
    assert err.message == "do this", (
        "charbench._inspect.PrerequisiteError no longer stores .message (the CLI prints it)"
    )


def test_model_info_lookup_key_is_what_inspect_passes() -> None:
    key = _inspect.MODEL_INFO_LOOKUP_API_KEY
    assert isinstance(key, str) and key, "charbench._inspect.MODEL_INFO_LOOKUP_API_KEY"
    source = pyinspect.getsource(importlib.import_module("inspect_ai.model._model_info"))
    assert "api_key=MODEL_INFO_LOOKUP_API_KEY" in source, (
        "charbench._inspect.MODEL_INFO_LOOKUP_API_KEY: Inspect no longer builds its model-info "
        "lookup model with this api key, so hf-lora would load weights for a lookup"
    )


def test_custom_model_info_reads_what_set_model_info_wrote() -> None:
    info = ModelInfo(organization="local", model="charbench-internals-probe")
    assert _inspect.custom_model_info("charbench/internals-probe") is None, (
        "charbench._inspect.custom_model_info: returns info for an unregistered name"
    )
    set_model_info("charbench/internals-probe", info)
    assert _inspect.custom_model_info("charbench/internals-probe") == info, (
        "charbench._inspect.custom_model_info no longer returns set_model_info's entry"
    )


def test_outside_an_eval_nothing_is_active() -> None:
    assert _inspect.active_eval_id() == "", "charbench._inspect.active_eval_id outside an eval"
    assert isinstance(_inspect.active_generate_config(), GenerateConfig), (
        "charbench._inspect.active_generate_config no longer returns a GenerateConfig"
    )


SEEN: dict[str, Any] = {}


@solver
def _record() -> Any:
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        SEEN["config"] = _inspect.active_generate_config()
        SEEN["eval_id"] = _inspect.active_eval_id()
        SEEN["sample_key"] = _inspect.active_sample_key()
        output = ModelOutput.from_content("mockllm/model", "taken, not generated")
        _inspect.record_model_event("mockllm/model", state.messages, GenerateConfig(), output)
        state.output = output
        return state

    return solve


@task
def _internals_probe() -> Task:
    SEEN["model"] = _inspect.active_model()
    return Task(dataset=[Sample(input="hi")], solver=_record())


def test_inside_an_eval_the_model_config_and_eval_id_are_active(tmp_path: Any) -> None:
    SEEN.clear()
    [log] = eval(
        _internals_probe, model="mockllm/model", temperature=0.3, display="none",
        log_dir=str(tmp_path),
    )
    assert log.status == "success", log.error
    model = SEEN.get("model")
    assert model is not None and str(model) == "mockllm/model", (
        f"charbench._inspect.active_model: not the model under evaluation at task build: {model}"
    )
    config = SEEN.get("config")
    assert isinstance(config, GenerateConfig) and config.temperature == 0.3, (
        f"charbench._inspect.active_generate_config: --temperature not in force: {config}"
    )
    assert SEEN.get("eval_id") == log.eval.eval_id, (
        "charbench._inspect.active_eval_id: not the running eval's id"
    )
    [sample] = log.samples or []
    assert SEEN.get("sample_key") == f"{log.eval.task}|{sample.id}|1", (
        f"charbench._inspect.active_sample_key: not task|sample id|epoch: {SEEN.get('sample_key')}"
    )
    assert _inspect.active_sample_key() == "", "active_sample_key outside an eval"
    events = [e for e in sample.events if isinstance(e, ModelEvent)]
    assert len(events) == 1 and events[0].cache == "read", (
        "charbench._inspect.record_model_event: the model event is not in the sample's events"
    )
    assert events[0].output.completion == "taken, not generated"
    assert [m.text for m in events[0].input] == ["hi"]
