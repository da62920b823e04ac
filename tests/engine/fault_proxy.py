"""A small HTTP proxy in front of a real OpenAI-compatible server that injects faults into a share
of the completion requests: 429 with Retry-After, 500, a hang past the client's timeout, a dropped
connection, a garbage 200 body. Everything else is forwarded to the real server unchanged."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from aiohttp import web

FAULTS = ("429", "500", "timeout", "drop", "garbage")
COMPLETION_PATHS = ("/v1/chat/completions", "/v1/completions")


class FaultProxy:
    def __init__(self, upstream: str, fault_rate: float, hang_seconds: float, seed: int = 0,
                 api_key: str | None = None):
        self.upstream = upstream.rstrip("/").removesuffix("/v1")
        self.fault_rate = fault_rate
        self.hang_seconds = hang_seconds
        self.api_key = api_key
        self.random = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.completed = 0  # completion requests the real server answered with 200 and we passed on

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"message": "Incorrect API key provided", "code": 401}}, status=401)
        body = await request.read()
        if request.path in COMPLETION_PATHS and self.random.random() < self.fault_rate:
            fault = self.random.choice(FAULTS)
            self.injected[fault] += 1
            if fault == "429":
                return web.json_response({"error": {"message": "rate limited"}}, status=429,
                                         headers={"Retry-After": "1"})
            if fault == "500":
                return web.json_response({"error": {"message": "internal error"}}, status=500)
            if fault == "timeout":
                await asyncio.sleep(self.hang_seconds)
            if fault in ("timeout", "drop"):
                request.transport.close()
                raise asyncio.CancelledError
            return web.Response(status=200, text='{"id": "x", "choices": [{"mess', content_type="application/json")
        async with self.session.request(request.method, self.upstream + request.path_qs, data=body,
                                        headers={"Content-Type": "application/json"}) as upstream:
            payload = await upstream.read()
        if request.path in COMPLETION_PATHS and upstream.status == 200:
            self.completed += 1
        return web.Response(status=upstream.status, body=payload, content_type="application/json")

    async def start(self) -> str:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.session.close()


@contextmanager
def fault_proxy(upstream: str, fault_rate: float = 0.2, hang_seconds: float = 5.0, seed: int = 0,
                api_key: str | None = None) -> Iterator[tuple[str, FaultProxy]]:
    """Run the proxy on its own event-loop thread; yield its base_url and the proxy (for its counts)."""
    proxy = FaultProxy(upstream, fault_rate, hang_seconds, seed, api_key)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    base_url = asyncio.run_coroutine_threadsafe(proxy.start(), loop).result()
    try:
        yield base_url, proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
