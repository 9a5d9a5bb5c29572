"""Resolving an adapter spec (local dir, ``org/name``, ``org/name/sub/dir``) to a directory.

Hub downloads go through :func:`huggingface_hub.snapshot_download`, so a populated cache
works with ``HF_HUB_OFFLINE=1``. Only huggingface_hub is imported here (no torch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from charbench.provider.errors import HFLoraError

ADAPTER_CONFIG = "adapter_config.json"
SAFETENSORS_WEIGHTS = "adapter_model.safetensors"
PICKLE_WEIGHTS = "adapter_model.bin"

_OFFLINE_HINT = (
    "If this machine cannot reach the Hugging Face Hub, pass a local directory "
    "(-M adapter=/path/to/adapter_dir) or set HF_HUB_OFFLINE=1 with a Hugging Face cache "
    "(HF_HOME / HF_HUB_CACHE) that already holds the repo."
)


@dataclass(frozen=True)
class ResolvedAdapter:
    """Where an adapter spec led.

    Attributes:
        spec: the spec as the user gave it.
        path: the local directory holding ``adapter_config.json``.
        repo_id: the Hub repo (None for a local directory).
        subfolder: the subfolder inside the repo ("" for the repo root or a local dir).
        revision: the Hub revision asked for (None: the default branch).
    """

    spec: str
    path: Path
    repo_id: str | None = None
    subfolder: str = ""
    revision: str | None = None


def _looks_local(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~", ".\\")) or os.path.isabs(spec) or (
        len(spec) > 1 and spec[1] == ":"
    )


def _adapter_subfolders(root: Path) -> list[str]:
    """Relative paths under ``root`` that contain an ``adapter_config.json``."""
    found = []
    for cfg in sorted(root.rglob(ADAPTER_CONFIG)):
        rel = cfg.parent.relative_to(root).as_posix()
        found.append(rel if rel != "." else "(repo root)")
    return found


def check_adapter_dir(path: Path, tried: str, *, allow_pickle: bool = False) -> None:
    """Raise :class:`HFLoraError` unless ``path`` holds a loadable adapter.

    Args:
        path: the directory to check.
        tried: how the user named it (quoted in messages).
        allow_pickle: accept a pickle-only ``adapter_model.bin`` (default False: refused,
            because unpickling runs arbitrary code).
    """
    if not path.is_dir():
        raise HFLoraError(f"hf-lora: adapter {tried!r}: {path} is not a directory.")
    if not (path / ADAPTER_CONFIG).is_file():
        subs = _adapter_subfolders(path)
        hint = (
            f" Adapters were found in these subfolders: {', '.join(subs)}; append one to the "
            "path."
            if subs
            else " No adapter_config.json was found anywhere below it."
        )
        raise HFLoraError(
            f"hf-lora: adapter {tried!r}: no {ADAPTER_CONFIG} in {path}.{hint}"
        )
    if (path / SAFETENSORS_WEIGHTS).is_file():
        return
    if (path / PICKLE_WEIGHTS).is_file():
        if allow_pickle:
            return
        raise HFLoraError(
            f"hf-lora: adapter {tried!r} has only a pickle checkpoint ({PICKLE_WEIGHTS}); "
            "unpickling can run arbitrary code, so it is refused. Convert it to "
            f"{SAFETENSORS_WEIGHTS}, or pass -M allow_pickle=true if you trust its source."
        )
    raise HFLoraError(
        f"hf-lora: adapter {tried!r}: {path} has {ADAPTER_CONFIG} but no weights "
        f"({SAFETENSORS_WEIGHTS} or {PICKLE_WEIGHTS})."
    )


def split_hub_spec(spec: str) -> tuple[str, str]:
    """Split ``org/name[/sub/dir]`` into ``(repo_id, subfolder)``.

    Raises:
        HFLoraError: fewer than two path components.
    """
    parts = [p for p in spec.strip("/").split("/") if p]
    if len(parts) < 2:
        raise HFLoraError(
            f"hf-lora: adapter {spec!r} is neither an existing local directory nor a Hub id "
            "of the form org/name or org/name/sub/folder."
        )
    return f"{parts[0]}/{parts[1]}", "/".join(parts[2:])


def resolve_adapter(
    spec: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    allow_pickle: bool = False,
) -> ResolvedAdapter:
    """Find (and if needed download) the adapter named by ``spec``.

    Args:
        spec: an existing local directory; ``org/name`` (adapter at the repo root); or
            ``org/name/sub/dir`` (adapter in a subfolder, as the persona releases are laid
            out). A spec that exists on disk is always taken as local.
        revision: Hub branch, tag or commit of the adapter repo (default: main).
        token: Hub token (default: huggingface_hub's own lookup, e.g. ``HF_TOKEN``).
        allow_pickle: accept a pickle-only checkpoint (default False).

    Returns:
        The resolved adapter.

    Raises:
        HFLoraError: not found locally or on the Hub (naming what was tried and the
            subfolders that exist), gated repo without a token, Hub unreachable, unknown
            revision, or no safetensors weights.
    """
    expanded = os.path.expanduser(spec)
    if os.path.exists(expanded):
        path = Path(expanded).resolve()
        check_adapter_dir(path, spec, allow_pickle=allow_pickle)
        return ResolvedAdapter(spec=spec, path=path)
    if _looks_local(spec):
        raise HFLoraError(
            f"hf-lora: adapter {spec!r}: no such local directory ({Path(expanded).resolve()})."
        )
    repo_id, sub = split_hub_spec(spec)
    root = _download(repo_id, sub, revision=revision, token=token, spec=spec,
                     not_local=_not_local_either(expanded))
    path = root / sub if sub else root
    if not path.is_dir() or not (path / ADAPTER_CONFIG).is_file():
        subs = _remote_subfolders(repo_id, revision, token) or _adapter_subfolders(root)
        where = f"subfolder {sub!r} of {repo_id}" if sub else f"the root of {repo_id}"
        listing = (
            f" Adapters exist in: {', '.join(subs)}."
            if subs
            else " No adapter_config.json was found in the repo (or in the cached part of it)."
        )
        raise HFLoraError(
            f"hf-lora: adapter {spec!r}: no {ADAPTER_CONFIG} in {where} "
            f"(revision {revision or 'main'}).{listing}"
        )
    check_adapter_dir(path, spec, allow_pickle=allow_pickle)
    return ResolvedAdapter(spec=spec, path=path, repo_id=repo_id, subfolder=sub,
                           revision=revision)


def _not_local_either(expanded: str) -> str:
    """The hint for a spec that was tried on the Hub: it is no local directory either."""
    return (
        f"It was taken as a Hub id because there is no local directory "
        f"{Path(expanded).resolve()} either; for a local adapter pass an existing path "
        "(e.g. -M adapter=./my_adapters/{persona}, relative to the working directory)."
    )


def _download(repo_id: str, sub: str, *, revision: str | None, token: str | None,
              spec: str, not_local: str) -> Path:
    """Snapshot ``repo_id`` (only ``sub``) into the HF cache; every failure says what to do.

    ``not_local`` (:func:`_not_local_either`) is appended where the repo was not found or
    not reached, since the spec may be a mistyped relative path; a gated repo or a missing
    revision proves the repo exists, so those messages go without it.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    patterns = [f"{sub}/*"] if sub else None
    try:
        return Path(
            snapshot_download(
                repo_id, revision=revision, allow_patterns=patterns, token=token
            )
        )
    except GatedRepoError as err:
        raise HFLoraError(
            f"hf-lora: adapter {spec!r}: {repo_id} is a gated repo. Accept its terms on "
            f"https://huggingface.co/{repo_id} and set HF_TOKEN (or run `hf auth login`)."
        ) from err
    except RevisionNotFoundError as err:
        raise HFLoraError(
            f"hf-lora: adapter {spec!r}: revision {revision!r} does not exist in {repo_id}."
        ) from err
    except RepositoryNotFoundError as err:
        auth = "" if os.environ.get("HF_TOKEN") or token else (
            " If it is private or gated, set HF_TOKEN."
        )
        raise HFLoraError(
            f"hf-lora: adapter {spec!r}: Hub repo {repo_id} was not found (tried it as "
            f"repo {repo_id!r}, subfolder {sub or '(root)'!r}).{auth} {not_local}"
        ) from err
    except LocalEntryNotFoundError as err:
        raise HFLoraError(
            f"hf-lora: adapter {spec!r}: could not reach the Hugging Face Hub for {repo_id} "
            f"and it is not in the local cache. {_OFFLINE_HINT} {not_local}"
        ) from err
    except (HfHubHTTPError, OSError) as err:
        raise HFLoraError(
            f"hf-lora: adapter {spec!r}: downloading {repo_id} failed "
            f"({type(err).__name__}: {_first_line(err)}). {_OFFLINE_HINT} {not_local}"
        ) from err


def _remote_subfolders(repo_id: str, revision: str | None, token: str | None) -> list[str]:
    """Subfolders of a Hub repo that hold an adapter (empty when the Hub is unreachable)."""
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        return []
    try:
        files = HfApi().list_repo_files(repo_id, revision=revision, token=token)
    except Exception:
        return []
    subs = sorted(
        f.rsplit("/", 1)[0] if "/" in f else "(repo root)"
        for f in files
        if f.endswith(ADAPTER_CONFIG)
    )
    return subs


def _first_line(err: BaseException) -> str:
    """The first line of an exception's text (Hub HTTP errors carry multi-line bodies)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
