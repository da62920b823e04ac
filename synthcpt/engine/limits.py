"""Requests-per-minute and tokens-per-minute limits as token buckets that refill continuously
(a full bucket holds one minute's allowance), shared by every request of a backend."""

from __future__ import annotations

import asyncio
import time


class Bucket:
    def __init__(self, per_minute: int):
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self.updated = time.monotonic()

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is available (0 when it is), after refilling."""
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.capacity / 60)
        self.updated = now
        missing = min(amount, self.capacity) - self.level
        return max(0.0, missing * 60 / self.capacity)

    def take(self, amount: float) -> None:
        # A request larger than a minute's allowance empties the bucket instead of waiting forever.
        self.level -= min(amount, self.capacity)


class RateLimiter:
    """`await acquire(tokens)` returns when one more request of `tokens` tokens fits both limits."""

    def __init__(self, rpm: int, tpm: int):
        self.requests = Bucket(rpm) if rpm else None
        self.tokens = Bucket(tpm) if tpm else None
        self.lock = asyncio.Lock()

    async def acquire(self, tokens: int) -> None:
        if self.requests is None and self.tokens is None:
            return
        async with self.lock:  # first come, first served: a large request is not overtaken forever
            while delay := max(self.requests.wait_for(1) if self.requests else 0.0,
                               self.tokens.wait_for(tokens) if self.tokens else 0.0):
                await asyncio.sleep(delay)
            if self.requests:
                self.requests.take(1)
            if self.tokens:
                self.tokens.take(tokens)
