"""Throughput of the synthetic generators on this machine, each against a baseline from the same run.

- LLM generators (entigraph on entity pairs and triples, wrap, rc_llm, bonito and qa on chunks,
  active_reading on documents, focal on the questions of its first step, each rewriting its passage):
  synthetic tokens per second through the generator layer (requests, waves, parsing, token
  counting), with a fresh cache, against the engine's own rate on the very same requests sent in one batch
  (the baseline): the ratio is what the generator layer costs (1.0: nothing). For active_reading the
  baseline sends its strategy-list requests and the applications of the layer's lists in one batch,
  which the layer cannot (the applications wait for the lists); likewise focal's question lists and
  rewrites.
- Pattern mining (rc_mined): documents per second, against splitting the same documents into
  sentences alone (the baseline every mining pass starts with).

Every generator runs with the same settings (max_tokens, requests). Prints one JSON object on its
last stdout line.

    python bench/generate.py --quick
    python bench/generate.py --quick --generators active_reading   # one generator
    python bench/generate.py --dry-run   # the run folders and each generator's planned requests, no model
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for key, value in {"VLLM_CPU_OMP_THREADS_BIND": "0-1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
                   "VLLM_CPU_KVCACHE_SPACE": "2", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}.items():
    os.environ.setdefault(key, value)

# Imported here, not where they are called, so that a rename breaks `--dry-run` too.
from synthcpt.config import load_config
from synthcpt.engine import Request, Sampling, open_engine
from synthcpt.engine.backends.vllm import shared_llm
from synthcpt.models import resolve
from synthcpt.pipeline import Runner
from synthcpt.plugins import GENERATORS
from synthcpt.s5_generate.base import TwoStepGenerator
from synthcpt.s5_generate.generators.rc_mined import RcMined
from synthcpt.s5_generate.mining import split_sentences
from synthcpt.s5_generate.run import cached_results, generation_context, run_generator

DEMO = ROOT / "examples" / "quality" / "quality-demo.jsonl"
SHARED_QUALITY = ROOT.parent / "shared" / "data" / "leval" / "quality.jsonl"
LLM_GENERATORS = ("entigraph", "wrap", "rc_llm", "bonito", "active_reading", "qa", "focal")


def prepare_run(corpus: Path, run_dir: Path, overrides: list[str], stages: list[str]):
    """The run's config, and the stages the generators read (no model calls: spaCy entities)."""
    config = load_config(None, [f"run.dir={run_dir}", f"ingest.inputs=[{corpus}]", "entities.extractor=spacy",
                                *overrides])
    Runner(config, reporter=lambda _: None).execute(stages, force=set())
    return config


def warm_up(config, run_dir: Path) -> None:
    """Load the model once (the engine keeps it for the process) so no measurement pays for it."""
    with open_engine(config.engine, run_dir / "warm-up") as engine:
        list(engine.generate([Request(prompt="Hello", sampling=Sampling(max_tokens=4))], description="warm-up"))


def cold_prefix_cache(config) -> None:
    """Empty vLLM's prefix cache, so neither measured run inherits the other's prefill."""
    shared_llm(config.engine, resolve(config.engine.model)).reset_prefix_cache()


def bench_llm(config, run_dir: Path, name: str, requests: int, dry_run: bool = False) -> dict:
    """One generator through the generator layer, then the same requests straight to the engine,
    each from a cold prefix cache. Dry run: the requests it plans and its budget, no model call."""
    gen_ctx = generation_context(config, run_dir)
    generator = GENERATORS.get(name)(gen_ctx)
    two_step = isinstance(generator, TwoStepGenerator)
    if two_step:
        generator.prepare([], planning=True)  # its first step assumed full
    planned = list(islice(generator.requests(), requests))
    # A budget the first wave (min_wave: the requests asked for) meets even when half its answers are
    # rejected and the rest are half max_tokens long: one wave, the requests the baseline sends at once.
    # (A second wave of 8 on two cores measured the wave's drain, not the layer: qa 0.72x at half max_tokens.)
    target = requests * generator.max_tokens // 4
    if dry_run:
        return {"planned": len(planned), "first_step": len(list(generator.first_step())) if two_step else 0,
                "max_tokens": generator.max_tokens, "target_tokens": target}
    # A structured generator's JSON schema is compiled to a grammar once per engine (vLLM keeps it): compiled
    # here, untimed, the layer (which runs first) does not pay for it alone.
    schemas = [r for r in [*(list(generator.first_step())[:1] if two_step else []), *planned[:1]] if r.json_schema]
    if schemas:
        with open_engine(config.engine, run_dir / f"warm-{name}") as engine:
            list(engine.generate(schemas[:1], description=f"warm {name}"))
    cold_prefix_cache(config)
    with open_engine(config.engine, run_dir / f"layer-{name}") as engine:
        start = time.perf_counter()
        outcome = run_generator(generator, engine, target, gen_ctx.tokenizer)
        layer_seconds = time.perf_counter() - start
        layer_usage = engine.usage.as_dict()
    baseline = GENERATORS.get(name)(gen_ctx)
    first = list(baseline.first_step()) if two_step else []
    if two_step:
        baseline.prepare(cached_results(config.engine, run_dir / f"layer-{name}", first))  # the layer's first step
    sent = first + list(islice(baseline.requests(), outcome.requests))
    cold_prefix_cache(config)
    with open_engine(config.engine, run_dir / f"baseline-{name}") as engine:
        start = time.perf_counter()
        completion = sum(r.completion_tokens for r in engine.generate(sent, description=f"baseline {name}"))
        base_seconds = time.perf_counter() - start
    layer_rate = layer_usage["completion_tokens"] / layer_seconds
    base_rate = completion / base_seconds
    return {"requests": outcome.requests, "planned": len(planned), "waves": outcome.waves,
            "records": len(outcome.records), "rejected": dict(outcome.rejected),
            "prompt_tokens": layer_usage["prompt_tokens"],
            # None where the backend cannot see the server's prefix cache (a remote API).
            "prefix_cache_hit": (round(layer_usage["prefix_cached_tokens"] / max(1, layer_usage["prompt_tokens"]), 3)
                                 if layer_usage["prefix_cached_tokens"] is not None else None),
            "completion_tokens": layer_usage["completion_tokens"],
            "synthetic_tokens": sum(r["n_tokens"] for r in outcome.records),
            "seconds": round(layer_seconds, 2), "completion_tokens_per_s": round(layer_rate, 1),
            "synthetic_tokens_per_s": round(sum(r["n_tokens"] for r in outcome.records) / layer_seconds, 1),
            "baseline_completion_tokens_per_s": round(base_rate, 1),
            "ratio_vs_engine": round(layer_rate / base_rate, 3) if base_rate else None}


def bench_mining(config, run_dir: Path, repeats: int, dry_run: bool = False) -> dict:
    """Mining against sentence splitting alone, on the same documents. Dry run: the documents, no spaCy."""
    gen_ctx = generation_context(config, run_dir)
    documents = gen_ctx.corpus.documents
    if dry_run:
        return {"documents": len(documents), "repeats": repeats}
    split_sentences(documents[0].text)  # load spaCy before timing
    start = time.perf_counter()
    for _ in range(repeats):
        for doc in documents:
            split_sentences(doc.text)
    split_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(repeats):
        mined = list(RcMined(gen_ctx).records())
    mine_seconds = time.perf_counter() - start
    n = len(documents) * repeats
    return {"documents": len(documents), "repeats": repeats, "records": len(mined),
            "examples_per_record": round(sum(r["text"].count("\n\n") for r in mined) / max(1, len(mined)), 1),
            "documents_per_s": round(n / mine_seconds, 2), "baseline_sentence_split_documents_per_s":
                round(n / split_seconds, 2), "ratio_vs_sentence_split": round(split_seconds / mine_seconds, 3)}


def dry_run_counts(results: dict) -> dict[str, int]:
    """What a dry run built: each LLM generator's planned requests, the mining corpus's documents."""
    counts = {f"{name}_planned": results[name]["planned"] for name in LLM_GENERATORS if name in results}
    if "rc_mined" in results:
        counts["rc_mined_documents"] = results["rc_mined"]["documents"]
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few requests and short answers (a few minutes)")
    parser.add_argument("--requests", type=int, help="requests per generator (default 8 quick, 32 full)")
    parser.add_argument("--max-tokens", type=int, help="max_tokens of every generator (default 64 quick, 256 full)")
    parser.add_argument("--model", default="default", help="engine model (default: the embedded one)")
    parser.add_argument("--generators", nargs="+", choices=[*LLM_GENERATORS, "rc_mined"],
                        default=[*LLM_GENERATORS, "rc_mined"], help="generators to measure (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="prepare the run folders (ingest, spaCy entities, "
                        "graph) and plan each generator's requests, then stop before loading the model")
    args = parser.parse_args()
    requests = args.requests or (8 if args.quick else 32)
    max_tokens = args.max_tokens or (64 if args.quick else 256)
    # min_wave: the layer's first wave is the requests asked for, not the default 32.
    overrides = [f"engine.model={args.model}", f"generate.min_wave={requests}",
                 f"generate.entigraph.max_tokens={max_tokens}",
                 f"generate.wrap.max_tokens={max_tokens}",
                 f"generate.rc_llm.max_tokens={max_tokens}", f"generate.bonito.max_tokens={max_tokens}",
                 "generate.bonito.format=instruct", f"generate.active_reading.max_tokens={max_tokens}",
                 # A strategy list holds several strategies: four answers' room.
                 f"generate.active_reading.strategies_max_tokens={4 * max_tokens}",
                 # A QA list holds several pairs: four answers' room too.
                 f"generate.qa.max_tokens={4 * max_tokens}", f"generate.focal.questions.max_tokens={4 * max_tokens}",
                 # The question's passage, not the whole story: the layer's cost is the same, the run
                 # a tenth as long on CPU.
                 f"generate.focal.max_tokens={max_tokens}", "generate.focal.source=passage"]
    results: dict = {"requests_per_generator": requests, "max_tokens": max_tokens, "model": args.model}
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        tmp_dir = Path(tmp)
        config = prepare_run(DEMO, tmp_dir / "demo", overrides, ["ingest", "entities", "graph"])
        if not args.dry_run:
            warm_up(config, tmp_dir)
        for name in [g for g in LLM_GENERATORS if g in args.generators]:
            results[name] = bench_llm(config, tmp_dir / "demo", name, requests, args.dry_run)
        if "rc_mined" in args.generators:
            corpus = DEMO if args.quick or not SHARED_QUALITY.is_file() else SHARED_QUALITY
            mining_config = prepare_run(corpus, tmp_dir / "mining", [], ["ingest"])
            results["rc_mined"] = bench_mining(mining_config, tmp_dir / "mining", 1 if args.quick else 3, args.dry_run)
            results["rc_mined"]["corpus"] = corpus.name
    results["device"] = f"CPU, {os.cpu_count()} cores"
    if args.dry_run:
        results.update(dry_run=True, counts=dry_run_counts(results))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
