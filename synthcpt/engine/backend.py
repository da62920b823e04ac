"""What the engine asks of a backend: take jobs while it has room, hand back finished ones.

A backend is a plugin (`synthcpt.plugins`): a module of `synthcpt/engine/backends/` whose `PLUGIN` is a
`Backend` subclass, whose `Settings` section is nested in the engine section under its name
(`engine.openai.concurrency`). The engine in front of it owns the cache: a backend only ever sees
requests no response is stored for, and never writes the cache itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from synthcpt.engine.cache import Response
from synthcpt.engine.types import Request
from synthcpt.plugins import Plugin, S

if TYPE_CHECKING:
    from synthcpt.engine.settings import EngineSettings


@dataclass
class Job:
    key: str
    request: Request


@dataclass
class Done:
    """A finished job: its response, or the error that ended it (after retries). `prefix_cached_tokens`:
    its prompt tokens served from the prefix cache, where the backend can tell (vLLM); None elsewhere."""

    job: Job
    response: Response | None = None
    error: str | None = None
    prefix_cached_tokens: int | None = None


class Backend(Plugin[S]):
    """Base of every engine backend. `self.settings` is its own section, `self.section` the engine's."""

    kind: ClassVar[str] = "engine backend"
    # True: opened with the engine (a hosted API checks its URL, key and model before any work);
    # False: at the first request the cache cannot answer (loading a local model takes a while).
    open_eagerly: ClassVar[bool] = False
    # True: engine.model names weights to load here (resolved to a folder); False: a name a server knows.
    local_model: ClassVar[bool] = False
    # Every wave costs a completion window (a provider batch), so the generate stage sizes its waves to
    # need no top-up.
    single_wave: ClassVar[bool] = False
    # Usage and plans count its tokens at the model's batch price.
    batch_prices: ClassVar[bool] = False

    def __init__(self, settings: EngineSettings, model_path: str | None = None, run_dir: Path | None = None):
        """`settings` is the whole engine section (the backend's own is `self.settings`); `model_path` the
        resolved local model when `local_model`; `run_dir` the run folder, for a backend that keeps state
        of its own there (e.g. submitted batch ids) — never the response cache."""
        super().__init__(settings)
        self.model_path = model_path
        self.run_dir = run_dir

    @classmethod
    def status_table(cls, run_dir: Path) -> Any:
        """A rich table of what it keeps in the run folder, for `synthcpt status` (None: nothing)."""
        return None

    def capacity(self) -> int:
        """How many more jobs it takes now (in flight plus a queue that keeps the model busy)."""
        raise NotImplementedError

    def submit(self, job: Job) -> None:
        raise NotImplementedError

    def poll(self) -> list[Done]:
        """Advance the work and return the jobs finished since the last call (at least one when any
        are in flight). Raises SynthcptError when no further request can succeed (e.g. a revoked key)."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Drop the jobs in flight (the caller stopped reading)."""

    def close(self) -> None:
        """Release what it holds (connections, threads)."""
