"""Estimates of a generation before it runs: requests still to do (the cache answers the rest),
exact prompt tokens, completion tokens from max_tokens or the running average of the responses
already generated for the same step, time from the throughput measured so far (a batch backend: its
completion window), and cost online and through a provider's batch API.

Stages that generate declare their requests through the `plan` hook of their `Stage`:
`(ctx: StageContext) -> dict[str, Iterable[Request]]`, keyed by the description they pass to
`engine.generate`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from synthcpt.engine.cache import ResponseCache, request_key
from synthcpt.engine.engine import CACHE_FILE, USAGE_FILE, cache_dir
from synthcpt.engine.settings import EngineSettings, Price
from synthcpt.engine.tokens import prompt_counter
from synthcpt.engine.types import Request
from synthcpt.engine.usage import price_of

# Responses of a step needed before their mean completion length replaces max_tokens.
MIN_RESPONSES_FOR_AVERAGE = 20


@dataclass
class Plan:
    description: str
    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    completion_basis: str = "max_tokens"
    exact_prompt_tokens: bool = True
    seconds: float | None = None
    cost: float = 0.0  # at online prices
    batch_cost: float = 0.0  # at batch-API prices
    batch: bool = False  # the selected backend pays batch prices
    completion_window: str | None = None  # the batch API's (answers may take that long)


def measured_completion_rate(run_dir: Path, description: str) -> float | None:
    """Completion tokens per second of earlier model calls of this step (else of the whole run folder)."""
    path = cache_dir(run_dir) / USAGE_FILE
    if not path.is_file():
        return None
    totals = json.loads(path.read_text())
    for name in (description, "total"):
        entry = totals.get(name, {})
        if entry.get("completion_tokens") and entry.get("seconds"):
            return entry["completion_tokens"] / entry["seconds"]
    return None


def _cache(run_dir: Path) -> ResponseCache | None:
    path = cache_dir(run_dir) / CACHE_FILE
    return ResponseCache(path) if path.is_file() else None


def mean_completion_tokens(run_dir: Path, description: str) -> float | None:
    """Mean completion tokens of the step's responses so far, once there are enough to trust."""
    cache = _cache(run_dir)
    if cache is None:
        return None
    try:
        mean, responses = cache.mean_completion_tokens(description)
    finally:
        cache.close()
    return mean if responses >= MIN_RESPONSES_FOR_AVERAGE else None


def estimate(settings: EngineSettings, run_dir: Path, description: str, requests: Iterable[Request]) -> Plan:
    count_prompt, exact = prompt_counter(settings)
    plan = Plan(description, exact_prompt_tokens=exact)
    cache = _cache(run_dir)
    mean, responses = cache.mean_completion_tokens(description) if cache else (0.0, 0)
    if responses >= MIN_RESPONSES_FOR_AVERAGE:
        plan.completion_basis = f"mean of {responses} responses"
    try:
        for request in requests:
            plan.requests += 1
            if cache and cache.get(request_key(settings.model, request)) is not None:
                plan.cached += 1
                continue
            plan.prompt_tokens += count_prompt(request)
            ceiling = request.sampling.max_tokens * request.sampling.n
            plan.completion_tokens += round(min(mean, ceiling)) if responses >= MIN_RESPONSES_FOR_AVERAGE else ceiling
    finally:
        if cache:
            cache.close()
    rate = measured_completion_rate(run_dir, description)
    plan.seconds = plan.completion_tokens / rate if rate else None
    plan.cost = cost(plan, price_of(settings, batch=False))
    plan.batch_cost = cost(plan, price_of(settings, batch=True))
    plan.batch = settings.backend_plugin.batch_prices
    plan.completion_window = settings.openai_batch.completion_window
    return plan


def cost(plan: Plan, price: Price) -> float:
    return (plan.prompt_tokens * price.input + plan.completion_tokens * price.output) / 1e6
