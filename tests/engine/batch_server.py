"""A small provider Batch API on loopback (OpenAI's Files and Batches endpoints) in front of a real
OpenAI-compatible server: each JSONL line of a batch is answered by forwarding it to that server, so
the answers are the real model's. It counts what it is asked, and can be told to hold batches (to kill
a client while one is in progress), to expire a batch half-way, to fail some lines with a 500, to
drop the connection after creating a batch (the client never hears of it), to leave new batches out of
its first listings (a list that lags), or to run its clock behind or ahead of the client's (every
created_at / ..._at it reports is offset). Everything else (`/models`) is forwarded unchanged."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from aiohttp import web

FORWARDED_AT_ONCE = 8


class BatchServer:
    def __init__(self, upstream: str, api_key: str | None = None, clock_offset: int = 0):
        self.upstream = upstream.rstrip("/").removesuffix("/v1")
        self.api_key = api_key
        self.clock_offset = clock_offset  # seconds the provider's clock is ahead of this machine's (< 0: behind)
        self.ids = itertools.count(1)
        self.files: dict[str, bytes] = {}
        self.file_records: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.created = 0  # batches created: what a provider bills
        self.forwarded: Counter[str] = Counter()  # custom_id -> times answered by the model
        self.released = asyncio.Event()
        self.released.set()
        # Faults, each used up as it happens:
        self.expire = 0  # batches that expire after answering half their lines
        self.fail_lines: set[str] = set()  # custom_ids answered 500 the first time
        self.drop_creates = 0  # creates whose response is never sent
        # Not used up: each batch created while it is set is left out of that many listings made after its creation.
        self.list_lag = 0
        self.unlisted: Counter[str] = Counter()  # batch id -> listings it is still left out of

    # --- handlers

    @web.middleware
    async def authorize(self, request: web.Request, handler):
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"message": "Incorrect API key provided", "code": 401}}, status=401)
        return await handler(request)

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("purpose") != "batch":
            return web.json_response({"error": {"message": "purpose must be batch"}}, status=400)
        data = form["file"].file.read()
        file = self._file(data, form["file"].filename)
        return web.json_response(file)

    def _file(self, data: bytes, filename: str) -> dict[str, Any]:
        file_id = f"file-{next(self.ids)}"
        self.files[file_id] = data
        self.file_records[file_id] = {"id": file_id, "object": "file", "bytes": len(data), "created_at": self.now(),
                                      "filename": filename, "purpose": "batch", "status": "processed"}
        return self.file_records[file_id]

    def now(self) -> int:
        """The provider's clock, as every created_at / ..._at reports it."""
        return int(time.time()) + self.clock_offset

    async def file(self, request: web.Request) -> web.Response:
        record = self.file_records.get(request.match_info["id"])
        if record is None:
            return web.json_response({"error": {"message": "no such file"}}, status=404)
        return web.json_response(record)

    async def content(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["id"])
        if data is None:
            return web.json_response({"error": {"message": "no such file"}}, status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    async def create(self, request: web.Request) -> web.Response:
        args = await request.json()
        if args.get("input_file_id") not in self.files:
            return web.json_response({"error": {"message": "no such input file"}}, status=400)
        batch_id = f"batch_{next(self.ids)}"
        lines = [json.loads(line) for line in self.files[args["input_file_id"]].splitlines() if line.strip()]
        batch = {"id": batch_id, "object": "batch", "endpoint": args["endpoint"], "errors": None,
                 "input_file_id": args["input_file_id"], "completion_window": args["completion_window"],
                 "status": "validating", "output_file_id": None, "error_file_id": None,
                 "created_at": self.now(), "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                 "metadata": args.get("metadata")}
        self.batches[batch_id] = batch
        self.created += 1
        if self.list_lag:
            self.unlisted[batch_id] = self.list_lag
        batch["task"] = asyncio.ensure_future(self._run(batch, lines, expire=self._use("expire")))
        if self._use("drop_creates"):
            request.transport.close()
            raise asyncio.CancelledError
        return web.json_response(public(batch))

    async def retrieve(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        return web.json_response(public(batch))

    async def listing(self, request: web.Request) -> web.Response:
        # newest first, as OpenAI lists them, less those the listing lags behind
        data = [public(b) for b in reversed(self.batches.values()) if not self.unlisted[b["id"]]]
        self.unlisted -= Counter(set(self.unlisted))  # one listing fewer to be left out of (Counter drops zeros)
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})

    async def cancel(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        if batch["status"] not in ("completed", "failed", "expired", "cancelled"):
            batch["status"] = "cancelling"
            batch["task"].cancel()
        return web.json_response(public(batch))

    async def forward(self, request: web.Request) -> web.Response:
        async with self.session.request(request.method, self.upstream + request.path_qs, data=await request.read(),
                                        headers={"Content-Type": "application/json"}) as upstream:
            return web.Response(status=upstream.status, body=await upstream.read(), content_type="application/json")

    # --- from the test's thread

    def hold(self) -> None:
        """Batches created from now on wait for `release` before answering anything."""
        self.loop.call_soon_threadsafe(self.released.clear)

    def release(self) -> None:
        self.loop.call_soon_threadsafe(self.released.set)

    # --- running a batch

    def _use(self, fault: str) -> bool:
        if getattr(self, fault) <= 0:
            return False
        setattr(self, fault, getattr(self, fault) - 1)
        return True

    async def _run(self, batch: dict[str, Any], lines: list[dict[str, Any]], expire: bool) -> None:
        await self.released.wait()
        batch["status"], batch["in_progress_at"] = "in_progress", self.now()
        todo = lines[:len(lines) // 2] if expire else lines
        slots = asyncio.Semaphore(FORWARDED_AT_ONCE)
        answers: list[dict[str, Any]] = []
        try:
            answers = list(await asyncio.gather(*(self._answer(line, slots, batch) for line in todo)))
            end = "expired" if expire else "completed"
        except asyncio.CancelledError:
            end = "cancelled"
        answered = {a["custom_id"] for a in answers}
        answers += [skipped(line, f"batch_{end}") for line in lines if line["custom_id"] not in answered]
        ok = [a for a in answers if a["response"] and a["response"]["status_code"] == 200]
        failed = [a for a in answers if a not in ok]
        batch["output_file_id"] = self._file(jsonl(ok), "output.jsonl")["id"] if ok else None
        batch["error_file_id"] = self._file(jsonl(failed), "errors.jsonl")["id"] if failed else None
        batch["request_counts"] = {"total": len(lines), "completed": len(ok), "failed": len(failed)}
        batch["status"], batch[f"{end}_at"] = end, self.now()

    async def _answer(self, line: dict[str, Any], slots: asyncio.Semaphore, batch: dict[str, Any]) -> dict[str, Any]:
        custom_id = line["custom_id"]
        if custom_id in self.fail_lines:
            self.fail_lines.discard(custom_id)
            return answer(custom_id, 500, {"error": {"message": "injected server error"}})
        async with slots, self.session.post(self.upstream + line["url"], json=line["body"]) as upstream:
            status, body = upstream.status, await upstream.json()
        self.forwarded[custom_id] += 1
        if status == 200:
            batch["request_counts"]["completed"] += 1
        return answer(custom_id, status, body)

    # --- lifetime

    async def start(self) -> str:
        self.loop = asyncio.get_running_loop()
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
        app = web.Application(client_max_size=256 << 20, middlewares=[self.authorize])
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files/{id}", self.file)
        app.router.add_get("/v1/files/{id}/content", self.content)
        app.router.add_post("/v1/batches", self.create)
        app.router.add_get("/v1/batches", self.listing)
        app.router.add_get("/v1/batches/{id}", self.retrieve)
        app.router.add_post("/v1/batches/{id}/cancel", self.cancel)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1"

    async def stop(self) -> None:
        for batch in self.batches.values():
            batch["task"].cancel()
        await self.runner.cleanup()
        await self.session.close()


def public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if k != "task"}


def answer(custom_id: str, status: int, body: Any) -> dict[str, Any]:
    return {"id": f"batch_req_{custom_id[:12]}", "custom_id": custom_id,
            "response": {"status_code": status, "request_id": custom_id[:12], "body": body}, "error": None}


def skipped(line: dict[str, Any], code: str) -> dict[str, Any]:
    return {"id": f"batch_req_{line['custom_id'][:12]}", "custom_id": line["custom_id"], "response": None,
            "error": {"code": code, "message": f"This request could not be executed before the batch ended ({code})."}}


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


@contextmanager
def batch_server(upstream: str, api_key: str | None = None,
                 clock_offset: int = 0) -> Iterator[tuple[str, BatchServer]]:
    """Run the server on its own event-loop thread; yield its base_url and the server (its counts,
    faults, hold and release)."""
    server = BatchServer(upstream, api_key, clock_offset)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def on_loop(function):
        return asyncio.run_coroutine_threadsafe(function(), loop).result(timeout=60)

    base_url = on_loop(server.start)
    try:
        yield base_url, server
    finally:
        on_loop(server.stop)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
