"""Ray-backend benchmark: the cost of going through Ray, and what a second replica adds. Every figure is
a ratio of completion tokens/s measured in this one run on the same machine, model, prompts and settings
(model loading excluded), each configuration given fresh requests in rounds, alternating where two run
side by side, so that load from elsewhere on the machine falls on both alike:

1. the `ray` backend with 1 replica (one core) vs the in-process `vllm` backend (the same core): the
   overhead of dispatching through Ray (target >= 0.9);
2. the `ray` backend with 2 replicas (one core each, run after the others are closed: four models at
   once do not fit a small machine's RAM) vs 1: the data-parallel scaling (on a 2-core machine shared
   with other work, expect well under 2).

It then projects EntiGraph's 455M synthetic tokens with an 8B generator on 1, 8 and 64 H100s from the
measured overhead (assumptions in the JSON).

    python bench/scale.py --quick    # a few minutes on 2 CPU cores
    python bench/scale.py            # more requests and rounds
    python bench/scale.py --dry-run  # every configuration's settings and the rounds' requests; no Ray, no model

The last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # the last stdout line is the JSON
os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "0"  # the in-process engine on the core replica 0 gets

from synthcpt.engine import Request, Sampling, open_engine
from synthcpt.engine.backends.vllm import release_models
from synthcpt.engine.settings import engine_settings
from synthcpt.progress import console

TOPICS = ["a lighthouse", "a lost key", "the first snow", "a night train", "an old map", "a quiet library",
          "a broken clock", "a river crossing"]
KV_CACHE_GB = 0.5

# The projection's assumptions: an 8B generator on H100s, one replica per GPU (tensor_parallel_size 1).
ENTIGRAPH_TOKENS = 455_000_000
H100_TOKENS_PER_SECOND = 10_000  # output tok/s of one 8B replica on one H100 (vLLM, large batches)
H100_DOLLARS_PER_HOUR = 2.50     # on-demand cloud price of one H100 GPU-hour
REPLICA_LOAD_MINUTES = 3.0       # starting one 8B replica (weights from local disk), in parallel across replicas


@dataclass(frozen=True)
class Size:
    requests: int
    max_tokens: int
    rounds: int


QUICK = Size(32, 24, 2)
FULL = Size(192, 64, 3)


def log(message: str) -> None:
    console.print(f"[dim]{message}[/dim]")


def story_requests(size: Size, round_index: int) -> list[Request]:
    """Fresh prompts per round (every configuration gets the same ones): nothing is answered from a cache."""
    return [Request(prompt=f"Write a short story about {TOPICS[i % len(TOPICS)]} (round {round_index}, "
                           f"number {i}).\n",
                    sampling=Sampling(temperature=0.8, top_p=0.95, max_tokens=size.max_tokens))
            for i in range(size.requests)]


def throughput(engine, requests: list[Request]) -> tuple[int, float]:
    """Completion tokens and generation seconds of one batch of requests (loading excluded)."""
    before_tokens, before_seconds = engine.usage.completion_tokens, engine.usage.seconds
    results = list(engine.generate(requests, description="scale"))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    return engine.usage.completion_tokens - before_tokens, engine.usage.seconds - before_seconds


def ray_engine(replicas: int):
    return engine_settings()(backend="ray", ray={"replicas": replicas, "cpus_per_replica": 1},
                             vllm={"kv_cache_gb": KV_CACHE_GB})


def configurations() -> dict[str, object]:
    """Each configuration's engine settings, by its name in the figures."""
    return {"in_process": engine_settings()(vllm={"kv_cache_gb": KV_CACHE_GB}),
            "ray_1_replica": ray_engine(1), "ray_2_replicas": ray_engine(2)}


def compare(engines: dict[str, object], rounds: list[list[Request]]) -> dict[str, dict[str, float]]:
    """Alternating rounds over the engines; per engine, completion tokens, seconds and tok/s summed."""
    totals = {name: [0, 0.0] for name in engines}
    for r, requests in enumerate(rounds):
        for name, engine in (engines.items() if r % 2 == 0 else reversed(engines.items())):
            tokens, seconds = throughput(engine, requests)
            totals[name][0] += tokens
            totals[name][1] += seconds
            log(f"round {r}: {name}: {tokens} tokens in {seconds:.1f} s ({tokens / seconds:.1f} tok/s)")
    return {name: {"completion_tokens": t, "seconds": round(s, 2), "tok_s": round(t / s, 2)}
            for name, (t, s) in totals.items()}


def projection(overhead: float) -> list[dict[str, float]]:
    """EntiGraph's 455M tokens with an 8B generator on 1, 8 and 64 H100s, one replica each, at the
    assumed H100 rate times the measured Ray overhead (capped at 1)."""
    rate = H100_TOKENS_PER_SECOND * min(overhead, 1.0)
    rows = []
    for gpus in (1, 8, 64):
        hours = ENTIGRAPH_TOKENS / (rate * gpus) / 3600 + REPLICA_LOAD_MINUTES / 60
        rows.append({"gpus": gpus, "hours": round(hours, 2), "dollars": round(hours * gpus * H100_DOLLARS_PER_HOUR, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds (a few minutes)")
    parser.add_argument("--dry-run", action="store_true", help="build every configuration's settings and the "
                        "rounds' requests, then stop before starting Ray or a model")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    configs = configurations()
    # Fresh requests per round: the first rounds compare in-process with one replica, the others run two.
    rounds = [story_requests(size, r) for r in range(2 * size.rounds)]
    if args.dry_run:
        print(json.dumps({
            "benchmark": "scale", "dry_run": True, "quick": args.quick, "rounds": size.rounds,
            "configurations": {name: {"backend": s.backend, "replicas": s.ray.replicas if s.backend == "ray" else 1}
                               for name, s in configs.items()},
            "counts": {"requests_per_round": size.requests, "requests": sum(map(len, rounds)),
                       "configurations": len(configs)}}))
        return
    import ray

    os.environ.setdefault("RAY_worker_niceness", "0")  # replicas at the in-process engine's priority, not 15
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")  # replicas of 1 and of 2 live side by side
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="synthcpt-scale-") as tmp, ExitStack() as stack:
        def opened(name: str, settings):
            return stack.enter_context(open_engine(settings, Path(tmp) / name))

        in_process = opened("in-process", configs["in_process"])
        one = opened("ray-1", configs["ray_1_replica"])
        overhead = compare({"in_process": in_process, "ray_1_replica": one}, rounds[:size.rounds])
        # Two replicas run alone, on the same rounds' sizes: four models at once would not fit in RAM here.
        for engine in (in_process, one):
            engine.close()
        release_models()
        two = opened("ray-2", configs["ray_2_replicas"])
        scaling = {"ray_1_replica": overhead["ray_1_replica"], **compare({"ray_2_replicas": two}, rounds[size.rounds:])}
        replicas = two.backend.replica_stats()["replicas"]
    ray.shutdown()
    ratio = overhead["ray_1_replica"]["tok_s"] / overhead["in_process"]["tok_s"]
    figures = {
        "benchmark": "scale", "quick": size is QUICK, "requests_per_round": size.requests,
        "max_tokens": size.max_tokens, "rounds": size.rounds, "cpu_cores": len(os.sched_getaffinity(0)),
        "overhead": {**overhead, "ratio": round(ratio, 3), "target": 0.9},
        "scaling": {**scaling, "ratio": round(scaling["ray_2_replicas"]["tok_s"] / scaling["ray_1_replica"]["tok_s"], 3),
                    "answered_per_replica": [r["answered"] for r in replicas]},
        "projection_entigraph_455m_8b": {
            "assumptions": {"tokens": ENTIGRAPH_TOKENS, "h100_replica_tok_s": H100_TOKENS_PER_SECOND,
                            "dollars_per_gpu_hour": H100_DOLLARS_PER_HOUR, "replica_load_minutes": REPLICA_LOAD_MINUTES,
                            "ray_overhead": round(min(ratio, 1.0), 3)},
            "h100s": projection(ratio)},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
