"""Untrusted checkpoints, secrets and servers.

- Adapters load from safetensors only: a pickle-only adapter is refused through ``hf-lora``
  unless ``-M allow_pickle=true``, and even then a pickle that would run code is rejected
  (``torch.load(weights_only=True)``). Classifiers: see
  ``tests/scoring/test_classifiers.py::test_pickled_weights_need_an_explicit_opt_in``.
- ``trust_remote_code`` is off by default: a base model and a classifier whose config points
  at custom code load without running it; ``-M trust_remote_code=true`` is the only way in.
- Secrets: a token passed as ``-M api_key=...`` and as ``HF_TOKEN`` appears nowhere in the
  raw bytes of the ``.eval`` log (every member unzipped: header, samples, transcripts), the
  ``charbench report`` output, or the console.
- Servers: nothing charbench starts or documents binds anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch
from inspect_ai.model import get_model
from reliab_support import PYTHON, REPO, subprocess_env

from charbench.provider.errors import HFLoraError

# -------------------------------------------------------------------------- pickle


class _Boom:
    """Unpickling this runs ``open(marker, "w")`` (what a hostile checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def _pickle_only(adapter: Path, dest: Path, payload: object | None = None) -> Path:
    from safetensors.torch import load_file

    dest.mkdir(parents=True)
    shutil.copy(adapter / "adapter_config.json", dest)
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    torch.save(payload if payload is not None else weights, dest / "adapter_model.bin")
    return dest


def test_pickle_only_adapter_needs_explicit_opt_in(
    tiny_llama: Path, persona_repo: Path, tmp_path: Path
) -> None:
    adapter = _pickle_only(persona_repo / "sarcasm", tmp_path / "pickled")
    with pytest.raises(HFLoraError, match=r"allow_pickle=true"):
        get_model(f"hf-lora/{tiny_llama}", adapter=str(adapter), device="cpu")
    model = get_model(f"hf-lora/{tiny_llama}", adapter=str(adapter), device="cpu",
                      allow_pickle=True)
    assert model.api.adapter_label() == str(adapter)  # type: ignore[attr-defined]


def test_opted_in_pickle_still_cannot_run_code(
    tiny_llama: Path, persona_repo: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    adapter = _pickle_only(persona_repo / "humor", tmp_path / "hostile", _Boom(marker))
    with pytest.raises(HFLoraError):
        get_model(f"hf-lora/{tiny_llama}", adapter=str(adapter), device="cpu",
                  allow_pickle=True)
    assert not marker.exists(), "unpickling an adapter ran code"


def test_corrupt_safetensors_adapter_is_a_clear_error(
    tiny_llama: Path, persona_repo: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(persona_repo / "sarcasm", broken)
    data = (broken / "adapter_model.safetensors").read_bytes()
    (broken / "adapter_model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(HFLoraError, match=r"cannot read .*adapter_model.safetensors"):
        get_model(f"hf-lora/{tiny_llama}", adapter=str(broken), device="cpu")


# ----------------------------------------------------------------- trust_remote_code

_CUSTOM_CODE = """
from pathlib import Path
Path({marker!r}).write_text("custom code ran")
from transformers import {config_cls}, {model_cls}
class CustomConfig({config_cls}):
    pass
class CustomModel({model_cls}):
    config_class = CustomConfig
"""


def _with_remote_code(
    src: Path, dest: Path, config_cls: str, model_cls: str, auto_model: str
) -> tuple[Path, Path]:
    """Copy a saved model and point its config at custom code that leaves a marker file."""
    shutil.copytree(src, dest)
    marker = dest.parent / f"{dest.name}.ran"
    code = _CUSTOM_CODE.format(marker=str(marker), config_cls=config_cls, model_cls=model_cls)
    (dest / "custom_code.py").write_text(code)
    config = json.loads((dest / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "custom_code.CustomConfig",
        auto_model: "custom_code.CustomModel",
    }
    (dest / "config.json").write_text(json.dumps(config))
    return dest, marker


@pytest.fixture
def modules_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep transformers' copies of custom code out of the user's cache."""
    import transformers.dynamic_module_utils as dmu

    cache = tmp_path / "hf_modules"
    monkeypatch.setattr(dmu, "HF_MODULES_CACHE", str(cache))
    return cache


def test_base_model_remote_code_runs_only_when_asked(
    tiny_llama: Path, tmp_path: Path, modules_cache: Path
) -> None:
    model_dir, marker = _with_remote_code(
        tiny_llama, tmp_path / "custom_base", "LlamaConfig", "LlamaForCausalLM",
        "AutoModelForCausalLM",
    )
    get_model(f"hf-lora/{model_dir}", device="cpu")
    assert not marker.exists(), "hf-lora ran a checkpoint's custom code by default"
    get_model(f"hf-lora/{model_dir}", device="cpu", trust_remote_code=True)
    assert marker.exists(), "-M trust_remote_code=true did not reach transformers"


def test_classifier_remote_code_never_runs(
    tiny_clf: Path, tmp_path: Path, modules_cache: Path
) -> None:
    from charbench.scoring.classifiers import HFClassifier

    clf_dir, marker = _with_remote_code(
        tiny_clf, tmp_path / "custom_clf", "ModernBertConfig",
        "ModernBertForSequenceClassification", "AutoModelForSequenceClassification",
    )
    clf = HFClassifier(str(clf_dir), device="cpu")
    assert clf.classify_batch(["hello there"])[0]
    assert not marker.exists(), "the classifier ran a checkpoint's custom code"


# ----------------------------------------------------------------------------- secrets

SECRET_ARG = "hf_SECRETmodelarg0123456789abcdefXYZ"
SECRET_ENV = "hf_SECRETenvvar9876543210fedcbaQRS"


def _members_containing(path: Path, secrets: list[str]) -> list[str]:
    found = []
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            data = zf.read(name)
            found += [f"{name}: {s}" for s in secrets if s.encode() in data]
    return found


@pytest.mark.slow
def test_tokens_never_reach_logs_report_or_console(
    tiny_llama: Path, persona_repo: Path, tiny_clf: Path, tmp_path: Path
) -> None:
    """A real tiny hf-lora agentic eval through the inspect CLI, token as -M and as env."""
    log_dir, out = tmp_path / "logs", tmp_path / "report"
    env = subprocess_env(HF_TOKEN=SECRET_ENV)
    run = subprocess.run(
        [PYTHON, "-m", "inspect_ai", "eval", "charbench/agentic_email",
         "--model", f"hf-lora/{tiny_llama}",
         "-M", f"adapter={persona_repo}/{{persona}}", "-M", f"api_key={SECRET_ARG}",
         "-M", "device=cpu",
         "-T", "personas=sarcasm,humor", "-T", "scenarios=budget_overreach_v1", "-T", "max_turns=2",
         "-T", f"classifier={tiny_clf}", "--max-tokens", "8", "--seed", "0",
         "--log-dir", str(log_dir), "--display", "plain"],
        cwd=REPO, env=env, capture_output=True, timeout=600,
    )
    console = run.stdout.decode() + run.stderr.decode()
    assert run.returncode == 0, console[-4000:]
    logs = list(log_dir.glob("*.eval"))
    assert len(logs) == 1
    with zipfile.ZipFile(logs[0]) as zf:
        header = json.loads(zf.read("header.json"))
        assert header["status"] == "success"
        # the run really used the adapters and left transcripts to search
        assert any(n.startswith("samples/") for n in zf.namelist())
    report = subprocess.run(
        [PYTHON, "-m", "charbench.cli", "report", str(log_dir), "--out", str(out),
         "--n-boot", "20"],
        cwd=REPO, env=env, capture_output=True, timeout=600,
    )
    console += report.stdout.decode() + report.stderr.decode()
    assert report.returncode == 0, console[-4000:]
    # positive control: the search does see model args (the adapter template is logged)
    assert _members_containing(logs[0], [f"{persona_repo}/{{persona}}"])
    leaks = _members_containing(logs[0], [SECRET_ARG, SECRET_ENV])
    for f in out.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            leaks += [f"{f}: {s}" for s in (SECRET_ARG, SECRET_ENV) if s.encode() in data]
    leaks += [f"console: {s}" for s in (SECRET_ARG, SECRET_ENV) if s in console]
    assert not leaks, leaks


# ----------------------------------------------------------------------------- servers

_DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_SRC_FILES = sorted((REPO / "src" / "charbench").rglob("*.py"))
_WILDCARD_BIND = re.compile(
    r"""(--host[ =]|host\s*=\s*)['"]?(0\.0\.0\.0|::(?!1)|['"]{2})|['"]0\.0\.0\.0['"]"""
)


def _code_in_markdown(text: str) -> list[str]:
    """Fenced blocks and inline code spans, with shell line continuations joined."""
    text = text.replace("\\\n", " ")
    fenced = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    rest = re.sub(r"```.*?```", "", text, flags=re.S)
    inline = re.findall(r"`([^`]+)`", rest)
    commands = [c for block in fenced for c in re.split(r"\n(?!\s)", block)]
    return [" ".join(c.split()) for c in [*commands, *inline]]


def test_no_wildcard_binds_in_code_or_docs() -> None:
    offenders = [
        f"{f.relative_to(REPO)}: {c}"
        for f in _DOC_FILES
        for c in _code_in_markdown(f.read_text())
        if _WILDCARD_BIND.search(c)
    ]
    for f in _SRC_FILES:
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if _WILDCARD_BIND.search(line.split("#", 1)[0]):
                offenders.append(f"{f.relative_to(REPO)}:{i}: {line.strip()}")
    assert not offenders, offenders


def test_documented_servers_bind_localhost() -> None:
    """Every documented ``vllm serve`` binds 127.0.0.1; every ``inspect eval --model vllm/...``
    command either points at a server URL or passes ``-M host=127.0.0.1`` (Inspect's own vLLM server
    would otherwise bind 0.0.0.0)."""
    problems = []
    for f in _DOC_FILES:
        for cmd in _code_in_markdown(f.read_text()):
            if re.search(r"\bvllm serve\b", cmd) and "--host 127.0.0.1" not in cmd \
                    and " " in cmd.split("vllm serve", 1)[1].strip():
                problems.append(f"{f.name}: {cmd[:120]}")
            if re.search(r"\binspect eval\b.*--model\s+'?vllm/", cmd) and not re.search(
                r"host=127\.0\.0\.1|base[-_]url|VLLM_BASE_URL", cmd
            ):
                problems.append(f"{f.name}: {cmd[:120]}")
    assert not problems, problems


def test_wildcard_patterns_are_caught() -> None:
    """The two checks above can fail (guard against a regex that matches nothing)."""
    assert _WILDCARD_BIND.search("vllm serve m --host 0.0.0.0 --port 8000")
    assert _WILDCARD_BIND.search('server = Server(host="0.0.0.0")')
    assert not _WILDCARD_BIND.search("vllm serve m --host 127.0.0.1")
    doc = "Run:\n```\nvllm serve base \\\n  --port 8000\n```\nthen `inspect eval t.py --model vllm/b`."
    cmds = _code_in_markdown(doc)
    assert "vllm serve base --port 8000" in cmds and "inspect eval t.py --model vllm/b" in cmds
