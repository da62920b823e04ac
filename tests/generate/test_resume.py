"""A generation killed mid-way resumes from the engine's cache and yields the same records."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from synthcpt.s4_generate.records import read_shards
from tests.generate.conftest import generate_overrides
from tests.helpers import ROOT

pytestmark = pytest.mark.slow

TARGETS = {"wrap": 600}


def cached_responses(run_dir) -> int:
    path = run_dir / "cache" / "engine.sqlite"
    if not path.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def run_stage(config, stages, force=()):
    from synthcpt.pipeline import Runner

    Runner(config, reporter=lambda _: None).execute(stages, force=set(force))


def generate_until_killed(overrides: list[str], run_dir, log, answered: int) -> int:
    """`synthcpt generate` in a subprocess, killed (SIGKILL, its whole group) once the engine's cache
    holds `answered` responses; returns how many it holds after the kill."""
    command = [sys.executable, "-c", "from synthcpt.cli import main; main()", "generate",
               *[arg for o in overrides for arg in ("--set", o)]]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=dict(os.environ, TERM="dumb"))
    try:
        deadline = time.monotonic() + 480
        while cached_responses(run_dir) < answered and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    before_kill = cached_responses(run_dir)
    assert before_kill >= answered, f"the killed run answered too few requests:\n{log.read_text()[-3000:]}"
    return before_kill


def test_killed_generation_resumes_with_the_same_records(tmp_path, vllm_engine_settings):
    from synthcpt.config import load_config

    run_dir = tmp_path / "run"
    overrides = generate_overrides(run_dir, TARGETS, engine=vllm_engine_settings)
    config = load_config(None, overrides)
    run_stage(config, ["ingest", "entities", "graph"])
    before_kill = generate_until_killed(overrides, run_dir, tmp_path / "killed.log", answered=3)

    run_stage(config, ["generate"])
    stats = json.loads((run_dir / "synthetic" / "stats.json").read_text())["generators"]["wrap"]
    assert stats["cached"] >= min(before_kill, stats["requests"]) > 0  # the killed run's work was reused
    resumed = read_shards(run_dir / "synthetic" / "wrap")
    assert sum(r["n_tokens"] for r in resumed) >= TARGETS["wrap"]

    run_stage(config, ["generate"], force=["generate"])
    again = json.loads((run_dir / "synthetic" / "stats.json").read_text())["generators"]["wrap"]
    assert again["cached"] == again["requests"]  # nothing new generated
    assert read_shards(run_dir / "synthetic" / "wrap") == resumed
