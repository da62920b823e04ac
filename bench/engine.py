"""Generation-engine benchmark. Every figure is a ratio measured in this one run, against a baseline
run on the same machine with the same model, prompts and settings:

1. synthcpt `vllm` backend vs raw `vllm.LLM.generate` (completion tokens/s; target >= 0.97);
2. an EntiGraph-shaped workload (long documents, several prompts each, more document tokens than the
   KV cache holds) in prefix-grouped vs shuffled order, prefix caching on (target >= 3);
3. `openai` backend vs a plain asyncio loop of the openai client at the same concurrency, against
   the same local vLLM server (completion tokens/s; target >= 0.95);
4. `openai` backend vs the reference pattern, one blocking request at a time (speedup);
5. peak Python memory of a run streamed through the engine at two sizes (their ratio; flat is 1).

    python bench/engine.py --quick    # the openai comparisons and memory only: about 4 minutes on 2 CPU cores
    python bench/engine.py            # the full figures (16 documents of ~1,850 tokens; ~40 minutes on CPU)
    python bench/engine.py --dry-run  # every comparison's settings and requests, no model, no server

The last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import sys
import tempfile
import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # the last stdout line is the JSON

from synthcpt.engine import Request, Sampling, open_engine
from synthcpt.engine.backends.vllm import release_models, shared_llm
from synthcpt.engine.cache import Response, ResponseCache, request_key
from synthcpt.engine.server import local_server
from synthcpt.engine.settings import engine_settings
from synthcpt.models import load_tokenizer, resolve
from synthcpt.progress import console

CORPUS = ROOT / "examples" / "quality" / "quality-demo.jsonl"
TOPICS = ["a lighthouse", "a lost key", "the first snow", "a night train", "an old map", "a quiet library",
          "a broken clock", "a river crossing"]


@dataclass(frozen=True)
class Size:
    overhead_requests: int
    overhead_max_tokens: int
    documents: int
    prompts_per_document: int
    document_tokens: int
    kv_cache_gb: float
    max_model_len: int
    server_requests: int
    sequential_requests: int
    memory_sizes: tuple[int, int]
    rounds: int
    server_rounds: int
    # Quick mode skips the in-process vLLM comparisons: their two model loads and the shuffled EntiGraph
    # run took most of its 9 minutes on an idle machine, past 15 on a busy one, so it no longer caught a
    # slower openai backend in CI. What it keeps needs one server and no in-process model.
    in_process: bool = True


# EntiGraph sends dozens of prompts per document; 12 keeps the shuffled run affordable on 2 cores. The
# KV cache holds fewer documents than the full workload (about 6 of 16).
# The openai comparison alternates short rounds (ABBA...): on a shared 2-core machine the load drifts
# within a minute, and a few long rounds leave one side the busier minutes.
FULL = Size(512, 64, 16, 12, 1850, 0.5, 4096, 256, 32, (50_000, 500_000), 2, 4)
QUICK = replace(FULL, server_requests=32, sequential_requests=12, memory_sizes=(10_000, 50_000), server_rounds=6,
                in_process=False)


def log(message: str) -> None:
    console.print(f"[dim]{message}[/dim]")


def story_requests(n: int, max_tokens: int, offset: int = 0) -> list[Request]:
    return [Request(prompt=f"Write a short story about {TOPICS[i % len(TOPICS)]} (number {offset + i}).\n",
                    sampling=Sampling(temperature=0.8, top_p=0.95, max_tokens=max_tokens))
            for i in range(n)]


def chat_requests(n: int, max_tokens: int, offset: int) -> list[Request]:
    return [Request(messages=[{"role": "user", "content": f"In two sentences, describe {TOPICS[i % len(TOPICS)]} "
                                                          f"(variation {offset + i})."}],
                    sampling=Sampling(temperature=0.0, max_tokens=max_tokens, seed=offset + i))
            for i in range(n)]


def engine_run(settings, requests: list[Request], run_dir: Path) -> tuple[int, float]:
    """(completion tokens, seconds) of one run through the engine with an empty response cache."""
    start = time.perf_counter()
    with open_engine(settings, run_dir) as engine:
        for result in engine.generate(requests, description="bench"):
            assert result.ok, result.error
        tokens = engine.usage.completion_tokens
    return tokens, time.perf_counter() - start


def bench_vllm_overhead(size: Size, tmp: Path, dry_run: bool = False) -> dict:
    settings = engine_settings()()
    rounds = [story_requests(size.overhead_requests, size.overhead_max_tokens, offset=round_ * 10_000)
              for round_ in range(size.rounds)]
    if dry_run:
        return {"requests": sum(map(len, rounds)), "model": settings.model}
    from vllm import SamplingParams  # after the dry run's return: importing vLLM takes seconds

    llm = shared_llm(settings, resolve(settings.model))
    llm.generate(["Warm up."] * 8, SamplingParams(max_tokens=8), use_tqdm=False)
    raw_tokens = raw_seconds = ours_tokens = ours_seconds = 0.0
    for round_, requests in enumerate(rounds):
        params = [SamplingParams(temperature=r.sampling.temperature, top_p=r.sampling.top_p,
                                 max_tokens=r.sampling.max_tokens) for r in requests]
        # The same requests for both, the order swapped every round, so drift on the machine cancels out.
        for name in ("raw", "synthcpt") if round_ % 2 == 0 else ("synthcpt", "raw"):
            llm.reset_prefix_cache()
            if name == "raw":
                start = time.perf_counter()
                outputs = llm.generate([r.prompt for r in requests], params, use_tqdm=False)
                raw_seconds += time.perf_counter() - start
                raw_tokens += sum(len(c.token_ids) for o in outputs for c in o.outputs)
            else:
                tokens, seconds = engine_run(settings, requests, tmp / f"overhead{round_}")
                ours_seconds += seconds
                ours_tokens += tokens
        log(f"vllm overhead round {round_}: raw {raw_tokens / raw_seconds:.1f} tok/s, "
            f"synthcpt {ours_tokens / ours_seconds:.1f} tok/s")
    raw_rate, ours_rate = raw_tokens / raw_seconds, ours_tokens / ours_seconds
    return {"requests": size.overhead_requests * size.rounds, "raw_tok_s": round(raw_rate, 1),
            "synthcpt_tok_s": round(ours_rate, 1), "ratio": round(ours_rate / raw_rate, 3)}


def documents(size: Size, tokenizer) -> list[str]:
    """Windows of the demo stories, each with its own heading first (so no two share a prefix)."""
    ids = []
    for line in CORPUS.read_text().splitlines():
        ids += tokenizer(json.loads(line)["input"], add_special_tokens=False)["input_ids"]
    step = max(1, (len(ids) - size.document_tokens) // max(1, size.documents - 1))
    return [f"Archive record {d + 1}.\n" + tokenizer.decode(ids[(d * step) % (len(ids) - size.document_tokens):][
        :size.document_tokens]) for d in range(size.documents)]


def entigraph_requests(size: Size, tokenizer) -> list[Request]:
    requests = []
    for d, document in enumerate(documents(size, tokenizer)):
        names = list(dict.fromkeys(re.findall(r"\b[A-Z][a-z]{3,}\b", document)))[: 2 * size.prompts_per_document + 1]
        for p in range(size.prompts_per_document):
            a, b = names[p % len(names)], names[(p + 1) % len(names)]
            requests.append(Request(
                messages=[{"role": "system", "content": f"Document:\n{document}"},
                          {"role": "user", "content": f"Discuss how {a} and {b} are related in the document."}],
                sampling=Sampling(temperature=0.0, max_tokens=16), prefix_key=f"doc{d}"))
    random.Random(0).shuffle(requests)
    return requests


def bench_prefix_order(size: Size, tmp: Path, dry_run: bool = False) -> dict:
    settings = engine_settings()(vllm={"kv_cache_gb": size.kv_cache_gb}, max_model_len=size.max_model_len)
    requests = entigraph_requests(size, load_tokenizer(settings.model))
    figures = {"documents": size.documents, "prompts_per_document": size.prompts_per_document,
               "document_tokens": size.document_tokens, "kv_cache_gb": settings.vllm.kv_cache_gb}
    if dry_run:
        return {**figures, "requests": len(requests), "grouped_prefix_window": settings.prefix_window}
    llm = shared_llm(settings, resolve(settings.model))
    for name, window in (("shuffled", 1), ("grouped", settings.prefix_window)):
        llm.reset_prefix_cache()
        start = time.perf_counter()
        with open_engine(settings.model_copy(update={"prefix_window": window}), tmp / f"order-{name}") as engine:
            for result in engine.generate(requests, description=name):
                assert result.ok, result.error
            usage = engine.usage
        figures[f"{name}_s"] = round(time.perf_counter() - start, 1)
        # The in-process vLLM backend measures its prefix cache on every request it sends (a fresh folder:
        # none is answered from the response cache), so the figure is there.
        figures[f"{name}_prefix_hit"] = round(usage.prefix_cached_tokens / usage.prompt_tokens, 3)
        log(f"{name}: {figures[f'{name}_s']} s, prefix cache hit {figures[f'{name}_prefix_hit']:.0%}")
    figures["ratio"] = round(figures["shuffled_s"] / figures["grouped_s"], 2)
    return figures


async def plain_asyncio(base_url: str, requests: list[Request], concurrency: int) -> tuple[int, float]:
    """The baseline: the openai client in a plain asyncio loop, a semaphore for the concurrency.
    Returns (completion tokens, seconds)."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0)
    slots = asyncio.Semaphore(concurrency)

    async def one(request: Request) -> int:
        async with slots:
            s = request.sampling
            completion = await client.chat.completions.create(
                model="default", messages=request.messages, temperature=s.temperature, max_tokens=s.max_tokens,
                seed=s.seed)
            return completion.usage.completion_tokens

    start = time.perf_counter()
    tokens = sum(await asyncio.gather(*(one(r) for r in requests)))
    await client.close()
    return tokens, time.perf_counter() - start


def sequential(base_url: str, requests: list[Request]) -> float:
    """The reference pattern: one blocking API call at a time."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key="EMPTY", max_retries=0)
    start = time.perf_counter()
    tokens = 0
    for request in requests:
        s = request.sampling
        tokens += client.chat.completions.create(model="default", messages=request.messages,
                                                 temperature=s.temperature, max_tokens=s.max_tokens,
                                                 seed=s.seed).usage.completion_tokens
    return tokens / (time.perf_counter() - start)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openai_settings(base_url: str, concurrency: int):
    return engine_settings()(backend="openai", openai={"base_url": base_url, "concurrency": concurrency})


def bench_openai(size: Size, tmp: Path, dry_run: bool = False) -> tuple[dict, dict]:
    concurrency = 32  # as issue 22's comparison with Curator; 2 CPU cores are saturated from about 16
    warm_up = chat_requests(concurrency, 8, offset=-1000)
    rounds = [chat_requests(size.server_requests, 32, offset=round_ * 10_000) for round_ in range(size.server_rounds)]
    one_by_one = chat_requests(size.sequential_requests, 32, offset=90_000)
    if dry_run:
        # The settings as the run builds them once the server is up (the address it serves on).
        settings = openai_settings(f"http://127.0.0.1:{free_port()}/v1", concurrency)
        return ({"requests": sum(map(len, rounds)), "warm_up": len(warm_up),
                 "concurrency": settings.openai.concurrency}, {"requests": len(one_by_one)})
    with open(tmp / "server.log", "wb") as server_log, \
            local_server(engine_settings()(), free_port(), log=server_log) as base_url:
        settings = openai_settings(base_url, concurrency)
        asyncio.run(plain_asyncio(base_url, warm_up, concurrency))
        totals = {"plain": [0, 0.0], "synthcpt": [0, 0.0]}  # completion tokens, seconds
        for round_, requests in enumerate(rounds):
            # The same requests for both, the order swapped every round, so drift on the machine cancels out.
            for name in ("plain", "synthcpt") if round_ % 2 == 0 else ("synthcpt", "plain"):
                if name == "plain":
                    tokens, seconds = asyncio.run(plain_asyncio(base_url, requests, concurrency))
                else:
                    tokens, seconds = engine_run(settings, requests, tmp / f"openai{round_}")
                totals[name][0] += tokens
                totals[name][1] += seconds
            log(f"openai round {round_}: plain asyncio {totals['plain'][1]:.1f} s, "
                f"synthcpt {totals['synthcpt'][1]:.1f} s so far")
        one_at_a_time = sequential(base_url, one_by_one)
        log(f"one blocking request at a time: {one_at_a_time:.1f} tok/s")
    (plain_tokens, plain_s), (ours_tokens, ours_s) = totals["plain"], totals["synthcpt"]
    plain, ours = plain_tokens / plain_s, ours_tokens / ours_s
    # Temperature 0 and the same requests: both sides should generate the same tokens, which the figures show.
    return ({"requests": size.server_requests * size.server_rounds, "concurrency": concurrency,
             "plain_asyncio_completion_tokens": plain_tokens, "synthcpt_completion_tokens": ours_tokens,
             "plain_asyncio_s": round(plain_s, 1), "synthcpt_s": round(ours_s, 1),
             "plain_asyncio_tok_s": round(plain, 1), "synthcpt_tok_s": round(ours, 1), "ratio": round(ours / plain, 3)},
            {"sequential_tok_s": round(one_at_a_time, 1), "synthcpt_tok_s": round(ours, 1),
             "speedup": round(ours / one_at_a_time, 1)})


def memory_requests(n: int):
    for i in range(n):
        yield Request(prompt=f"Prompt {i}", sampling=Sampling(max_tokens=8), prefix_key=str(i % 97))


def fill_cache(settings, n: int, run_dir: Path) -> int:
    """The responses of memory_requests(n) stored in the run folder's cache; returns the responses it holds."""
    cache = ResponseCache(run_dir / "cache" / "engine.sqlite")
    batch = []
    for request in memory_requests(n):
        batch.append((request_key(settings.model, request), Response(["some text " * 20], ["stop"], 5, 8, 0.1)))
        if len(batch) == 10_000:
            cache.put_many("bench", batch)
            batch = []
    cache.put_many("bench", batch)
    rows = cache.count()
    cache.close()
    return rows


def peak_memory(n: int, run_dir: Path) -> int:
    """Peak Python heap (bytes) while streaming n requests through the engine, all answered by the cache
    (filled beforehand), so what is measured is the engine's own bookkeeping per request."""
    settings = engine_settings()()
    fill_cache(settings, n, run_dir)
    with open_engine(settings, run_dir) as engine:
        tracemalloc.start()
        count = sum(1 for _ in engine.generate(memory_requests(n), description="bench"))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert count == n
    return peak


def bench_memory(size: Size, tmp: Path, dry_run: bool = False) -> dict:
    small, large = size.memory_sizes
    if dry_run:
        # The warm-up's cache, filled as every measured run fills its own; no engine opened.
        return {"requests": [small, large], "cached": fill_cache(engine_settings()(), 100, tmp / "memory-warm-up")}
    peak_memory(100, tmp / "memory-warm-up")  # first-use allocations (imports, caches) are not per request
    peaks = [peak_memory(n, tmp / f"memory{n}") for n in (small, large)]
    log(f"peak memory: {peaks[0] / 2**20:.1f} MiB at {small:,} requests, {peaks[1] / 2**20:.1f} MiB at {large:,}")
    return {"requests": [small, large], "peak_mib": [round(p / 2**20, 2) for p in peaks],
            "ratio": round(peaks[1] / peaks[0], 2)}


# The comparisons that send requests to a model, by their key in the figures.
COMPARISONS = ("vllm_vs_raw_generate", "prefix_grouped_vs_shuffled", "openai_vs_plain_asyncio",
               "openai_vs_one_at_a_time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small workloads (CI)")
    parser.add_argument("--dry-run", action="store_true", help="build every comparison's settings and requests "
                        "(and the memory run's cache), then stop before loading a model or starting the server")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory() as folder, release_at_end():
        tmp = Path(folder)
        figures = {"mode": "quick" if size is QUICK else "full"}
        figures["memory"] = bench_memory(size, tmp, args.dry_run)
        if size.in_process:
            figures["vllm_vs_raw_generate"] = bench_vllm_overhead(size, tmp, args.dry_run)
            figures["prefix_grouped_vs_shuffled"] = bench_prefix_order(size, tmp, args.dry_run)
        figures["openai_vs_plain_asyncio"], figures["openai_vs_one_at_a_time"] = bench_openai(
            size, tmp, args.dry_run)
    if args.dry_run:
        figures.update(dry_run=True, counts={"memory_cached": figures["memory"]["cached"],
                                             **{f"{name}_requests": figures[name]["requests"] for name in COMPARISONS
                                                if name in figures}})
    print(json.dumps(figures))


@contextmanager
def release_at_end():
    """Stop the loaded models' engine processes before printing or failing, not at interpreter exit."""
    try:
        yield
    finally:
        release_models()


if __name__ == "__main__":
    main()
