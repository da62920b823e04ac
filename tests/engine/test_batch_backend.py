"""The openai_batch backend against a small Batch API (tests/engine/batch_server.py) whose every line is
answered by the real embedded model behind the session's vLLM server.

Run as `python -m tests.engine.test_batch_backend RUN_DIR BASE_URL OUT`, it is the run the kill test
starts in its own process: it writes one JSON record per request to OUT when all are done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from synthcpt.atomic import write_json, write_text
from synthcpt.engine import Request, Sampling, open_engine
from synthcpt.engine.backends.openai_batch import batch_status_table, load_state, state_path
from synthcpt.engine.cache import request_key
from synthcpt.engine.plan import estimate
from synthcpt.engine.settings import Price, engine_settings
from synthcpt.engine.usage import price_of
from synthcpt.errors import SynthcptError
from tests.conftest import DEMO_CORPUS
from tests.engine.batch_server import batch_server
from tests.engine.fault_proxy import fault_proxy

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = "SYNTHCPT_BATCH_TEST_KEY"
KILLED_RUN_REQUESTS = 8
# Limits on waiting for a subprocess run, not timed assertions: generous, for a loaded CPU box.
RUN_TIMEOUT = 900


def generate_stage_overrides(run_dir: Path, engine: list[str]) -> list[str]:
    """The config of the full generate-stage test: one small WRAP generation over the demo stories
    (spaCy entities, no LLM before generate), through the given engine settings. The one place to adapt
    when the generate stage's keys change."""
    return [f"run.dir={run_dir}", f"ingest.inputs=[{DEMO_CORPUS}]", "entities.extractor=spacy",
            "generate.generators=[wrap]", "generate.tokens={wrap: 120}", "generate.wrap.max_tokens=16",
            "generate.wrap.styles=[easy]", "generate.mix.min_tokens=4", "engine.model=default", *engine]


def batch_settings(base_url: str, **changes):
    """Engine settings for the batch backend against a batch server, polling often (a test waits seconds)."""
    return engine_settings()(backend="openai_batch", model="default",
                             openai_batch={"base_url": base_url, "poll_interval": 0.2, "api_key_env": KEY_ENV,
                                           **changes})


def chat(n: int) -> list[Request]:
    """Short chat requests at temperature 0 (one batch endpoint: one batch per file)."""
    return [Request(messages=[{"role": "user", "content": f"Name an animal that starts with the letter {chr(65 + i)}."}],
                    sampling=Sampling(temperature=0.0, max_tokens=12, seed=i), metadata={"i": i}) for i in range(n)]


def requests(n: int) -> list[Request]:
    """Short chat requests, a raw prompt (the completions endpoint: a batch of its own) and a JSON schema."""
    schema = {"type": "object", "properties": {"animal": {"type": "string"}}, "required": ["animal"]}
    found = chat(n - 2)
    found.append(Request(prompt="The three primary colours are", sampling=Sampling(temperature=0.0, max_tokens=12),
                         metadata={"i": n - 2}))
    found.append(Request(messages=[{"role": "user", "content": "Name one animal, as JSON."}], json_schema=schema,
                         sampling=Sampling(temperature=0.0, max_tokens=16), metadata={"i": n - 1}))
    return found


def texts(results) -> dict[int, list[str]]:
    return {r.request.metadata["i"]: r.texts for r in results}


def keys(batch: list[Request]) -> list[str]:
    return [request_key("default", r) for r in batch]


def test_batch_answers_as_online_and_a_run_switches_between_them(openai_engine_settings, vllm_server, tmp_path):
    with open_engine(openai_engine_settings, tmp_path / "online") as engine:
        online = list(engine.generate(requests(12), description="animals"))
    with batch_server(vllm_server) as (url, server), \
            open_engine(batch_settings(url, max_requests_per_file=5), tmp_path / "batch") as engine:
        batched = list(engine.generate(requests(12), description="animals"))
        assert engine.usage.requests == 12 and engine.usage.failed == 0 and engine.usage.parse_failures == 0
    assert texts(batched) == texts(online) and all(r.ok and r.text for r in batched)
    assert next(r for r in batched if r.request.json_schema).parsed[0]["animal"]
    # 11 chat requests in files of at most 5 and the raw prompt's, one batch each, every request answered once
    assert server.created == 4 and sorted(server.forwarded.values()) == [1] * 12
    assert sorted(server.forwarded) == sorted(keys(requests(12)))
    # the same cache keys as online: the online backend finds every batch answer in the batch run's cache
    with open_engine(openai_engine_settings, tmp_path / "batch") as engine:
        assert texts(engine.generate(requests(12), description="animals")) == texts(online)
        assert engine.usage.cached == 12
    table = record(batch_status_table(tmp_path / "batch"))
    assert table.count("completed") == 4 and all(b.batch_id in table for b in load_state(tmp_path / "batch"))
    assert batch_status_table(tmp_path / "online") is None


def record(table) -> str:
    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


@pytest.mark.timeout(600)  # a request the backend lost track of would make the engine wait forever
def test_expired_batch_and_failed_lines_are_completed_in_a_second_batch(vllm_server, tmp_path):
    too_long = Request(messages=[{"role": "user", "content": "word " * 9000}], sampling=Sampling(max_tokens=4),
                       metadata={"i": "long"})
    batch = [too_long, *chat(6)]  # one file, in this order
    with batch_server(vllm_server) as (url, server), open_engine(batch_settings(url), tmp_path) as engine:
        server.expire = 1  # the first batch answers 3 of its 7 lines, then expires
        server.fail_lines = set(keys(batch)[1:3])  # two of those 3 fail with a 500
        results = {r.request.metadata["i"]: r for r in engine.generate(batch, description="animals")}
        assert engine.usage.failed == 1
        first, second = load_state(tmp_path)
        # asked for again in the same run, the refused request is sent again (as online), in a batch of its own
        (again,) = engine.generate([too_long])
        assert "HTTP 400" in again.error
    assert server.created == 3 and not server.fail_lines
    assert all(results[i].ok and results[i].text for i in range(6))
    # the request the model refused (400) is a failure, as online: not put in the second batch
    assert "HTTP 400" in results["long"].error and server.forwarded[keys(batch)[0]] == 2
    assert sorted(server.forwarded.values()) == [1] * 6 + [2]
    assert first.status == "expired" and second.status == "completed" and second.requests == 6


def test_a_create_whose_answer_is_lost_is_found_not_submitted_again(vllm_server, tmp_path):
    with batch_server(vllm_server) as (url, server), open_engine(batch_settings(url), tmp_path) as engine:
        server.drop_creates = 1  # the batch is created, the connection dropped before the client hears of it
        results = list(engine.generate(chat(4)))
    assert server.created == 1 and all(r.ok for r in results) and len(results) == 4  # one file of 4 chat requests
    assert sorted(server.forwarded.values()) == [1] * 4


def test_killed_between_upload_and_create_finds_the_batch_by_its_file(vllm_server, tmp_path):
    with batch_server(vllm_server) as (url, server):
        with open_engine(batch_settings(url), tmp_path) as engine:
            first = texts(engine.generate(chat(4)))
        # as a run killed after creating the batch but before recording it, its answers never committed
        state = json.loads(state_path(tmp_path).read_text())
        state["batches"][0].update(batch_id=None, status="uploaded", keys=keys(chat(4)))
        write_json(state_path(tmp_path), state)
        for path in (tmp_path / "cache").glob("engine.sqlite*"):
            path.unlink()
        with open_engine(batch_settings(url), tmp_path) as engine:
            assert texts(engine.generate(chat(4))) == first
            assert engine.usage.cached == 0
    assert server.created == 1 and sorted(server.forwarded.values()) == [1] * 4
    assert [b.status for b in load_state(tmp_path)] == ["completed"] and not load_state(tmp_path)[0].keys


def test_a_listing_that_lags_behind_a_lost_create_is_waited_for_not_created_again(vllm_server, tmp_path):
    with batch_server(vllm_server) as (url, server), open_engine(batch_settings(url), tmp_path) as engine:
        server.drop_creates = 1  # the batch is created, the client never hears of it,
        server.list_lag = 2  # and the next two listings do not show it yet
        results = list(engine.generate(chat(4)))
    assert server.created == 1 and all(r.ok for r in results) and len(results) == 4
    assert sorted(server.forwarded.values()) == [1] * 4


def test_a_local_clock_ten_minutes_ahead_of_the_provider_creates_nothing_twice(vllm_server, tmp_path):
    """The look-up of a batch whose creation is in doubt is bounded by the provider's clock only."""
    with batch_server(vllm_server, clock_offset=-600) as (url, server):  # every created_at 10 min behind ours
        settings = batch_settings(url, max_requests_per_file=2)
        with open_engine(settings, tmp_path) as engine:
            server.drop_creates = 1  # the first of three batches is created, its answer lost
            first = texts(engine.generate(chat(6)))
        assert server.created == 3
        # as a run killed after creating its first two batches but before recording them (the first one
        # recorded by an older version, without its file's time), its answers never committed; the third,
        # newer batch is recorded and lists before them
        state = json.loads(state_path(tmp_path).read_text())
        for entry in state["batches"]:
            entry["keys"] = [json.loads(line)["custom_id"] for line in server.files[entry["file_id"]].splitlines()]
        for entry in state["batches"][:2]:
            entry.update(batch_id=None, status="uploaded")
        state["batches"][0].pop("file_created", None)
        write_json(state_path(tmp_path), state)
        for path in (tmp_path / "cache").glob("engine.sqlite*"):
            path.unlink()
        with open_engine(settings, tmp_path) as engine:
            assert texts(engine.generate(chat(6))) == first
            assert engine.usage.cached == 0
    assert server.created == 3 and sorted(server.forwarded.values()) == [1] * 6
    batches = load_state(tmp_path)
    assert [b.status for b in batches] == ["completed"] * 3 and not any(b.keys for b in batches)
    # the provider's time of each file is recorded; the one an older state lacked was asked of the provider
    assert all(b.file_created == server.file_records[b.file_id]["created_at"] for b in batches)
    assert all(b.file_created < b.created - 500 for b in batches)  # the two clocks 10 minutes apart


def start_run(run_dir: Path, base_url: str, out: Path, secret: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.engine.test_batch_backend", str(run_dir), base_url,
                             str(out)], cwd=ROOT, env=dict(os.environ, **{KEY_ENV: secret}),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def submitted(run_dir: Path) -> bool:
    try:
        return any(b.batch_id for b in load_state(run_dir))
    except SynthcptError:  # never half-written (atomic), but not there yet
        return False


@pytest.mark.slow
def test_killed_after_submitting_the_rerun_submits_nothing_and_leaks_no_key(vllm_server, tmp_path):
    secret = "sk-synthcpt-test-" + os.urandom(8).hex()
    with batch_server(vllm_server, api_key=secret) as (url, server):
        server.hold()  # the batch stays in progress until the first run is dead
        run = start_run(tmp_path / "run", url, tmp_path / "never.jsonl", secret)
        deadline = time.monotonic() + RUN_TIMEOUT
        while not submitted(tmp_path / "run"):
            assert run.poll() is None, run.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(run.pid, signal.SIGKILL)
        first_output = run.communicate()[0].decode()
        assert server.created == 1 and not server.forwarded
        server.release()
        rerun = start_run(tmp_path / "run", url, tmp_path / "out.jsonl", secret)
        rerun_output = rerun.communicate(timeout=RUN_TIMEOUT)[0].decode()
        assert rerun.returncode == 0, rerun_output[-2000:]
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["i"] for r in records] == list(range(KILLED_RUN_REQUESTS)) and all(r["ok"] for r in records)
    # the rerun attached to the killed run's batch: nothing submitted again, every request answered once
    assert server.created == 1 and sorted(server.forwarded.values()) == [1] * KILLED_RUN_REQUESTS
    assert "completed" in rerun_output  # the per-poll status line
    for path in (tmp_path / "run").rglob("*"):
        assert path.is_dir() or secret.encode() not in path.read_bytes(), path
    assert secret not in first_output + rerun_output


def test_wrong_key_unknown_model_and_missing_key_are_one_line(vllm_server, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "wrong")
    with batch_server(vllm_server, api_key="right") as (url, _), \
            pytest.raises(SynthcptError, match=rf"rejected the API key in \${KEY_ENV}"):
        open_engine(batch_settings(url), tmp_path).__enter__()
    with batch_server(vllm_server) as (url, _):
        settings = batch_settings(url).model_copy(update={"model": "gpt-nonexistent"})
        with pytest.raises(SynthcptError, match="model 'gpt-nonexistent' is not served at .*it serves: default"):
            open_engine(settings, tmp_path).__enter__()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(SynthcptError, match=r"openai_batch backend needs an API key in \$OPENAI_API_KEY"):
        open_engine(engine_settings()(backend="openai_batch", model="gpt-4o-mini"), tmp_path).__enter__()


def test_plan_prices_batch_work_at_half_or_at_the_set_batch_price(tmp_path):
    work = requests(4)
    online = estimate(engine_settings()(backend="openai", model="gpt-4o"), tmp_path, "x", work)
    batch = estimate(engine_settings()(backend="openai_batch", model="gpt-4o"), tmp_path, "x", work)
    assert online.cost > 0 and batch.cost == online.cost and batch.batch_cost == pytest.approx(online.cost / 2)
    assert batch.batch and not online.batch and batch.completion_window == "24h"
    prices = {"gpt-4o": Price(input=2.5, output=10.0, batch_input=2.0, batch_output=1.0)}
    settings = engine_settings()(backend="openai_batch", model="gpt-4o", prices=prices)
    assert price_of(settings) == Price(input=2.0, output=1.0)
    assert price_of(settings, batch=False) == prices["gpt-4o"]
    priced = estimate(settings, tmp_path, "x", work)
    assert priced.batch_cost == (priced.prompt_tokens * 2.0 + priced.completion_tokens * 1.0) / 1e6


@pytest.mark.slow
def test_generate_stage_through_the_batch_api_then_online_from_the_cache(vllm_server, tmp_path):
    from synthcpt.config import load_config
    from synthcpt.pipeline import Runner
    from synthcpt.s5_generate.records import read_shards

    run_dir = tmp_path / "run"
    with batch_server(vllm_server) as (url, server):
        engine = ["engine.backend=openai_batch", f"engine.openai_batch.base_url={url}",
                  "engine.openai_batch.poll_interval=0.2"]
        config = load_config(None, generate_stage_overrides(run_dir, engine))
        Runner(config, reporter=lambda _: None).execute(["ingest", "entities", "graph", "exam", "generate"], force=set())
    wrap = read_shards(run_dir / "generate" / "wrap")
    assert wrap and all(r["text"].strip() and r["model"] == "default" for r in wrap)
    assert server.created >= 1 and server.forwarded and set(server.forwarded.values()) == {1}
    # the same stage online asks the model nothing: every request is in the cache under the same key
    with fault_proxy(vllm_server, fault_rate=0.0) as (proxy_url, proxy):
        engine = ["engine.backend=openai", f"engine.openai.base_url={proxy_url}"]
        config = load_config(None, generate_stage_overrides(run_dir, engine))
        # the earlier stages run again: the engine's identity names the backend (see the report)
        Runner(config, reporter=lambda _: None).execute(["ingest", "entities", "graph", "exam", "generate"],
                                                        force={"generate"})
    assert proxy.completed == 0
    assert sorted(r["text"] for r in read_shards(run_dir / "generate" / "wrap")) == sorted(r["text"] for r in wrap)


def main(run_dir: Path, base_url: str, out: Path) -> None:
    with open_engine(batch_settings(base_url), run_dir) as engine:
        records = [{"i": r.request.metadata["i"], "ok": r.ok} for r in engine.generate(chat(KILLED_RUN_REQUESTS))]
    write_text(out, "".join(json.dumps(r) + "\n" for r in sorted(records, key=lambda r: r["i"])))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
