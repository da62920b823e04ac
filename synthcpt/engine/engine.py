"""The engine: cache in front, a backend behind, accounting around every request."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from synthcpt.engine.backend import Backend, Done, Job
from synthcpt.engine.cache import Response, ResponseCache, request_key
from synthcpt.engine.ordering import prefix_grouped
from synthcpt.engine.settings import EngineSettings
from synthcpt.engine.types import Request, Result
from synthcpt.engine.usage import Usage, live_progress, price_of, record_usage
from synthcpt.models import resolve
from synthcpt.run_folder import RunFolder

# The run folder's cache/ is the engine's: these are its files.
CACHE_FILE = "engine.sqlite"
USAGE_FILE = "usage.json"


def cache_dir(run_dir: Path) -> Path:
    return RunFolder(Path(run_dir)).cache


def result_of(request: Request, response: Response, cached: bool, prefix_cached_tokens: int | None = None) -> Result:
    """A result from a response; for schema requests the texts are parsed, and one that does not
    parse makes the result a parse failure (its texts kept)."""
    result = Result(request, list(response.texts), list(response.finish_reasons), response.prompt_tokens,
                    response.completion_tokens, response.latency, cached=cached,
                    prefix_cached_tokens=prefix_cached_tokens)
    if request.json_schema is not None:
        try:
            result.parsed = [json.loads(text) for text in result.texts]
        except json.JSONDecodeError as e:
            result.error = f"malformed structured output: {e}"
    return result


class Engine:
    """Use through `open_engine`. `usage` holds the totals of everything generated so far."""

    def __init__(self, settings: EngineSettings, run_dir: Path):
        self.settings = settings
        self.run_dir = run_dir
        self.cache = ResponseCache(cache_dir(run_dir) / CACHE_FILE)
        self.usage_path = cache_dir(run_dir) / USAGE_FILE
        self.usage = Usage()
        self.backend: Backend | None = None
        self.loading_seconds = 0.0  # loading the model is not generation time (tok/s, plans)
        self.price = price_of(settings)  # a batch backend's work at batch prices
        self.plugin = settings.backend_plugin
        self.model_path: str | None = None
        try:
            if self.plugin.local_model:
                self.model_path = resolve(settings.model)
            if self.plugin.open_eagerly:
                self.backend = self._open_backend()
        except BaseException:
            self.cache.close()
            raise

    def _open_backend(self) -> Backend:
        return self.plugin(self.settings, self.model_path, self.run_dir)

    def _backend(self) -> Backend:
        if self.backend is None:
            start = time.perf_counter()
            self.backend = self._open_backend()
            self.loading_seconds += time.perf_counter() - start
        return self.backend

    def generate(self, requests: Iterable[Request], description: str = "", total: int | None = None
                 ) -> Iterator[Result]:
        """Yield a result for every request, in any order, as each completes. Requests are read
        lazily (grouped by prefix_key within engine.prefix_window); each response is committed to
        the cache before it is yielded."""
        if total is None and hasattr(requests, "__len__"):
            total = len(requests)  # type: ignore[arg-type]
        span = Usage()
        start = time.perf_counter() - self.loading_seconds
        waiting: dict[str, list[Request]] = {}
        try:
            with live_progress(description, total, span) as live:
                source = prefix_grouped(requests, self.settings.prefix_window)
                exhausted = False
                while True:
                    while not exhausted and (self.backend is None or self.backend.capacity() > 0):
                        request = next(source, None)
                        if request is None:
                            exhausted = True
                            break
                        key = request_key(self.settings.model, request)
                        if key in waiting:  # the same work already in flight: share its response
                            waiting[key].append(request)
                            continue
                        stored = self.cache.get(key)
                        if stored is not None:
                            result = result_of(request, stored, cached=True)
                            span.add(result, self.price)
                            live.advance()
                            yield result
                            continue
                        waiting[key] = [request]
                        self._backend().submit(Job(key, request))
                    if not waiting:
                        if exhausted:
                            break
                        continue
                    finished = self.backend.poll()
                    self.cache.put_many(description, [(d.job.key, d.response) for d in finished if d.response],
                                        [(d.job.key, d.error) for d in finished if d.response is None])
                    for done in finished:
                        for index, request in enumerate(waiting.pop(done.job.key)):
                            result = self._result(done, request, shared=index > 0)
                            span.add(result, self.price)
                            live.advance()
                            yield result
        finally:
            if waiting and self.backend is not None:
                self.backend.cancel()
            span.seconds = time.perf_counter() - start - self.loading_seconds
            self.usage.merge(span)
            record_usage(self.usage_path, description, span)

    @staticmethod
    def _result(done: Done, request: Request, shared: bool) -> Result:
        if done.response is None:
            return Result(request, error=done.error)
        return result_of(request, done.response, cached=shared,
                         prefix_cached_tokens=None if shared else done.prefix_cached_tokens)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
        self.cache.close()


@contextmanager
def open_engine(settings: EngineSettings, run_dir: Path) -> Iterator[Engine]:
    """The engine for a run folder; its cache lives at run_dir/cache/engine.sqlite."""
    engine = Engine(settings, Path(run_dir))
    try:
        yield engine
    finally:
        engine.close()
