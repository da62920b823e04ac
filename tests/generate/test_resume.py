"""A generation killed mid-way resumes from the engine's cache and yields the same records: one run of
a one-step generator (WRAP) and two two-step ones (Active Reading, Focal Rewriting), killed while
Focal Rewriting writes its rewrites, so every kind of step comes back from the cache and nothing
answered before the kill is sent again.

The killed run and the rerun talk to the session's vLLM server through the openai backend: what is
tested is the stage's resume, not an engine's start (tests/engine/test_kill.py kills an engine)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from synthcpt.s5_generate.records import read_shards
from tests.helpers import ROOT, STORIES, run_stage, write_stories

pytestmark = pytest.mark.slow

GENERATORS = ("wrap", "active_reading", "focal")
# Short answers; greedy strategy lists (the 135M model runs its first instruction on to max_tokens,
# which keeps its complete sentences). No budgets: each generator sends every request it has.
SETTINGS = ["entities.extractor=spacy", "generate.mix.min_tokens=8", "generate.wrap.max_tokens=48",
            "generate.active_reading.strategies=2", "generate.active_reading.strategies_temperature=0.0",
            "generate.active_reading.strategies_max_tokens=200", "generate.active_reading.max_tokens=96",
            "generate.focal.questions.temperature=0.5", "generate.focal.questions.max_tokens=384",
            "generate.focal.question_lists=5", "generate.focal.source=passage", "generate.focal.max_tokens=96",
            # The repetition rule off (it can never fire at 1.0): the 135M model's few Active Reading answers are
            # sometimes all loops the rule rejects (CI: 2 of 2), leaving no record to compare. What this tests is
            # the resume; the rule has its own tests in test_mix.py.
            "generate.mix.max_repetition=1.0"]
# The step whose responses the kill waits for: WRAP and Active Reading done, the questions written, a
# rewrite answered.
REWRITE_STEP = "generate: focal"
QUESTIONS_STEP = "generate: focal: questions"


def cached_responses(run_dir, step: str | None = None) -> int:
    """Responses in the run's engine cache (of one engine step, if given)."""
    path = run_dir / "cache" / "engine.sqlite"
    if not path.is_file():
        return 0
    query, args = ("SELECT count(*) FROM responses", ()) if step is None else (
        "SELECT count(*) FROM responses WHERE description = ?", (step,))
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute(query, args).fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def generate_until_killed(overrides: list[str], run_dir, log, step: str) -> int:
    """`synthcpt generate` in a subprocess, killed (SIGKILL, its whole group) once the engine's cache
    holds a response of `step`; returns how many responses the cache holds after the kill."""
    command = [sys.executable, "-c", "from synthcpt.cli import main; main()", "generate",
               *[arg for o in overrides for arg in ("--set", o)]]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=dict(os.environ, TERM="dumb"))
    try:
        deadline = time.monotonic() + 480
        while cached_responses(run_dir, step) < 1 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert cached_responses(run_dir, step) >= 1, f"the killed run never reached {step}:\n{log.read_text()[-3000:]}"
    return cached_responses(run_dir)


def generator_stats(run_dir) -> dict:
    return json.loads((run_dir / "generate" / "stats.json").read_text())["generators"]


def records(run_dir) -> dict[str, list[dict]]:
    return {name: read_shards(run_dir / "generate" / name) for name in GENERATORS}


def test_killed_generation_resumes_with_the_same_records(tmp_path, openai_engine_settings):
    from synthcpt.config import load_config

    run_dir = tmp_path / "run"
    engine = openai_engine_settings
    overrides = [f"run.dir={run_dir}", f"ingest.inputs=[{write_stories(tmp_path / 'stories')}]", "exam.source=given",
                 f"generate.generators=[{', '.join(GENERATORS)}]", *SETTINGS,
                 f"engine.backend={engine.backend}", f"engine.model={engine.model}",
                 f"engine.openai.base_url={engine.openai.base_url}", f"engine.openai.concurrency={engine.openai.concurrency}",
                 f"engine.openai.timeout={engine.openai.timeout}"]
    config = load_config(None, overrides)
    assert config.engine.model_dump() == engine.model_dump()
    run_stage(config, ["ingest", "entities", "graph", "exam"])
    # One request in flight in the killed run: with the session's concurrency the rewrites went out in one
    # wave and were sometimes all answered before the kill (CI: 8 of 8). The cache keys ignore concurrency.
    before_kill = generate_until_killed([*overrides, "engine.openai.concurrency=1"], run_dir, tmp_path / "killed.log",
                                        REWRITE_STEP)
    rewrites_before_kill = cached_responses(run_dir, REWRITE_STEP)

    run_stage(config, ["generate"])
    stats = generator_stats(run_dir)
    # WRAP and Active Reading finished before the kill: all from the cache; focal's questions too, so it
    # asks for the same rewrites, and those answered before the kill are not sent again.
    assert stats["wrap"]["cached"] == stats["wrap"]["requests"] > 0
    assert stats["active_reading"]["cached"] == stats["active_reading"]["requests"] > 0
    assert stats["focal"]["cached"] == rewrites_before_kill >= 1
    assert stats["focal"]["requests"] > rewrites_before_kill  # the kill came mid-way
    lists, questions = len(STORIES), cached_responses(run_dir, QUESTIONS_STEP)
    assert before_kill == lists + questions + rewrites_before_kill + sum(
        stats[name]["requests"] for name in ("wrap", "active_reading"))
    resumed = records(run_dir)
    assert resumed["wrap"] and resumed["active_reading"], {name: stats[name]["rejected"] for name in GENERATORS}

    run_stage(config, ["generate"], force=["generate"])
    again = generator_stats(run_dir)
    assert all(again[name]["cached"] == again[name]["requests"] for name in GENERATORS)  # nothing new generated
    assert cached_responses(run_dir) == lists + questions + sum(again[name]["requests"] for name in GENERATORS)
    assert records(run_dir) == resumed
