"""The batch-API backend: requests go to a provider's Batch API (OpenAI's Files and Batches endpoints, or
any server that speaks them) as JSONL files, at about half the online price, answered within the
completion window. The same request body as the online `openai` backend, under the same cache keys
(custom_id = the key), so a run can switch between the two and reuse every response.

Never paying twice: every file and batch is recorded in `run_dir/cache/batches.json` before its upload
or submission and again as soon as the call returns, so a run killed at any point and rerun picks up
its batches (polling, downloading) instead of sending their requests again. A batch whose creation is
in doubt is looked up by its input file, bounded by the provider's own timestamps only (see
PROVIDER_SLACK and LOOKUP_WAITS), before it could be created a second time.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import openai
from pydantic import Field

from synthcpt.atomic import write_json
from synthcpt.engine.backend import Backend, Done, Job
from synthcpt.engine.backends.openai import (
    MalformedResponse,
    api_key,
    describe,
    is_transient,
    request_body,
    response_of,
)
from synthcpt.errors import SynthcptError
from synthcpt.progress import console
from synthcpt.section import Section

if TYPE_CHECKING:
    from rich.table import Table

    from synthcpt.engine.settings import EngineSettings

STATE_FILE = "batches.json"
TERMINAL = ("completed", "failed", "expired", "cancelled")
# Error codes of the lines a batch never got to (it expired or was cancelled): sent again, not failures.
UNANSWERED_CODES = ("batch_expired", "batch_cancelled")
# A request is sent in at most this many batches per run before it fails (a batch that fails validation
# would otherwise be resubmitted forever).
MAX_BATCH_ATTEMPTS = 3
# A batch whose creation is in doubt (its create call lost its answer, or a run was killed between upload
# and create) is looked up in the provider's newest-first list by its input file. Only the provider's
# clock bounds that scan: a batch cannot be created before its input file was uploaded, so the scan stops
# at batches created before the file's `created_at` (less this slack, in case the provider's Files and
# Batches services disagree by a few seconds: reading a few more entries is cheap, a miss bills twice).
# The local clock plays no part: ahead of or behind the provider's by any amount, it changes nothing.
PROVIDER_SLACK = 60
# A listing may lag behind a create (eventual consistency): right after a create whose answer was lost,
# the batch it made may not be listed yet. Creating again at the first miss would then bill the batch
# twice, while waiting for a batch that was never created only delays its requests (answered within a
# day anyway). So a miss is taken as final only after looking again with these waits (seconds, about a
# minute in all); only then is the batch created (again). Lags beyond that cannot be told apart from a
# create that never arrived without an idempotency key, which the Batches API does not offer. A refusal
# (429) is certain not to have created anything: it is retried without looking.
LOOKUP_WAITS = (1, 2, 4, 8, 16, 32)
MAX_BACKOFF = 60.0


class OpenAIBatchSettings(Section):
    """openai_batch backend: a provider's Batch API (OpenAI Files + Batches), about half price, within a day."""

    base_url: str | None = Field(
        None, description="Endpoint with the Files and Batches APIs, e.g. https://api.openai.com/v1 (unset: OpenAI).")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Environment variable holding the API key (never stored in the run folder).")
    completion_window: str = Field("24h", description="Time the provider has to answer a batch (OpenAI: 24h).")
    poll_interval: float = Field(60.0, gt=0, description="Seconds between two looks at the batches in progress.")
    max_requests_per_file: int = Field(50_000, ge=1, description="Requests per batch file (OpenAI: 50,000).")
    max_bytes_per_file: int = Field(200_000_000, ge=1, description="Bytes per batch file (OpenAI: 200 MB).")
    max_in_flight: int = Field(
        200_000, ge=1, description="Requests submitted and not yet answered (several files; lower it to your "
                                   "account's enqueued-token limit).")
    timeout: float = Field(600.0, gt=0, description="Seconds before one API call (upload, download) times out.")
    max_retries: int = Field(8, ge=0, description="Retries of an API call on 429, 5xx and connection errors.")


@dataclass
class Batch:
    """One file of requests as recorded in the state file. `keys` are the cache keys it carries whose
    answers have not yet been handed to the engine (and committed by it)."""

    local_id: str
    url: str
    keys: list[str]
    requests: int
    created: float  # the local clock at record time: shown by `synthcpt status`, never compared with the provider's
    file_id: str | None = None
    file_created: int | None = None  # the uploaded file's created_at, on the provider's clock (absent in older states)
    batch_id: str | None = None
    status: str = "uploading"
    answered: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    reason: str = ""  # the provider's reason a batch did not complete
    seconds: float = 0.0  # from creation to the end

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def state_path(run_dir: Path) -> Path:
    from synthcpt.engine.engine import cache_dir

    return cache_dir(run_dir) / STATE_FILE


def load_state(run_dir: Path) -> list[Batch]:
    path = state_path(run_dir)
    if not path.is_file():
        return []
    try:
        return [Batch(**entry) for entry in json.loads(path.read_text())["batches"]]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise SynthcptError(f"unreadable batch state {path} ({e}): it lists the batches already paid for; "
                            "restore it, or delete it to send their requests again") from None


def batch_lines(jobs: list[Job], model: str) -> Iterator[tuple[Job, str, bytes]]:
    """(job, endpoint, JSONL line) of each job: the online backend's body, under its cache key."""
    for job in jobs:
        url, body = request_body(model, job.request)
        line = {"custom_id": job.key, "method": "POST", "url": url, "body": body}
        yield job, url, json.dumps(line, ensure_ascii=False).encode() + b"\n"


def chunks(lines: list[tuple[Job, bytes]], max_count: int, max_bytes: int) -> Iterator[list[tuple[Job, bytes]]]:
    """Consecutive runs of lines within the provider's limits on requests and bytes per file."""
    chunk: list[tuple[Job, bytes]] = []
    size = 0
    for job, line in lines:
        if chunk and (len(chunk) == max_count or size + len(line) > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append((job, line))
        size += len(line)
    if chunk:
        yield chunk


def line_error(line: dict[str, Any]) -> str:
    """The reason of a failed output line, in the online backend's words (`HTTP 400: ...`)."""
    error = line.get("error")
    if error:
        return f"{error.get('code') or 'error'}: {error.get('message', '')}".rstrip(": ")
    response = line.get("response") or {}
    body = response.get("body")
    message = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(message, dict):
        message = message.get("message", message)
    return f"HTTP {response.get('status_code')}: {str(message).splitlines()[0] if message else 'no body'}"


def unanswered(line: dict[str, Any]) -> bool:
    """A line the batch never got to, or that failed the way the online backend retries (429, 5xx...):
    sent again in a new batch rather than failed."""
    if (line.get("error") or {}).get("code") in UNANSWERED_CODES:
        return True
    status = (line.get("response") or {}).get("status_code") or 0
    return status in (408, 409, 429) or status >= 500


def done_of(job: Job, line: dict[str, Any], latency: float) -> Done:
    """The engine's Done for one output or error line."""
    response = line.get("response") or {}
    if line.get("error") or response.get("status_code") != 200:
        return Done(job, error=line_error(line))
    from openai.types import Completion
    from openai.types.chat import ChatCompletion

    chat = job.request.messages is not None
    try:
        completion = (ChatCompletion if chat else Completion).model_validate(response.get("body"))
        return Done(job, response_of(completion, chat=chat, latency=latency))
    except (ValueError, MalformedResponse) as e:  # pydantic's ValidationError is a ValueError
        return Done(job, error=f"malformed response in the batch output: {str(e).splitlines()[0]}")


class OpenAIBatchBackend(Backend[OpenAIBatchSettings]):
    name: ClassVar[str] = "openai_batch"
    summary: ClassVar[str] = "a provider's Batch API, about half price, answered within a day (engine.openai_batch)"
    # Checks the key and model and picks up the batches of an earlier run before any work.
    open_eagerly: ClassVar[bool] = True
    # A batch wants all of a generator's requests at once, not waves sized to a token target.
    single_wave: ClassVar[bool] = True
    # Accounted at the batch price (Price.batch) in live cost and plans.
    batch_prices: ClassVar[bool] = True

    @classmethod
    def status_table(cls, run_dir: Path):
        """The run's batches, for `synthcpt status` (None when it has none)."""
        return batch_status_table(run_dir)

    def __init__(self, engine_settings: EngineSettings, model_path: str | None = None, run_dir: Path | None = None):
        if run_dir is None:
            raise SynthcptError(f"the {self.name} backend keeps its batches in a run folder; it needs one")
        super().__init__(engine_settings, model_path, run_dir)
        self.model = engine_settings.model
        self.where = self.settings.base_url or "api.openai.com"
        self.path = state_path(run_dir)
        self.client = openai.OpenAI(base_url=self.settings.base_url, api_key=api_key(self.settings, self.name),
                                    max_retries=self.settings.max_retries, timeout=self.settings.timeout)
        self.once = self.client.with_options(max_retries=0)  # for the one call that must not be repeated blindly
        self.batches = load_state(run_dir)
        self.owner = {key: batch for batch in self.batches for key in batch.keys}
        self.jobs: dict[str, Job] = {}  # submitted by the engine, not yet handed back
        self.unsent: list[Job] = []
        self.handed: list[str] = []  # keys handed back by the last poll, committed once the engine asks again
        self.results: dict[str, dict[str, dict[str, Any]]] = {}  # downloaded lines by batch, then custom_id
        self.attempts: Counter[str] = Counter()
        self.shown = ""
        try:
            self._check_model()
            self._recover()
        except BaseException:
            self.client.close()
            raise

    # --- API calls: transient errors are retried by the client; what is left stops the run in one line.

    def _error(self, error: openai.APIError) -> SynthcptError:
        if isinstance(error, openai.AuthenticationError):
            return SynthcptError(f"{self.where} rejected the API key in ${self.settings.api_key_env}")
        if isinstance(error, openai.APIConnectionError):
            return SynthcptError(f"cannot reach the batch API at {self.where}: rerun to resume "
                                 "(submitted batches are kept)")
        return SynthcptError(f"{self.where} batch API: {describe(error)}")

    def _check_model(self) -> None:
        """Fail before any work when the server is unreachable, the key wrong or the model unknown."""
        try:
            served = [m.id for m in self.client.models.list()]
        except openai.NotFoundError:
            return  # a server without /models: the first batch will tell
        except openai.APIError as e:
            raise self._error(e) from None
        if served and self.model not in served:
            raise SynthcptError(f"model {self.model!r} is not served at {self.where} "
                                f"(it serves: {', '.join(sorted(served)[:10])})")

    # --- the state file

    def _save(self) -> None:
        if not self.batches and not self.path.exists():
            return  # a run that never sent a batch leaves no state file
        write_json(self.path, {"batches": [dataclasses.asdict(batch) for batch in self.batches]})

    def _recover(self) -> None:
        """Settle the records a killed run left between two calls. A file recorded as uploading may or
        may not have reached the provider: an unused upload costs nothing, so its requests are sent
        again. A batch whose file was uploaded may have been created: it is looked up by its input file
        (patiently, see LOOKUP_WAITS) before anything could create it a second time."""
        for batch in [b for b in self.batches if b.file_id is None]:
            self._forget(batch)
        for batch in [b for b in self.batches if b.file_id and b.batch_id is None]:
            found = self._find_batch(batch)
            if found is not None:
                self._update(batch, found)
        self._save()

    def _find_batch(self, batch: Batch) -> Any:
        """The provider's batch of this record's input file, or None when it has none: looked up again
        after each of LOOKUP_WAITS before a miss is believed (a listing may lag behind a create)."""
        since = self._file_created(batch)
        for wait in (*LOOKUP_WAITS, None):
            remote = self._look_up(batch.file_id, since)
            if remote is not None or wait is None:
                return remote
            time.sleep(wait)
        return None

    def _look_up(self, file_id: str | None, since: int | None) -> Any:
        """One pass over the newest-first list, down to the batches created before the input file was
        (`since`, the provider's clock), or over all of it when the file's time is unknown."""
        try:
            for remote in self.client.batches.list(limit=100):  # pages on as it is read
                if remote.input_file_id == file_id:
                    return remote
                if since is not None and remote.created_at < since - PROVIDER_SLACK:  # created before the file
                    return None
        except openai.APIError as e:
            raise self._error(e) from None
        return None

    def _file_created(self, batch: Batch) -> int | None:
        """The input file's created_at on the provider's clock: recorded at upload, or asked of the
        provider for a record without it (an older state file, an upload answer without it). None when
        the provider cannot tell: the whole list is then read."""
        if batch.file_created is None:
            try:
                batch.file_created = getattr(self.client.files.retrieve(batch.file_id), "created_at", None)
            except openai.NotFoundError:
                return None
            except openai.APIError as e:
                raise self._error(e) from None
        return batch.file_created

    def _forget(self, batch: Batch) -> None:
        self.batches.remove(batch)
        for key in batch.keys:
            self.owner.pop(key, None)

    def _release(self, keys: set[str]) -> None:
        """Take keys out of the batches that carry them (a list rebuilt per batch: batches are large)."""
        for batch in {id(self.owner[key]): self.owner[key] for key in keys if key in self.owner}.values():
            batch.keys = [key for key in batch.keys if key not in keys]
            if not batch.keys:
                self.results.pop(batch.local_id, None)
        for key in keys:
            self.owner.pop(key, None)

    # --- the Backend protocol

    def capacity(self) -> int:
        return self.settings.max_in_flight - len(self.jobs)

    def submit(self, job: Job) -> None:
        # The engine submits again only after committing what the last poll handed back: a request that
        # failed there and is asked for again must be sent again, not attached to the batch that failed it.
        self._confirm()
        self.jobs[job.key] = job
        if job.key not in self.owner:  # a key in a recorded batch is answered by it, never sent again
            self.unsent.append(job)

    def poll(self) -> list[Done]:
        self._confirm()
        while self.jobs:
            done = self._send() + self._advance()
            self._save()
            self._report()
            if done:
                self.handed = [d.job.key for d in done]
                for d in done:
                    del self.jobs[d.job.key]
                return done
            time.sleep(self.settings.poll_interval)
        return []

    def cancel(self) -> None:
        # The batches stay recorded (they are paid for); a later run attaches to them again. What was
        # handed back last may not have been committed (the engine cancels when committing fails).
        self.jobs.clear()
        self.unsent.clear()
        self.handed = []

    def close(self) -> None:
        self._confirm()
        self._save()
        self.client.close()

    # --- sending

    def _confirm(self) -> None:
        """The engine asks again only after committing what it was handed: those keys leave their batch."""
        self._release(set(self.handed))
        self.handed = []

    def _send(self) -> list[Done]:
        """Write the unsent jobs as batch files within the limits, upload and submit them."""
        jobs, self.unsent = self.unsent, []
        failed: list[Done] = []
        by_url: dict[str, list[tuple[Job, bytes]]] = {}
        limit = self.settings.max_bytes_per_file
        for job, url, line in batch_lines(jobs, self.model):
            if len(line) > limit:
                failed.append(Done(job, error=f"request of {len(line):,} bytes exceeds "
                                              f"engine.openai_batch.max_bytes_per_file ({limit:,})"))
            else:
                by_url.setdefault(url, []).append((job, line))
        for url, lines in by_url.items():
            for chunk in chunks(lines, self.settings.max_requests_per_file, limit):
                self._submit_file(url, chunk)
        return failed

    def _submit_file(self, url: str, chunk: list[tuple[Job, bytes]]) -> None:
        keys = [job.key for job, _ in chunk]
        batch = Batch(uuid.uuid4().hex, url, keys, len(keys), time.time())
        self.attempts.update(keys)
        self.batches.append(batch)
        self.owner.update((key, batch) for key in keys)
        self._save()  # before the upload: a killed run knows this file may exist
        try:
            uploaded = self.client.files.create(file=(f"synthcpt-{batch.local_id}.jsonl",
                                                      b"".join(line for _, line in chunk)), purpose="batch")
        except openai.APIError as e:
            raise self._error(e) from None
        batch.file_id, batch.status = uploaded.id, "uploaded"
        batch.file_created = getattr(uploaded, "created_at", None)
        self._save()
        self._create(batch)

    def _create(self, batch: Batch) -> None:
        """Create the batch of an uploaded file, once. A call that failed on the way back (dropped
        connection, timeout, 5xx) may have created it, and the client's own retries would create another:
        so it is made without them, and after a failure looked up by its input file before trying again
        (a refusal, 429, created nothing: it is only waited out)."""
        for attempt in range(self.settings.max_retries + 1):
            try:
                remote = self.once.batches.create(input_file_id=batch.file_id, endpoint=batch.url,
                                                  completion_window=self.settings.completion_window,
                                                  metadata={"synthcpt_batch": batch.local_id})
            except openai.APIError as e:
                if not is_transient(e) or attempt == self.settings.max_retries:
                    raise self._error(e) from None
                remote = None if isinstance(e, openai.RateLimitError) else self._find_batch(batch)
                if remote is None:
                    time.sleep(min(2 ** attempt, MAX_BACKOFF))
                    continue
            self._update(batch, remote)
            self._save()  # at once: a killed run finds this batch instead of submitting it again
            return

    # --- waiting and collecting

    def _update(self, batch: Batch, remote: Any) -> None:
        batch.batch_id, batch.status = remote.id, remote.status
        if remote.request_counts is not None:
            batch.answered, batch.failed = remote.request_counts.completed, remote.request_counts.failed
        batch.output_file_id, batch.error_file_id = remote.output_file_id, remote.error_file_id
        if batch.terminal:
            ended = remote.completed_at or remote.expired_at or remote.cancelled_at or remote.failed_at
            batch.seconds = float((ended or remote.created_at) - remote.created_at)
            errors = getattr(remote.errors, "data", None) or []
            batch.reason = errors[0].message if errors and errors[0].message else remote.status

    def _advance(self) -> list[Done]:
        """Look at every batch that carries a job of this run; collect the answers of finished ones."""
        done: list[Done] = []
        for batch in [b for b in self.batches if any(key in self.jobs for key in b.keys)]:
            if batch.batch_id is None:  # uploaded by a killed run, never created
                self._create(batch)
            elif not batch.terminal:
                self._retrieve(batch)
            if batch.terminal:
                done += self._collect(batch)
        return done

    def _retrieve(self, batch: Batch) -> None:
        try:
            self._update(batch, self.client.batches.retrieve(batch.batch_id))
        except openai.NotFoundError:  # e.g. another provider since: its requests are sent again
            batch.status, batch.reason = "failed", f"{self.where} does not know batch {batch.batch_id}"
        except openai.APIError as e:
            raise self._error(e) from None

    def _collect(self, batch: Batch) -> list[Done]:
        """Dones for this run's jobs in a finished batch; those it never answered go into a new batch."""
        lines = self._lines(batch)
        done: list[Done] = []
        again: set[str] = set()
        for key in [k for k in batch.keys if k in self.jobs]:
            line = lines.pop(key, None)  # each answer is handed back once: memory holds what is still to come
            if line is not None and not unanswered(line):
                done.append(done_of(self.jobs[key], line, batch.seconds))
            elif self.attempts[key] >= MAX_BATCH_ATTEMPTS:
                done.append(Done(self.jobs[key], error=f"batch {batch.batch_id} {batch.status} ({batch.reason}), "
                                                       f"{self.attempts[key]} batches tried"))
            else:
                again.add(key)
        self._release(again)
        self.unsent += [self.jobs[key] for key in again]
        return done

    def _lines(self, batch: Batch) -> dict[str, dict[str, Any]]:
        """The output and error lines of a finished batch by custom_id (downloaded once per run)."""
        if batch.local_id not in self.results:
            lines: dict[str, dict[str, Any]] = {}
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id:
                    for raw in self._download(file_id).splitlines():
                        if raw.strip():
                            line = json.loads(raw)
                            lines[line.get("custom_id")] = line
            self.results[batch.local_id] = lines
        return self.results[batch.local_id]

    def _download(self, file_id: str) -> str:
        try:
            return self.client.files.content(file_id).text
        except openai.NotFoundError:  # providers delete files after a while: its requests are sent again
            return ""
        except openai.APIError as e:
            raise self._error(e) from None

    def _report(self) -> None:
        """One status line per poll, when it says something new (a day of identical lines helps no one)."""
        live = [b for b in self.batches if b.keys]
        counts = Counter("in progress" if not b.terminal else b.status for b in live if b.batch_id)
        answered = sum(b.answered + b.failed for b in live)
        line = (f"batches: {sum(counts.values())} submitted, "
                + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
                + f"; {answered:,} of {sum(b.requests for b in live):,} requests answered")
        if line != self.shown:
            console.print(f"[dim]{line}[/dim]")
            self.shown = line


def batch_status_table(run_dir: Path) -> Table | None:
    """The batches of a run folder (for `synthcpt status`); None when it never used a batch API."""
    from rich.table import Table

    batches = load_state(Path(run_dir))
    if not batches:
        return None
    table = Table("batch", "endpoint", "status", "requests", "answered", "failed", "not yet committed", "submitted",
                  title="provider batches")
    for b in batches:
        table.add_row(b.batch_id or f"({b.local_id[:8]}, not created)", b.url.removeprefix("/v1/"), b.status,
                      f"{b.requests:,}", f"{b.answered:,}", f"{b.failed:,}", f"{len(b.keys):,}",
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(b.created)))
    return table


PLUGIN = OpenAIBatchBackend
