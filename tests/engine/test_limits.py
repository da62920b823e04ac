"""Requests- and tokens-per-minute buckets, on a controlled clock."""

from __future__ import annotations

import pytest

from synthcpt.engine import limits


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    return now


def test_bucket_allows_a_minutes_allowance_then_refills_at_the_rate(clock):
    bucket = limits.Bucket(per_minute=60)
    for _ in range(60):
        assert bucket.wait_for(1) == 0
        bucket.take(1)
    assert bucket.wait_for(1) == pytest.approx(1.0)  # 60 per minute: one more each second
    clock[0] += 0.5
    assert bucket.wait_for(1) == pytest.approx(0.5)
    clock[0] += 10
    assert bucket.wait_for(10) == 0


def test_tokens_bucket_waits_in_proportion_and_caps_oversized_requests(clock):
    bucket = limits.Bucket(per_minute=6000)
    bucket.take(6000)
    assert bucket.wait_for(3000) == pytest.approx(30.0)
    # a request above a minute's allowance waits for a full bucket, not forever
    assert bucket.wait_for(10_000) == pytest.approx(60.0)
    clock[0] += 60
    assert bucket.wait_for(10_000) == 0
