"""A generation run on a Ray cluster in its own process (for the driver-kill test):
`python -m tests.engine.ray_worker RUN_DIR ADDRESS N OUT` runs N requests through the ray backend (one
replica of the embedded model on the cluster at ADDRESS: what the test checks lives in the driver) and
writes one JSON record per request to OUT, sorted, when all are done."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from synthcpt.atomic import write_text
from synthcpt.engine import Request, Sampling, open_engine
from synthcpt.engine.settings import engine_settings

# Four documents whose prefix keys the rendezvous hash splits two and two over replicas 0 and 1.
TOPICS = ("lighthouse", "harbour", "railway", "glacier")


def requests(n: int) -> list[Request]:
    return [Request(messages=[{"role": "system", "content": f"You write one plain sentence about a {TOPICS[i % 4]}."},
                              {"role": "user", "content": f"Sentence number {i}, please."}],
                    sampling=Sampling(temperature=0.0, max_tokens=16), prefix_key=TOPICS[i % 4], metadata={"i": i})
            for i in range(n)]


def ray_settings(address: str | None = None, replicas: int = 2):
    """One-core replicas that each run two sequences at a time, so requests finish a few at a time
    (a run can be stopped half-way) and batches of two keep every replica fed."""
    return engine_settings()(backend="ray", ray={"address": address, "replicas": replicas, "batch_size": 2},
                             vllm={"kv_cache_gb": 0.5, "max_num_seqs": 2})


def main(run_dir: Path, address: str, n: int, out: Path) -> None:
    with open_engine(ray_settings(address, replicas=1), run_dir) as engine:
        records = [{"i": r.request.metadata["i"], "texts": r.texts, "ok": r.ok}
                   for r in engine.generate(requests(n), description="sentences")]
    write_text(out, "".join(json.dumps(r) + "\n" for r in sorted(records, key=lambda r: r["i"])))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
