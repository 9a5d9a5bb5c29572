"""The study's repository as a data source, read at run time, never copied.

``suite=dct`` reads the study's own files (the 50 agentic scenarios, the draft control's
prompts, and a few constants of its harness: its parsing patterns, its error text, its
header stripping) from the repository ``nmitrani/depth-character-training`` at the pinned
commit :data:`DCT_COMMIT`. The repository carries no license, so charbench ships none of
its text: either

- the commit's archive is downloaded once (:data:`ARCHIVE_URL`) and the files charbench
  reads (:data:`NEEDED`) are unpacked into ``<cache>/charbench/dct/<commit>/``
  (:func:`charbench.assets.cache_root`); the unpacked files must hash to
  :data:`PINNED_DIGEST`, else nothing is kept; or
- the user points ``-T dct_path=DIR`` at a local checkout (or an export such as
  ``git archive``) of the repository; its digest is recorded, and whether it equals the
  pinned commit's.

Everything here runs when the task is built, before any model loads; every failure is a
:class:`DctSourceError` whose message names ``dct_path`` and what to do.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from charbench.assets import cache_root

__all__ = [
    "AGENTIC_DIR",
    "ARCHIVE_URL",
    "DCT_COMMIT",
    "DCT_REPO",
    "DRAFT_FILE",
    "DRAFT_SCRIPT",
    "NEEDED",
    "PINNED_DIGEST",
    "ROLLOUT_MODULE",
    "DctSource",
    "DctSourceError",
    "files_digest",
    "resolve_source",
]

DCT_REPO = "nmitrani/depth-character-training"
DCT_COMMIT = "27fc47b4d262f6180f71ff659a214d9797414670"
ARCHIVE_URL = "https://codeload.github.com/{repo}/tar.gz/{commit}"
"""The commit archive (a ``.tar.gz`` whose members sit under one top-level folder)."""

AGENTIC_DIR = "data/scaffolds/agentic_actions"
DRAFT_FILE = "data/scaffolds/chat_email.jsonl"
ROLLOUT_MODULE = "src/depth_character_eval/rollout.py"
DRAFT_SCRIPT = "scripts/classifier_f1_chat_email.py"
NEEDED: tuple[str, ...] = (DRAFT_FILE, ROLLOUT_MODULE, DRAFT_SCRIPT)
"""Single files read from the repository (besides every ``*.yaml`` in :data:`AGENTIC_DIR`)."""

PINNED_DIGEST = "d74392cf560b48a7b40b74bef2a56ef91a970a8f12bf4ce348ba024688ef87c8"
""":func:`files_digest` of the pinned commit's files (its 50 scenarios included)."""

_MARKER = "charbench-dct.json"
_TIMEOUT_S = 60.0


class DctSourceError(RuntimeError):
    """The study's files could not be found, downloaded or verified."""


@dataclass(frozen=True)
class DctSource:
    """Where the study's files were read from.

    Attributes:
        root: Directory laid out like the repository (``data/``, ``src/``, ``scripts/``).
        origin: ``"archive"`` (downloaded commit archive, in the cache) or ``"dct_path"``.
        digest: :func:`files_digest` of the files read.
        pinned: Whether ``digest`` equals :data:`PINNED_DIGEST` (the files are the pinned
            commit's, byte for byte).
    """

    root: Path
    origin: str
    digest: str
    pinned: bool


def _relevant(rel: str) -> bool:
    path = PurePosixPath(rel)
    if rel in NEEDED:
        return True
    return str(path.parent) == AGENTIC_DIR and path.suffix == ".yaml"


def _listing(root: Path) -> list[str]:
    found = [f"{AGENTIC_DIR}/{p.name}" for p in sorted((root / AGENTIC_DIR).glob("*.yaml"))]
    return [*NEEDED, *found]


def files_digest(root: Path) -> str:
    """SHA-256 over the relative path and SHA-256 of every file charbench reads.

    Args:
        root: A repository checkout or export.

    Raises:
        DctSourceError: a needed file is missing (the message names ``dct_path``).
    """
    missing = [rel for rel in NEEDED if not (root / rel).is_file()]
    if missing or not (root / AGENTIC_DIR).is_dir():
        what = ", ".join(missing) if missing else f"{AGENTIC_DIR}/"
        raise DctSourceError(
            f"dct_path: {root} is not a checkout of {DCT_REPO}: {what} not found. Point "
            f"-T dct_path at the repository's root (the folder holding data/, src/ and "
            f"scripts/), e.g. a clone checked out at {DCT_COMMIT}."
        )
    outer = hashlib.sha256()
    for rel in _listing(root):
        inner = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        outer.update(f"{rel}\0{inner}\n".encode())
    return outer.hexdigest()


def _from_dir(path: str | os.PathLike[str]) -> DctSource:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DctSourceError(
            f"dct_path: {str(path)!r} is not a directory. Give -T dct_path=DIR the root of a "
            f"local checkout of {DCT_REPO} (commit {DCT_COMMIT})."
        )
    digest = files_digest(root)
    return DctSource(root.resolve(), "dct_path", digest, digest == PINNED_DIGEST)


def _unpack(blob: bytes, dest: Path) -> None:
    """Unpack the needed regular files of a commit archive into ``dest`` (top folder dropped)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as archive:
            for member in archive.getmembers():
                parts = PurePosixPath(member.name).parts
                rel = "/".join(parts[1:])
                if len(parts) < 2 or not member.isfile() or ".." in parts or not _relevant(rel):
                    continue
                handle = archive.extractfile(member)
                if handle is None:  # pragma: no cover - isfile() members always have data
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(handle.read())
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DctSourceError(
            f"the download of {DCT_REPO}@{DCT_COMMIT} is not a readable tar.gz archive "
            f"({err}); retry, or clone the repository and pass -T dct_path=DIR"
        ) from err


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            data: bytes = response.read()
            return data
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise DctSourceError(
            f"cannot download the study's repository {DCT_REPO}@{DCT_COMMIT} from {url} "
            f"({type(err).__name__}: {err}). Offline? Clone it on a machine with access "
            f"(git clone https://github.com/{DCT_REPO} && git -C depth-character-training "
            f"checkout {DCT_COMMIT}), copy it here and pass -T dct_path=DIR."
        ) from err


def _cached(cache_dir: str | os.PathLike[str] | None) -> Path:
    return cache_root(cache_dir) / "dct" / DCT_COMMIT


def _fetch_archive(cache_dir: str | os.PathLike[str] | None) -> DctSource:
    final = _cached(cache_dir)
    if (final / _MARKER).is_file():
        digest = files_digest(final)
        if digest == PINNED_DIGEST:
            return DctSource(final, "archive", digest, True)
        shutil.rmtree(final)  # damaged or edited cache: fetch again
    blob = _download(ARCHIVE_URL.format(repo=DCT_REPO, commit=DCT_COMMIT))
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".dct-", dir=final.parent))
    try:
        _unpack(blob, tmp)
        try:
            digest = files_digest(tmp)
        except DctSourceError as err:
            raise DctSourceError(
                f"the downloaded archive of {DCT_REPO}@{DCT_COMMIT} lacks the study's files "
                f"({err}); pass -T dct_path=DIR with a checkout instead"
            ) from err
        if digest != PINNED_DIGEST:
            raise DctSourceError(
                f"the downloaded archive of {DCT_REPO}@{DCT_COMMIT} does not match the pinned "
                f"files (digest {digest}, expected {PINNED_DIGEST}); nothing was cached. "
                "Pass -T dct_path=DIR with a checkout of that commit instead."
            )
        (tmp / _MARKER).write_text(f'{{"commit": "{DCT_COMMIT}", "digest": "{digest}"}}\n')
        if final.exists() and not (final / _MARKER).is_file():
            shutil.rmtree(final)  # not ours (no marker): replace it
        try:
            tmp.rename(final)
        except OSError as err:
            # another process finished the same download first: use its copy if complete
            if not (final / _MARKER).is_file() or files_digest(final) != PINNED_DIGEST:
                raise DctSourceError(
                    f"cannot put the study's files into the cache at {final} ({err}); remove "
                    "that folder and retry, or pass -T dct_path=DIR"
                ) from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return DctSource(final, "archive", digest, True)


def resolve_source(
    dct_path: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> DctSource:
    """Find the study's files: ``dct_path`` if given, else the cached commit archive.

    Args:
        dct_path: A local checkout or export of the repository (any commit; whether it is
            the pinned one is recorded in :attr:`DctSource.pinned`).
        cache_dir: User cache directory (default as :func:`charbench.assets.cache_root`).

    Returns:
        The :class:`DctSource`.

    Raises:
        DctSourceError: ``dct_path`` is not such a checkout, or the archive could not be
            downloaded, unpacked or verified; the message says what to do.
    """
    if dct_path is not None:
        if not isinstance(dct_path, str | os.PathLike) or not str(dct_path).strip():
            raise DctSourceError(
                f"dct_path must be the path of a checkout of {DCT_REPO}, got {dct_path!r}"
            )
        return _from_dir(dct_path)
    return _fetch_archive(cache_dir)
