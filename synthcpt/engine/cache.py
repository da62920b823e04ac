"""The response cache that makes every generation resumable: SQLite in WAL mode in the run folder.

A response is keyed by what determines it (model, messages or prompt, sampling settings, JSON
schema, sample index), committed before it is counted or handed to the caller, and found again on
any later run, so an interrupted run redoes only the requests that had not finished. Failures are
kept apart with their error and retried on the next run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from synthcpt.engine.types import Request
from synthcpt.errors import SynthcptError

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    texts TEXT NOT NULL,
    finish_reasons TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency REAL NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    updated REAL NOT NULL
);
"""


def request_key(model: str, request: Request) -> str:
    """The content address of a request: everything that determines its response, nothing else."""
    payload = {
        "model": model,
        "messages": request.messages,
        "prompt": request.prompt,
        "sampling": dataclasses.asdict(request.sampling),
        "json_schema": request.json_schema,
        "sample": request.sample,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class Response:
    """A model response as stored: what a `Result` is rebuilt from."""

    texts: list[str]
    finish_reasons: list[str]
    prompt_tokens: int
    completion_tokens: int
    latency: float


class ResponseCache:
    """One SQLite file; use from one thread. `put_many` commits a batch in one transaction."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL under WAL: a committed response survives a killed process; power loss may roll back
            # the last commits (never corrupts), which are then regenerated. FULL would fsync every
            # commit, a cost paid per finished request on the HTTP backend.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=30000")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise SynthcptError(f"cannot open the response cache {path}: {e}") from None

    def close(self) -> None:
        self.db.close()

    def get(self, key: str) -> Response | None:
        row = self.db.execute(
            "SELECT texts, finish_reasons, prompt_tokens, completion_tokens, latency FROM responses WHERE key = ?",
            (key,)).fetchone()
        if row is None:
            return None
        return Response(json.loads(row[0]), json.loads(row[1]), row[2], row[3], row[4])

    def put_many(self, description: str, responses: Iterable[tuple[str, Response]],
                 failures: Iterable[tuple[str, str]] = ()) -> None:
        """Store responses (and clear their earlier failures) and record failures, atomically."""
        now = time.time()
        rows = [(key, description, json.dumps(r.texts, ensure_ascii=False), json.dumps(r.finish_reasons),
                 r.prompt_tokens, r.completion_tokens, r.latency, now) for key, r in responses]
        failed = [(key, description, error, now) for key, error in failures]
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                self.db.executemany("DELETE FROM failures WHERE key = ?", [(row[0],) for row in rows])
                self.db.executemany(
                    "INSERT INTO failures VALUES (?, ?, ?, 1, ?) ON CONFLICT(key) DO UPDATE SET "
                    "error = excluded.error, attempts = attempts + 1, updated = excluded.updated", failed)
        except sqlite3.OperationalError as e:
            if "full" in str(e):
                raise SynthcptError(f"disk full while writing the response cache {self.path}: everything generated "
                                    "before is kept; free space and rerun to resume") from None
            raise

    def count(self, description: str | None = None) -> int:
        if description is None:
            return self.db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM responses WHERE description = ?", (description,)).fetchone()[0]

    def failures(self) -> list[tuple[str, str, int]]:
        return self.db.execute("SELECT key, error, attempts FROM failures ORDER BY updated").fetchall()

    def mean_completion_tokens(self, description: str) -> tuple[float, int]:
        """Mean completion tokens of the stored responses of a description, and how many there are."""
        mean, count = self.db.execute(
            "SELECT AVG(completion_tokens), COUNT(*) FROM responses WHERE description = ?", (description,)).fetchone()
        return (mean or 0.0), count
