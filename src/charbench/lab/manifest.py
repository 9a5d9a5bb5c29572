"""``lab.json``: every artifact of a lab with its hash, the step and the command that made it.

The manifest is what makes a lab resumable and auditable:

1. it records the lab's settings; running the lab again on the same directory with other
   settings is refused before any work (:meth:`LabManifest.check_settings`), because the
   finished steps would silently mix two configurations;
2. a step is finished when its record is present and every artifact it lists still exists
   with the recorded SHA-256 (:meth:`LabManifest.is_done`); a missing or changed artifact
   makes the step run again, and every later step with it;
3. it is written atomically (a temporary file renamed into place) after each step, so an
   interrupted lab loses at most the step it was in.

A directory's hash is the SHA-256 of its files' relative paths and contents, in sorted
order, so the same files give the same hash wherever the directory lives.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

MANIFEST = "lab.json"
"""The manifest's file name inside the lab directory."""
SCHEMA = 1


def sha256_path(path: Path) -> str:
    """SHA-256 of a file, or of a directory's files (relative path and content, sorted)."""
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(sha256_path(file).encode() + b"\n")
    return digest.hexdigest()


class Artifact(BaseModel):
    """One file or directory a step made, relative to the lab directory."""

    path: str
    sha256: str


class StepRecord(BaseModel):
    """A finished step.

    Attributes:
        name: The step (``data``, ``adapters/<persona>``, ``classifier-data``, ...).
        command: The command that made it (the ``charbench lab`` command line; for steps
            that are also a command of their own, that command).
        artifacts: What it made, with hashes.
        details: Counts and measurements of the step (pairs per persona, losses, F1 ...).
        finished: UTC time it finished. seconds: Its wall time.
    """

    name: str
    command: str
    artifacts: list[Artifact]
    details: dict[str, Any] = Field(default_factory=dict)
    finished: str
    seconds: float


class LabManifest(BaseModel):
    """The contents of ``lab.json``."""

    schema_version: int = SCHEMA
    charbench_version: str = ""
    settings: dict[str, Any]
    steps: dict[str, StepRecord] = Field(default_factory=dict)

    @classmethod
    def open(cls, lab_dir: Path, settings: dict[str, Any]) -> LabManifest:
        """The lab's manifest, or a new one for ``settings`` when there is none.

        Raises:
            ValueError: the directory holds a lab of other settings (the message names them).
        """
        path = lab_dir / MANIFEST
        if not path.is_file():
            from importlib.metadata import version

            return cls(settings=settings, charbench_version=version("charbench"))
        manifest = cls.model_validate_json(path.read_text(encoding="utf-8"))
        manifest.check_settings(settings, lab_dir)
        return manifest

    def check_settings(self, settings: dict[str, Any], lab_dir: Path) -> None:
        """Refuse settings that differ from the recorded ones."""
        recorded = json.loads(json.dumps(self.settings, default=str))
        now = json.loads(json.dumps(settings, default=str))
        diff = sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))
        if diff:
            shown = "; ".join(f"{k}: {recorded.get(k)!r} then, {now.get(k)!r} now" for k in diff)
            raise ValueError(
                f"{lab_dir} holds a lab made with other settings ({shown}); run the same "
                "command to resume it, or give a new --out")

    def is_done(self, name: str, lab_dir: Path) -> bool:
        """True when ``name`` finished and all its artifacts are unchanged."""
        record = self.steps.get(name)
        if record is None:
            return False
        for art in record.artifacts:
            path = lab_dir / art.path
            if not path.exists() or sha256_path(path) != art.sha256:
                return False
        return True

    def record(self, lab_dir: Path, name: str, command: str, paths: list[Path],
               details: dict[str, Any], seconds: float) -> StepRecord:
        """Record a finished step and write the manifest."""
        arts = [Artifact(path=p.relative_to(lab_dir).as_posix(), sha256=sha256_path(p))
                for p in paths]
        rec = StepRecord(name=name, command=command, artifacts=arts, details=details,
                         finished=datetime.now(UTC).isoformat(timespec="seconds"),
                         seconds=round(seconds, 1))
        self.steps[name] = rec
        self.write(lab_dir)
        return rec

    def forget(self, names: list[str], lab_dir: Path) -> None:
        """Drop the records of ``names`` (steps to redo) and write the manifest."""
        for name in names:
            self.steps.pop(name, None)
        self.write(lab_dir)

    def write(self, lab_dir: Path) -> None:
        """Write ``lab.json`` atomically."""
        lab_dir.mkdir(parents=True, exist_ok=True)
        tmp = lab_dir / (MANIFEST + ".tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, lab_dir / MANIFEST)
