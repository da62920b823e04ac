"""What a stage is: its name, settings and entry points (`Stage`), and what it gets when it runs
(`StageContext`).

Every stage package `synthcpt/s<N>_<name>/` has one `stage.py` defining `STAGE`, a `Stage` whose entry
points are plain functions of a `StageContext`; `synthcpt.pipeline` lists them in order. A stage module
keeps heavy imports (torch, vLLM, spaCy) inside its functions: the CLI imports every stage to build the
config and its commands.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from synthcpt.errors import SynthcptError
from synthcpt.plugins import Plugin
from synthcpt.run_folder import RunFolder
from synthcpt.stats import StageStats

StageFunction = Callable[["StageContext"], Any]
# The pipeline's config: a pydantic model built from every section (synthcpt.config.config_model: run,
# engine, then one section per stage, each the stage's settings class).
Config = BaseModel


@dataclass(frozen=True)
class Stage:
    name: str  # its config section, CLI command and run subfolder
    help: str
    # Its config section: a class, or a function that builds it (a section holding plugins' sections,
    # rebuilt when a plugin is registered).
    settings: type[BaseModel] | Callable[[], type[BaseModel]]
    # Runs the stage and returns its stats (their summary goes into the manifest).
    run: Callable[[StageContext], StageStats]
    # Other config sections the stage's output depends on (e.g. "engine").
    uses: tuple[str, ...] = ()
    # Fingerprint of what the stage reads from outside the run folder (input files).
    external_inputs: Callable[[Config], str] | None = None
    # The prompt files the stage uses for a config (their hashes are part of its fingerprint).
    prompts: Callable[[Config], list[str]] | None = None
    # Bump when the stage's output format or logic changes, so old outputs are redone.
    version: int = 1
    # Prints a summary of the stage's outputs; the stage's command calls it after running or skipping.
    show: StageFunction | None = None
    # For `synthcpt plan`: the model requests the stage would send, keyed by the engine step
    # (the description it passes to `engine.generate`); None when the stage calls no model.
    plan: StageFunction | None = None
    # For `synthcpt plan`: what the stage needs besides model requests, as (what, amount) rows (train: its
    # memory, estimated before anything is loaded).
    resources: StageFunction | None = None

    def settings_class(self) -> type[BaseModel]:
        settings = self.settings
        return settings if isinstance(settings, type) else settings()


@dataclass
class StageContext:
    """What a running stage gets: the whole config, its own settings and its folders."""

    config: Config
    stage: Stage
    run: RunFolder

    @property
    def settings(self) -> Any:
        return getattr(self.config, self.stage.name)

    @property
    def out(self) -> Path:
        path = self.run.folder(self.stage.name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def input(self, stage_name: str) -> Path:
        """The output folder of an earlier stage, which must be complete."""
        if not self.run.is_done(stage_name):
            raise SynthcptError(f"stage '{self.stage.name}' needs the output of '{stage_name}', which has not run")
        return self.run.folder(stage_name)

    def require(self, plugins: Iterable[type[Plugin]]) -> None:
        """The earlier stages whose outputs these plugins read (their `needs`) must be complete."""
        for plugin in plugins:
            for stage_name in plugin.needs:
                self.input(stage_name)


def files_fingerprint(roots: list[Path | str], salt: str = "") -> str:
    """Paths, sizes and modification times of the files under `roots` (files or folders): an
    `external_inputs` fingerprint that changes when an input file does."""
    digest = hashlib.sha256(salt.encode())
    for root in map(Path, roots):
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            stat = path.stat() if path.exists() else None
            digest.update(f"{path}|{stat and stat.st_size}|{stat and stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
