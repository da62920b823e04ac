"""Resumable checkpoints: model, optimizer, RNG and training state (step = data position).

A checkpoint is written into a hidden staging folder and renamed to `step-NNNNNNNN` once complete,
with `checkpoint.json` (state and file sizes) written last; a folder that fails to load is skipped
with a warning and the previous one is used. Model and optimizer are saved as full (unsharded)
state dicts, so a checkpoint resumes under any number of processes.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from synthcpt.atomic import write_json
from synthcpt.progress import console
from synthcpt.s6_train.runtime import Runtime

CHECKPOINT_NAME = re.compile(r"^step-(\d{8})$")
STATE_FILE = "checkpoint.json"


class CorruptCheckpoint(Exception):
    pass


def checkpoints(folder: Path) -> list[Path]:
    """Completed checkpoint folders, newest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and CHECKPOINT_NAME.match(p.name)]
    return sorted(found, key=lambda p: p.name, reverse=True)


FULL_ON_CPU = StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model) -> dict:
    """The unsharded model state dict on the CPU (gathered from every process under FSDP)."""
    return get_model_state_dict(model, options=FULL_ON_CPU)


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _has_frozen(model) -> bool:
    return any(not p.requires_grad for p in model.parameters())


def save_checkpoint(folder: Path, step: int, model, optimizer, state: dict[str, Any], runtime: Runtime,
                    keep: int) -> None:
    # Frozen weights (a LoRA base) are the base model's: reloaded from it, not saved again.
    model_state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True,
                                                                      ignore_frozen_params=True))
    optimizer_state = get_optimizer_state_dict(model, optimizer, options=FULL_ON_CPU)
    staging = folder / f".step-{step:08d}.partial"
    if runtime.is_main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    runtime.barrier()
    torch.save(_rng_state(runtime.device), staging / f"rng-{runtime.rank}.pt")
    if runtime.is_main:
        torch.save(model_state, staging / "model.pt")
        torch.save(optimizer_state, staging / "optimizer.pt")
    runtime.barrier()
    if runtime.is_main:
        files = {p.name: p.stat().st_size for p in staging.iterdir()}
        write_json(staging / STATE_FILE, {**state, "step": step, "files": files})
        final = folder / f"step-{step:08d}"
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        for old in checkpoints(folder)[keep:]:
            shutil.rmtree(old, ignore_errors=True)
    runtime.barrier()


def read_state(path: Path) -> dict[str, Any]:
    """The checkpoint's state, after checking that every file it lists is there at its full size."""
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError) as e:
        raise CorruptCheckpoint(f"{STATE_FILE} unreadable ({e})") from None
    for name, size in state["files"].items():
        actual = (path / name).stat().st_size if (path / name).exists() else None
        if actual != size:
            raise CorruptCheckpoint(f"{name} is {actual} bytes, expected {size}")
    return state


def _load(path: Path, name: str) -> Any:
    try:
        return torch.load(path / name, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise CorruptCheckpoint(f"{name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def resume(folder: Path, model, optimizer, key: str, runtime: Runtime) -> dict[str, Any] | None:
    """Load the newest loadable checkpoint of this training (same key) into model and optimizer;
    return its state, or None to start from scratch. Checkpoints of other settings are removed."""
    for path in checkpoints(folder):
        try:
            state = read_state(path)
        except CorruptCheckpoint as e:
            _warn(runtime, f"checkpoint {path.name} is corrupt ({e}); falling back to the previous one")
            continue
        if state.get("key") != key:
            runtime.barrier()
            if runtime.is_main:
                shutil.rmtree(path, ignore_errors=True)
            continue
        try:
            model_state, optimizer_state = _load(path, "model.pt"), _load(path, "optimizer.pt")
            # Frozen weights are not in the checkpoint (strict only when everything trains).
            options = StateDictOptions(full_state_dict=True, strict=not _has_frozen(model))
            set_model_state_dict(model, model_state, options=options)
            set_optimizer_state_dict(model, optimizer, optimizer_state, options=StateDictOptions(full_state_dict=True))
        except (CorruptCheckpoint, KeyError, RuntimeError) as e:
            _warn(runtime, f"checkpoint {path.name} cannot be loaded ({str(e).splitlines()[0]}); "
                           f"falling back to the previous one")
            continue
        rng_file = path / f"rng-{runtime.rank}.pt"
        if rng_file.is_file():
            rng = torch.load(rng_file, weights_only=True)
            torch.set_rng_state(rng["cpu"])
            if "cuda" in rng and runtime.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], runtime.device)
        return state
    return None


def _warn(runtime: Runtime, message: str) -> None:
    if runtime.is_main:
        console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)
