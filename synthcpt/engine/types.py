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
    document) and `metadata` that travels to the result without being part of the cache key.

    `sample` tells apart repeated draws of the same prompt and settings: it is part of the cache
    key, so requests that differ only by `sample` are generated (and cached) separately."""

    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    sampling: Sampling = field(default_factory=Sampling)
    json_schema: dict[str, Any] | None = None
    prefix_key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    sample: int = 0

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a Request needs exactly one of `messages` and `prompt`")


@dataclass
class Result:
    """What came back for a request. `error` is set when the request failed (after retries) or
    when the output of a JSON-schema request does not parse; `parsed` holds the parsed JSON of
    each text for schema requests. `prefix_cached_tokens` counts prompt tokens served from the
    engine's prefix cache, where the backend measures it (vLLM); None where it cannot tell."""

    request: Request
    texts: list[str] = field(default_factory=list)
    finish_reasons: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0
    error: str | None = None
    cached: bool = False
    parsed: list[Any] | None = None
    prefix_cached_tokens: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""

    @property
    def truncated(self) -> bool:
        """Whether the first text was cut off by max_tokens."""
        return bool(self.finish_reasons) and self.finish_reasons[0] == "length"
