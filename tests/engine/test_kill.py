"""Exact resume: a run killed with SIGKILL mid-way, then rerun, gives exactly the records of an
uninterrupted run, with every response generated once and nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import stored_responses

ROOT = Path(__file__).resolve().parents[2]
N = 40


def start(run_dir: Path, base_url: str, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.engine.generate_worker", str(run_dir), base_url, str(N),
                             str(out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_kill_9_mid_run_then_resume_gives_the_uninterrupted_records(vllm_server, tmp_path):
    reference = start(tmp_path / "uninterrupted", vllm_server, tmp_path / "uninterrupted.jsonl")
    assert reference.wait(timeout=600) == 0, reference.stderr.read().decode()[-2000:]

    run_dir = tmp_path / "killed"
    worker = start(run_dir, vllm_server, tmp_path / "never.jsonl")
    deadline = time.monotonic() + 600
    while stored_responses(run_dir) < N // 4:
        assert worker.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    done_before = stored_responses(run_dir)
    assert N // 4 <= done_before < N
    assert not (tmp_path / "never.jsonl").exists()

    resumed = start(run_dir, vllm_server, tmp_path / "resumed.jsonl")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()[-2000:]
    records = (tmp_path / "resumed.jsonl").read_text().splitlines()
    assert records == (tmp_path / "uninterrupted.jsonl").read_text().splitlines()
    assert [json.loads(r)["i"] for r in records] == list(range(N))
    assert all(json.loads(r)["ok"] for r in records)
    # the resumed run took what was stored from the cache and asked the model only for the rest
    usage = json.loads((run_dir / "cache" / "usage.json").read_text())["numbers"]
    assert usage["cached"] == done_before and usage["requests"] == N
    assert stored_responses(run_dir) == N
