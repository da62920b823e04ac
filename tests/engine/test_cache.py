"""The response cache: content addressing, durability, failures, and a full disk."""

from __future__ import annotations

import sqlite3

import pytest

from synthcpt.engine.cache import Response, ResponseCache, request_key
from synthcpt.engine.types import Request, Sampling
from synthcpt.errors import SynthcptError


def chat(content: str, **sampling) -> Request:
    return Request(messages=[{"role": "user", "content": content}], sampling=Sampling(**sampling))


def response(text: str) -> Response:
    return Response([text], ["stop"], 10, 3, 0.5)


def test_key_covers_what_determines_the_response_and_nothing_else():
    base = request_key("m", chat("hello", max_tokens=8))
    assert request_key("m", chat("hello", max_tokens=8)) == base
    # metadata and prefix_key travel with the request but do not change the response
    assert request_key("m", Request(messages=[{"role": "user", "content": "hello"}], sampling=Sampling(max_tokens=8),
                                    metadata={"doc": 1}, prefix_key="d1")) == base
    variants = [request_key("other", chat("hello", max_tokens=8)), request_key("m", chat("hello!", max_tokens=8)),
                request_key("m", chat("hello", max_tokens=9)), request_key("m", chat("hello", max_tokens=8, seed=1)),
                request_key("m", chat("hello", max_tokens=8, stop=("\n",))),
                request_key("m", Request(prompt="hello", sampling=Sampling(max_tokens=8))),
                request_key("m", Request(messages=[{"role": "user", "content": "hello"}],
                                         sampling=Sampling(max_tokens=8), sample=1)),
                request_key("m", Request(messages=[{"role": "user", "content": "hello"}],
                                         sampling=Sampling(max_tokens=8), json_schema={"type": "object"}))]
    assert len({base, *variants}) == len(variants) + 1


def test_responses_survive_reopening_and_failures_are_kept_apart(tmp_path):
    cache = ResponseCache(tmp_path / "engine.sqlite")
    cache.put_many("stage", [("a", response("A"))], [("b", "HTTP 400: too long")])
    cache.close()
    cache = ResponseCache(tmp_path / "engine.sqlite")
    assert cache.get("a") == response("A")
    assert cache.get("b") is None  # a failure is not an answer: it is retried
    assert cache.failures() == [("b", "HTTP 400: too long", 1)]
    cache.put_many("stage", [], [("b", "HTTP 400: still too long")])
    assert cache.failures() == [("b", "HTTP 400: still too long", 2)]
    cache.put_many("stage", [("b", response("B"))])
    assert cache.failures() == [] and cache.get("b").texts == ["B"]
    assert cache.count() == 2 and cache.count("stage") == 2 and cache.count("other") == 0
    assert cache.mean_completion_tokens("stage") == (3.0, 2)
    assert cache.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_full_disk_stops_with_one_line_and_keeps_what_was_written(tmp_path):
    cache = ResponseCache(tmp_path / "engine.sqlite")
    cache.put_many("stage", [(f"k{i}", response("x" * 100)) for i in range(20)])
    pages = cache.db.execute("PRAGMA page_count").fetchone()[0]
    # SQLite's own size cap raises the same SQLITE_FULL error as a full file system
    cache.db.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(SynthcptError, match="disk full"):
        cache.put_many("stage", [(f"big{i}", response("y" * 4000)) for i in range(50)])
    cache.close()
    reopened = sqlite3.connect(tmp_path / "engine.sqlite")
    assert reopened.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert reopened.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 20
    assert reopened.execute("SELECT COUNT(*) FROM responses WHERE key LIKE 'big%'").fetchone()[0] == 0
