"""The study's files: the commit archive downloaded once into the cache, or dct_path."""

from __future__ import annotations

import io
import shutil
import socket
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from charbench.agentic_email import agentic_email
from charbench.agentic_email.dct import source
from charbench.agentic_email.dct.source import DctSourceError, files_digest, resolve_source

TOP = f"depth-character-training-{source.DCT_COMMIT}"


def _archive(root: Path, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(root, arcname=TOP)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Server:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{{repo}}/tar.gz/{{commit}}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch, study_root: Path) -> Iterator[_Server]:
    server = _Server(b"")
    monkeypatch.setattr(source, "ARCHIVE_URL", server.url)
    monkeypatch.setattr(source, "PINNED_DIGEST", files_digest(study_root))
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_downloaded_once_into_the_cache(serve: _Server, study_root: Path, tmp_path: Path) -> None:
    serve.body = _archive(
        study_root, {f"{TOP}/README.md": b"not needed", f"{TOP}/../escape.yaml": b"x"}
    )
    found = resolve_source(cache_dir=tmp_path)
    assert found.origin == "archive" and found.pinned
    assert found.root == tmp_path / "charbench" / "dct" / source.DCT_COMMIT
    assert serve.requests == [f"/{source.DCT_REPO}/tar.gz/{source.DCT_COMMIT}"]
    assert not (found.root / "README.md").exists()
    assert not (tmp_path / "charbench" / "dct" / "escape.yaml").exists()
    assert files_digest(found.root) == files_digest(study_root)
    again = resolve_source(cache_dir=tmp_path)
    assert again == found and len(serve.requests) == 1


def test_a_damaged_cache_is_fetched_again(
    serve: _Server, study_root: Path, tmp_path: Path
) -> None:
    serve.body = _archive(study_root)
    root = resolve_source(cache_dir=tmp_path).root
    (root / source.DRAFT_FILE).write_text("edited\n")
    assert resolve_source(cache_dir=tmp_path).pinned
    assert len(serve.requests) == 2
    assert (root / source.DRAFT_FILE).read_bytes() == (study_root / source.DRAFT_FILE).read_bytes()


def test_an_archive_with_other_files_is_refused_and_not_cached(
    serve: _Server, study_root: Path, tmp_path: Path
) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(study_root, edited)
    (edited / source.DRAFT_FILE).write_text("{}\n")
    serve.body = _archive(edited)
    with pytest.raises(DctSourceError, match="does not match the pinned files"):
        resolve_source(cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "charbench" / "dct" / source.DCT_COMMIT).exists()
    serve.body = b"<html>rate limited</html>"
    with pytest.raises(DctSourceError, match=r"not a readable tar.gz archive.*dct_path"):
        resolve_source(cache_dir=tmp_path / "cache")


def test_a_concurrent_download_that_finished_first_is_used(
    serve: _Server, study_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve.body = _archive(study_root)
    download = source._download

    def racing(url: str) -> bytes:
        blob = download(url)
        # another process completes the same download while this one unpacks
        monkeypatch.setattr(source, "_download", download)
        resolve_source(cache_dir=tmp_path)
        return blob

    monkeypatch.setattr(source, "_download", racing)
    found = resolve_source(cache_dir=tmp_path)
    assert found.pinned and len(serve.requests) == 2
    assert [p.name for p in found.root.parent.iterdir()] == [source.DCT_COMMIT]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_source_names_dct_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(source, "ARCHIVE_URL", f"http://127.0.0.1:{_closed_port()}/{{repo}}/{{commit}}")
    with pytest.raises(DctSourceError, match=r"cannot download .*Offline\?.*-T dct_path=DIR"):
        resolve_source(cache_dir=tmp_path)
    # the task says it before the classifier (which does not exist) is looked at
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="dct_path=DIR"):
        agentic_email(suite="dct", classifier=str(tmp_path / "missing-classifier"))


def test_dct_path(study_root: Path, tmp_path: Path) -> None:
    found = resolve_source(study_root)
    assert (found.origin, found.pinned, found.root) == ("dct_path", False, study_root.resolve())
    partial = tmp_path / "partial"
    shutil.copytree(study_root, partial)
    (partial / source.ROLLOUT_MODULE).unlink()
    with pytest.raises(DctSourceError, match=r"dct_path: .* not a checkout.*rollout.py not found"):
        resolve_source(partial)
    with pytest.raises(DctSourceError, match="dct_path must be the path"):
        resolve_source("  ")
