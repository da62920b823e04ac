"""The records of the engine interface: what a generator asks for and what it gets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 512
    n: int = 1
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass
class Request:
    """One generation: chat `messages` (or a raw `prompt`), sampling settings, an optional JSON
    schema that constrains the output, the `prefix_key` it shares with other requests (e.g. the
    document) and `metadata` that travels to the result without being part of the cache key."""

    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    sampling: Sampling = field(default_factory=Sampling)
    json_schema: dict[str, Any] | None = None
    prefix_key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    request: Request
    texts: list[str] = field(default_factory=list)
    finish_reasons: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0
    error: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""
