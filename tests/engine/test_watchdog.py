"""A vLLM engine that dies mid-generation (kill -9 of its EngineCore process, as the OOM killer does)
stops the run with one clear error line within 30 s instead of hanging it, the cache intact; the rerun
resumes and asks the model only for what was not stored.

The killed generation runs in its own process, started as `python -m tests.engine.test_watchdog RUN_DIR N
OUT` (the `__main__` block below): the in-process vLLM backend, errors printed the way the CLI prints
them. The rerun runs here, on the session's engine: the cache is keyed by model and request, not by the
engine's batch settings.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import assert_one_line_error, stored_responses

ROOT = Path(__file__).resolve().parents[2]
N = 12
# The promise: a dead engine is one clear line within 30 s (the watchdog notices it within a second).
STOP_WITHIN_S = 30

pytestmark = pytest.mark.slow


def start(run_dir: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.engine.test_watchdog", str(run_dir), str(N), str(out)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def engine_core(worker: subprocess.Popen) -> psutil.Process | None:
    for child in psutil.Process(worker.pid).children(recursive=True):
        if "EngineCore" in " ".join(child.cmdline()):
            return child
    return None


def kill_engine_core_mid_run(worker: subprocess.Popen, run_dir: Path) -> list[psutil.Process]:
    """SIGKILL the worker's EngineCore once a quarter of the responses are stored; returns the engine's
    processes, for the test to check none outlives the worker."""
    while stored_responses(run_dir) < N // 4:
        assert worker.poll() is None, f"the run ended before it could be killed: {worker.stderr.read()[-2000:]}"
        time.sleep(0.05)
    core = engine_core(worker)
    assert core is not None, "no EngineCore child process found"
    family = [core, *core.children(recursive=True)]
    core.send_signal(signal.SIGKILL)
    return family


@pytest.mark.timeout(900)
def test_engine_killed_mid_generation_stops_with_one_line_then_the_rerun_resumes(vllm_engine_settings, tmp_path):
    run_dir = tmp_path / "run"
    worker = start(run_dir, tmp_path / "never.jsonl")
    family = kill_engine_core_mid_run(worker, run_dir)
    try:  # the line printed and the process gone within the bound
        _, stderr = worker.communicate(timeout=STOP_WITHIN_S)
    finally:
        worker.kill()
    proc = subprocess.CompletedProcess(worker.args, worker.returncode, "", stderr)
    assert_one_line_error(proc, "the vLLM engine process died", "rerun to resume")
    assert not (tmp_path / "never.jsonl").exists()
    done_before = stored_responses(run_dir)
    assert N // 4 <= done_before < N
    psutil.wait_procs(family, timeout=STOP_WITHIN_S)
    assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    before = usage(run_dir)
    main(run_dir, N, tmp_path / "resumed.jsonl", vllm_engine_settings)
    records = [json.loads(line) for line in (tmp_path / "resumed.jsonl").read_text().splitlines()]
    assert [r["i"] for r in records] == list(range(N)) and all(r["ok"] for r in records)
    # the rerun took the stored responses from the cache and asked the model only for the rest
    after = usage(run_dir)
    assert after["cached"] - before["cached"] == done_before and after["requests"] - before["requests"] == N
    assert stored_responses(run_dir) == N


def usage(run_dir: Path) -> dict:
    """The folder's usage totals over all runs (the stopped run's span included)."""
    return json.loads((run_dir / "cache" / "usage.json").read_text())["stories"]


def requests(n: int):
    from synthcpt.engine import Request, Sampling

    for i in range(n):
        yield Request(messages=[{"role": "user", "content": f"Write a short story about the number {i}."}],
                      sampling=Sampling(temperature=0.0, max_tokens=32), metadata={"i": i})


def small_batch_settings():
    """A small batch, so that responses are stored a few at a time and the kill lands mid-run."""
    from synthcpt.engine.settings import engine_settings

    return engine_settings()(vllm={"max_num_seqs": 2, "kv_cache_gb": 0.5}, max_model_len=1024)


def main(run_dir: Path, n: int, out: Path, settings) -> None:
    from synthcpt.atomic import write_text
    from synthcpt.engine import open_engine

    with open_engine(settings, run_dir) as engine:
        records = [{"i": r.request.metadata["i"], "ok": r.ok} for r in engine.generate(requests(n), "stories")]
    write_text(out, "".join(json.dumps(r) + "\n" for r in sorted(records, key=lambda r: r["i"])))


if __name__ == "__main__":
    from synthcpt.errors import SynthcptError
    from synthcpt.progress import set_library_logs

    set_library_logs(verbose=False)
    try:
        main(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), small_batch_settings())
    except SynthcptError as e:  # as the CLI reports it
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
