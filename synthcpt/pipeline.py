"""The spine: stages discovered in pipeline order, fingerprinted, run, skipped or resumed.

A stage is a package `synthcpt/s<N>_<name>/` whose `__init__` defines `STAGE`. Its number gives
its place in the pipeline, its name the config section and the run subfolder. A stage reads the
outputs of earlier stages from the run folder and writes its own into `run_dir/<name>/`.

A stage is complete for a config when its manifest entry holds the fingerprint of its settings,
the sections it `uses`, its external inputs and the fingerprint of the stage before it: so a
change to one stage invalidates it and every stage after it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from synthcpt.errors import SynthcptError
from synthcpt.prompts import prompts_fingerprint
from synthcpt.run_folder import FOLDERS, RunFolder, RunSettings, is_main_process

__all__ = ["RunFolder", "RunSettings", "Runner", "Stage", "StageContext", "is_main_process", "stages"]

STAGE_PACKAGE = re.compile(r"^s(\d+)_([a-z]+)$")


# A stage's code: a callable, or "module:function", imported only when called so that the CLI,
# which loads every stage package, starts without importing torch, vLLM or spaCy.
Hook = Callable[["StageContext"], Any] | str


def call(hook: Hook, ctx: StageContext) -> Any:
    if isinstance(hook, str):
        module, _, name = hook.partition(":")
        hook = getattr(importlib.import_module(module), name)
    return hook(ctx)


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    # Its config section: a class, or a function that builds it (a section holding plugins' sections,
    # rebuilt when a plugin is registered).
    settings: type[BaseModel] | Callable[[], type[BaseModel]]
    # Runs the stage and returns its stats for the manifest.
    run: Hook
    # Other config sections the stage's output depends on (e.g. "engine").
    uses: tuple[str, ...] = ()
    # Fingerprint of what the stage reads from outside the run folder (input files).
    external_inputs: Callable[[Any], str] | None = None
    # The prompt files the stage uses for a config (their hashes are part of its fingerprint).
    prompts: Callable[[Any], list[str]] | None = None
    # Bump when the stage's output format or logic changes, so old outputs are redone.
    version: int = 1
    # Prints a summary of the stage's outputs; the stage's command calls it after running or skipping.
    show: Hook | None = None
    # For `synthcpt plan`: the model requests the stage would send, keyed by the engine step
    # (the description it passes to `engine.generate`); None when the stage calls no model.
    plan: Hook | None = None
    # For `synthcpt plan`: what the stage needs besides model requests, as (what, amount) rows (train: its
    # memory, estimated before anything is loaded).
    resources: Hook | None = None

    @property
    def output_folder(self) -> str:
        return FOLDERS[self.name]

    def settings_class(self) -> type[BaseModel]:
        settings = self.settings
        return settings if isinstance(settings, type) else settings()


@lru_cache(maxsize=1)
def stages() -> tuple[Stage, ...]:
    import synthcpt

    found = []
    for module in pkgutil.iter_modules(synthcpt.__path__):
        match = STAGE_PACKAGE.match(module.name)
        if module.ispkg and match:
            stage = importlib.import_module(f"synthcpt.{module.name}").STAGE
            if stage.name != match.group(2):
                raise RuntimeError(f"stage package {module.name} defines stage {stage.name!r}")
            found.append((int(match.group(1)), stage))
    return tuple(stage for _, stage in sorted(found, key=lambda item: item[0]))


def stage_names() -> list[str]:
    return [s.name for s in stages()]


def stage_by_name(name: str) -> Stage:
    for stage in stages():
        if stage.name == name:
            return stage
    raise SynthcptError(f"unknown stage '{name}' (stages: {', '.join(stage_names())})")


@dataclass
class StageContext:
    """What a running stage gets: the whole config, its own settings and its folders."""

    config: Any
    stage: Stage
    run: RunFolder

    @property
    def settings(self) -> Any:
        return getattr(self.config, self.stage.name)

    @property
    def out(self) -> Path:
        path = self.run.dir / self.stage.output_folder
        path.mkdir(parents=True, exist_ok=True)
        return path

    def input(self, stage_name: str) -> Path:
        """The output folder of an earlier stage, which must be complete."""
        entry = self.run.manifest["stages"].get(stage_name, {})
        if entry.get("status") != "complete":
            raise SynthcptError(f"stage '{self.stage.name}' needs the output of '{stage_name}', which has not run")
        return self.run.dir / stage_by_name(stage_name).output_folder


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


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _section_identity(config: Any, name: str) -> dict[str, Any]:
    """What a section contributes to a fingerprint: its `identity()` where it defines one (the selected
    plugins' settings only), else all of it. Where the run folder and the prompt override folder lie is
    not what a stage computes (prompts count by their content): moving a run must not redo it."""
    section = getattr(config, name)
    if hasattr(section, "identity"):
        return section.identity()
    return section.model_dump(mode="json", exclude={"dir", "prompts_dir"} if name == "run" else None)


def stage_prompts_fingerprint(stage: Stage, config: Any) -> str | None:
    if stage.prompts is None:
        return None
    return prompts_fingerprint(stage.prompts(config), config.run.prompts_dir)


def fingerprints(config: Any) -> dict[str, str]:
    """Each stage's fingerprint for this config, chained through the stages before it."""
    previous = ""
    result = {}
    for stage in stages():
        payload = {
            "stage": stage.name,
            "version": stage.version,
            "settings": _section_identity(config, stage.name),
            "uses": {name: _section_identity(config, name) for name in stage.uses},
            "inputs": stage.external_inputs(config) if stage.external_inputs else None,
            "prompts": stage_prompts_fingerprint(stage, config),
            "previous": previous,
        }
        previous = result[stage.name] = _digest(payload)
    return result


def select(names: list[str], start: str | None, only: str | None) -> list[str]:
    for given in (start, only):
        if given is not None and given not in names:
            raise SynthcptError(f"unknown stage '{given}' (stages: {', '.join(names)})")
    if only:
        return [only]
    if start:
        return names[names.index(start):]
    return names


@dataclass
class Runner:
    """Runs the selected stages in order; forced ones always, the others only when not complete."""

    config: Any
    reporter: Callable[[str], None] = print
    run: RunFolder = field(init=False)

    def __post_init__(self) -> None:
        self.run = RunFolder(Path(self.config.run.dir))
        if is_main_process():
            self.run.write_config(self.config)

    def execute(self, selected: list[str], force: set[str]) -> None:
        prints = fingerprints(self.config)
        names = stage_names()
        last = max(names.index(n) for n in selected)
        for stage in stages()[: last + 1]:
            fingerprint = prints[stage.name]
            done = self.run.is_complete(stage.name, fingerprint)
            if stage.name not in selected:
                if not done:
                    raise SynthcptError(
                        f"stage '{stage.name}' is not complete for this config: run it first "
                        f"(synthcpt run --from {stage.name})")
                continue
            if done and stage.name not in force:
                self.reporter(f"[dim]{stage.name}: up to date, skipped[/dim]")
                continue
            self._run_stage(stage, fingerprint)

    def _run_stage(self, stage: Stage, fingerprint: str) -> None:
        entry = self.run.stage_entry(stage.name)
        entry.update(status="running", fingerprint=fingerprint, started=time.time(), error=None)
        self.run.save()
        self.reporter(f"[bold]{stage.name}[/bold]: {stage.help}")
        start = time.perf_counter()
        try:
            stats = call(stage.run, StageContext(self.config, stage, self.run))
        except KeyboardInterrupt:
            entry.update(status="interrupted", seconds=round(time.perf_counter() - start, 2))
            self.run.save()
            raise
        except BaseException as e:
            entry.update(status="failed", error=str(e).splitlines()[0] if str(e) else type(e).__name__,
                         seconds=round(time.perf_counter() - start, 2))
            self.run.save()
            raise
        entry.update(status="complete", finished=time.time(),
                     seconds=round(time.perf_counter() - start, 2), stats=stats)
        self.run.save()
        self.reporter(f"[green]{stage.name}: done[/green] in {entry['seconds']:.1f} s  {_brief(stats)}")


def _brief(stats: dict[str, Any]) -> str:
    return "  ".join(f"{k}={v}" for k, v in stats.items() if isinstance(v, (int, float, str)))[:200]
