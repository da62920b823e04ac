"""The OpenAI-compatible backend: `AsyncOpenAI` against any server (OpenAI, `vllm serve`, SGLang,
Ollama...) on an event loop of its own thread, bounded concurrency, requests- and tokens-per-minute
limits, retries with exponential backoff and jitter on 429 / 5xx / timeouts / connection errors and
malformed bodies (Retry-After honoured), and a run-stopping error on 401 / 403 / 404."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import openai
from pydantic import Field
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from synthcpt.engine.backend import Backend, Done, Job
from synthcpt.engine.cache import Response
from synthcpt.engine.limits import RateLimiter
from synthcpt.engine.tokens import prompt_counter
from synthcpt.engine.types import Request
from synthcpt.errors import SynthcptError
from synthcpt.section import Section

if TYPE_CHECKING:
    from synthcpt.engine.settings import EngineSettings

# Jobs queued beyond the requests in flight, as a multiple of the concurrency.
QUEUE_FACTOR = 2
BACKOFF = wait_exponential_jitter(initial=1, max=60, jitter=1)
MAX_RETRY_AFTER = 120.0
CHECK_ATTEMPTS = 3
FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)


class OpenAISettings(Section):
    """openai backend: any OpenAI-compatible server (OpenAI, vLLM, SGLang, Ollama...)."""

    base_url: str | None = Field(
        None, description="Endpoint, e.g. http://127.0.0.1:8000/v1 (unset: api.openai.com).")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (never stored in the run folder).")
    concurrency: int = Field(64, ge=1, description="Requests in flight at once.")
    rpm: int = Field(0, ge=0, description="Requests-per-minute limit (0: none).")
    tpm: int = Field(0, ge=0, description="Tokens-per-minute limit, prompt + max_tokens (0: none).")
    timeout: float = Field(600.0, gt=0, description="Seconds before one request times out.")
    max_retries: int = Field(
        8, ge=0, description="Retries of a request on 429, 5xx, timeouts and connection errors "
                             "(exponential backoff with jitter, Retry-After honoured).")


class MalformedResponse(Exception):
    """The server answered 200 with a body that is not a completion."""


class Fatal(Exception):
    """No request of this run can succeed (wrong key, unknown model)."""


def is_transient(error: BaseException) -> bool:
    if isinstance(error, (openai.APITimeoutError, openai.APIConnectionError, openai.APIResponseValidationError,
                          MalformedResponse, json.JSONDecodeError)):
        return True
    return isinstance(error, openai.APIStatusError) and (error.status_code in (408, 409, 429)
                                                         or error.status_code >= 500)


def retry_after(error: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (Retry-After / retry-after-ms headers), if it did."""
    if not isinstance(error, openai.APIStatusError):
        return None
    headers = error.response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


def wait_time(state) -> float:
    asked = retry_after(state.outcome.exception() if state.outcome else None)
    return min(asked, MAX_RETRY_AFTER) if asked is not None else BACKOFF(state)


def describe(error: BaseException) -> str:
    if isinstance(error, openai.APIStatusError):
        body = error.body.get("message", error.body) if isinstance(error.body, dict) else error.message
        return f"HTTP {error.status_code}: {str(body).splitlines()[0] if str(body) else type(error).__name__}"
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")


def api_key(settings: Any, backend: str) -> str:
    """The API key of an OpenAI backend's section (`base_url`, `api_key_env`), named `backend` in the config."""
    key = os.environ.get(settings.api_key_env)
    if key:
        return key
    if settings.base_url:
        return "EMPTY"  # local servers take any key
    raise SynthcptError(f"the {backend} backend needs an API key in ${settings.api_key_env} "
                        f"(or engine.{backend}.base_url for a local server)")


CHAT_URL = "/v1/chat/completions"
COMPLETIONS_URL = "/v1/completions"
# Body fields the OpenAI client's methods have no parameter for: sent through its extra_body.
EXTRA_FIELDS = ("structured_outputs",)


def request_body(model: str, request: Request) -> tuple[str, dict[str, Any]]:
    """The endpoint and JSON body of a request, shared by the online and the batch backend so that
    both ask the server exactly the same thing (and a run can switch between them)."""
    s = request.sampling
    body: dict[str, Any] = {"model": model, "temperature": s.temperature, "top_p": s.top_p,
                            "max_tokens": s.max_tokens, "n": s.n}
    if s.seed is not None:
        body["seed"] = s.seed
    if s.stop:
        body["stop"] = list(s.stop)
    if request.messages is not None:
        body["messages"] = request.messages
        if request.json_schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": request.json_schema}}
        return CHAT_URL, body
    body["prompt"] = request.prompt
    if request.json_schema is not None:  # completions have no response_format; vLLM's own field
        body["structured_outputs"] = {"json": request.json_schema}
    return COMPLETIONS_URL, body


def response_of(completion: Any, chat: bool, latency: float) -> Response:
    choices = getattr(completion, "choices", None)
    usage = getattr(completion, "usage", None)
    if not choices or usage is None or getattr(usage, "prompt_tokens", None) is None:
        raise MalformedResponse("no choices or usage in the response")
    try:
        choices = sorted(choices, key=lambda c: c.index)
        texts = [(c.message.content if chat else c.text) or "" for c in choices]
    except (AttributeError, TypeError) as e:
        raise MalformedResponse(f"unexpected choices in the response: {e}") from None
    return Response(texts, [str(c.finish_reason) for c in choices], usage.prompt_tokens,
                    usage.completion_tokens or 0, latency)


class OpenAIBackend(Backend[OpenAISettings]):
    name: ClassVar[str] = "openai"
    summary: ClassVar[str] = "any OpenAI-compatible server over HTTP (engine.openai)"
    # Connects and checks the model when the engine opens: a wrong URL, key or model is one line before any work.
    open_eagerly: ClassVar[bool] = True

    def __init__(self, engine_settings: EngineSettings, model_path: str | None = None, run_dir: Path | None = None):
        super().__init__(engine_settings, model_path, run_dir)
        settings = self.settings
        self.model = engine_settings.model
        self.where = settings.base_url or "api.openai.com"
        self.count_prompt, _ = prompt_counter(engine_settings) if settings.tpm else (None, False)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="synthcpt-openai", daemon=True)
        self.thread.start()
        self.client = openai.AsyncOpenAI(base_url=settings.base_url, api_key=api_key(settings, self.name), max_retries=0,
                                         timeout=settings.timeout)
        self.slots = asyncio.Semaphore(settings.concurrency)
        self.limiter = RateLimiter(settings.rpm, settings.tpm)
        self.finished: queue.SimpleQueue[Done | Fatal] = queue.SimpleQueue()
        self.tasks: set[Any] = set()
        self.live: set[int] = set()  # jobs submitted and not yet handed back by poll
        try:
            self._call(self._check_model())
        except BaseException:
            self.close()
            raise

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def _check_model(self) -> None:
        """Fail before any work when the server is unreachable, the key wrong or the model unknown."""
        try:
            async for attempt in AsyncRetrying(stop=stop_after_attempt(CHECK_ATTEMPTS), wait=wait_time,
                                               retry=retry_if_exception(is_transient), reraise=True):
                with attempt:
                    served = [m.id async for m in self.client.models.list()]
        except openai.NotFoundError:
            return  # a server without /models: the first request will tell
        except openai.AuthenticationError:
            raise SynthcptError(f"{self.where} rejected the API key in ${self.settings.api_key_env}") from None
        except openai.APIConnectionError:
            raise SynthcptError(f"cannot reach the OpenAI-compatible server at {self.where}") from None
        except openai.APIError as e:
            raise SynthcptError(f"{self.where}: {describe(e)}") from None
        if served and self.model not in served:
            raise SynthcptError(f"model {self.model!r} is not served at {self.where} "
                                f"(it serves: {', '.join(sorted(served)[:10])})")

    def capacity(self) -> int:
        return QUEUE_FACTOR * self.settings.concurrency - len(self.live)

    def submit(self, job: Job) -> None:
        self.live.add(id(job))
        future = asyncio.run_coroutine_threadsafe(self._run(job), self.loop)
        self.tasks.add(future)
        future.add_done_callback(self.tasks.discard)

    def poll(self) -> list[Done]:
        done: list[Done] = []
        while self.live and not done:
            items = [self.finished.get()]
            while not self.finished.empty():
                items.append(self.finished.get_nowait())
            fatal = next((item for item in items if isinstance(item, Fatal)), None)
            if fatal is not None:
                raise SynthcptError(str(fatal))
            # Jobs cancelled earlier may still report; only live ones count.
            done = [item for item in items if id(item.job) in self.live]
            self.live.difference_update(id(item.job) for item in done)
        return done

    async def _run(self, job: Job) -> None:
        try:
            async with self.slots:
                started = time.perf_counter()
                response = await self._with_retries(job, started)
            self.finished.put(Done(job, response))
        except FATAL as e:
            self.finished.put(Fatal(f"{self.where} refused the request ({describe(e)}): check engine.model, "
                                    f"engine.{self.name}.base_url and ${self.settings.api_key_env}"))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001  every job must end in a Done, or the engine would wait for it
            # This request failed for good (400: too long, bad schema...; or its retries are spent).
            self.finished.put(Done(job, error=describe(e)))

    async def _with_retries(self, job: Job, started: float) -> Response:
        s = job.request.sampling
        tokens = (self.count_prompt(job.request) if self.count_prompt else 0) + s.max_tokens * s.n
        async for attempt in AsyncRetrying(stop=stop_after_attempt(self.settings.max_retries + 1), wait=wait_time,
                                           retry=retry_if_exception(is_transient), reraise=True):
            with attempt:
                await self.limiter.acquire(tokens)
                return await self._request(job, started)
        raise AssertionError("unreachable")

    async def _request(self, job: Job, started: float) -> Response:
        url, body = request_body(self.model, job.request)
        extra = {field: body.pop(field) for field in EXTRA_FIELDS if field in body}
        create = self.client.chat.completions.create if url == CHAT_URL else self.client.completions.create
        completion = await create(**body, extra_body=extra or None)
        return response_of(completion, chat=url == CHAT_URL, latency=time.perf_counter() - started)

    def cancel(self) -> None:
        for future in list(self.tasks):
            future.cancel()
        self.tasks.clear()
        self.live.clear()

    def close(self) -> None:
        self.cancel()
        if self.loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self.client.close(), self.loop).result(timeout=10)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(timeout=10)


PLUGIN = OpenAIBackend
