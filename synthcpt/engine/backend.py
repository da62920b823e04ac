"""What the engine asks of a backend: take jobs while it has room, hand back finished ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from synthcpt.engine.cache import Response
from synthcpt.engine.types import Request


@dataclass
class Job:
    key: str
    request: Request


@dataclass
class Done:
    """A finished job: its response, or the error that ended it (after retries)."""

    job: Job
    response: Response | None = None
    error: str | None = None
    prefix_cached_tokens: int = 0


class Backend(Protocol):
    def capacity(self) -> int:
        """How many more jobs it takes now (in flight plus a queue that keeps the model busy)."""

    def submit(self, job: Job) -> None: ...

    def poll(self) -> list[Done]:
        """Advance the work and return the jobs finished since the last call (at least one when any
        are in flight). Raises SynthcptError when no further request can succeed (e.g. a revoked key)."""

    def cancel(self) -> None:
        """Drop the jobs in flight (the caller stopped reading)."""

    def close(self) -> None: ...
