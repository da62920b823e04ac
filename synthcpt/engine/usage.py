"""Accounting: requests, tokens, time and cost of the engine's work, live on screen and on disk."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from synthcpt.atomic import write_json
from synthcpt.engine.settings import Price
from synthcpt.engine.types import Result
from synthcpt.progress import console

if TYPE_CHECKING:
    from synthcpt.engine.settings import EngineSettings


def price_of(settings: EngineSettings, batch: bool | None = None) -> Price:
    """What a token of engine.model costs: online, or through a provider's batch API (`batch`; unset: the
    selected backend's way, batch for a backend whose plugin declares `batch_prices`)."""
    price = settings.prices.get(settings.model, Price())
    if batch is None:
        batch = settings.backend_plugin.batch_prices
    return price.batch() if batch else price


@dataclass
class Usage:
    """Totals of a span of work. Tokens and cost count model calls only; cached results are free.
    `prefix_cached_tokens` is None unless the backend measured it (vLLM, in process or on Ray replicas):
    a backend that cannot tell (an HTTP server, a provider batch) reports no figure rather than a zero."""

    requests: int = 0
    cached: int = 0
    failed: int = 0
    parse_failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prefix_cached_tokens: int | None = None
    seconds: float = 0.0
    cost: float = 0.0

    def add(self, result: Result, price: Price) -> None:
        self.requests += 1
        if result.cached:
            self.cached += 1
            return
        if not result.texts:
            self.failed += 1
            return
        if result.error:
            self.parse_failures += 1
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        if result.prefix_cached_tokens is not None:
            self.prefix_cached_tokens = (self.prefix_cached_tokens or 0) + result.prefix_cached_tokens
        self.cost += (result.prompt_tokens * price.input + result.completion_tokens * price.output) / 1e6

    def merge(self, other: Usage) -> None:
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, mine if theirs is None else theirs if mine is None else mine + theirs)

    @property
    def tokens_per_second(self) -> float:
        return (self.prompt_tokens + self.completion_tokens) / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, float | int | None]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["cost"] = round(self.cost, 6)
        data["tokens_per_second"] = round(self.tokens_per_second, 2)
        return data


def record_usage(path: Path, description: str, usage: Usage) -> None:
    """Add a span of work to the cumulative totals kept beside the cache (all runs of the folder)."""
    totals = json.loads(path.read_text()) if path.is_file() else {}
    for name in ("total", description or "unnamed"):
        kept = Usage(**{k: v for k, v in totals.get(name, {}).items() if k in Usage.__dataclass_fields__})
        kept.merge(usage)
        totals[name] = kept.as_dict()
    write_json(path, totals)


def _rate(usage: Usage) -> str:
    return f"{usage.tokens_per_second:,.0f} tok/s" if usage.seconds else ""


@contextmanager
def live_progress(description: str, total: int | None, usage: Usage) -> Iterator[LiveProgress]:
    columns = (SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TextColumn("{task.fields[tokens]}"), TextColumn("{task.fields[rate]}"),
               TextColumn("{task.fields[cost]}"), TimeElapsedColumn(), TimeRemainingColumn())
    # Few redraws: on a CPU build every cycle taken from vLLM's threads slows generation. Off where the
    # output is not a live terminal: rich would end each bar there with an empty line.
    with Progress(*columns, console=console, transient=True, refresh_per_second=2,
                  disable=not console.is_interactive) as bar:
        task = bar.add_task(description or "generating", total=total, tokens="", rate="", cost="")
        yield LiveProgress(bar, task, usage)


@dataclass
class LiveProgress:
    bar: Progress
    task: int
    usage: Usage
    shown: float = 0.0

    def advance(self) -> None:
        self.bar.advance(self.task)
        now = time.monotonic()
        if now - self.shown < 0.5:
            return
        self.shown = now
        u = self.usage
        self.bar.update(self.task, tokens=f"{u.prompt_tokens:,} in / {u.completion_tokens:,} out, {u.cached:,} cached",
                        rate=_rate(u), cost=f"${u.cost:,.4f}" if u.cost else "")
