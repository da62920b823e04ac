"""A generation run in its own process (for the kill -9 test): `python -m tests.engine.generate_worker
RUN_DIR BASE_URL N OUT` writes one JSON record per request to OUT, sorted, when all are done."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from synthcpt.atomic import write_text
from synthcpt.engine import Request, Sampling, open_engine
from synthcpt.engine.settings import engine_settings


def requests(n: int):
    for i in range(n):
        yield Request(messages=[{"role": "user", "content": f"Write a short line about the number {i}."}],
                      sampling=Sampling(temperature=0.0, max_tokens=24, seed=i), prefix_key=str(i % 5),
                      metadata={"i": i})


def main(run_dir: Path, base_url: str, n: int, out: Path) -> None:
    settings = engine_settings()(backend="openai", model="default", openai={"base_url": base_url, "concurrency": 4})
    with open_engine(settings, run_dir) as engine:
        records = [{"i": r.request.metadata["i"], "texts": r.texts, "ok": r.ok}
                   for r in engine.generate(requests(n), description="numbers")]
    write_text(out, "".join(json.dumps(r) + "\n" for r in sorted(records, key=lambda r: r["i"])))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
