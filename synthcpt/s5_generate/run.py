"""The generate stage: run each selected generator to its token budget, write its records, build the
mix, and measure how much of the entity graph the synthetic text covers.

Budgets are deterministic: a generator's requests have a fixed order, and its records are the
shortest prefix of that order whose tokens reach the target. Requests go out in waves sized from
the tokens per request seen so far, so little is generated past the target; whatever was, stays in
the engine's cache. A rerun (after a kill, or with a larger budget) regenerates the same requests,
gets the finished ones from the cache, and so yields the same records.

A two-step generator's first step (`TwoStepGenerator.first_step`) runs whole before its requests, under its own
engine step name; its results are cached like the rest, so a rerun gets them back and builds the same
requests from them.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from synthcpt.atomic import write_text
from synthcpt.cards import write_dataset_card
from synthcpt.engine.settings import BACKENDS
from synthcpt.engine.tokens import text_tokenizer
from synthcpt.engine.types import Request, Result
from synthcpt.errors import SynthcptError
from synthcpt.progress import console
from synthcpt.run_folder import RunFolder, step_name
from synthcpt.s5_generate.base import Corpus, GenerationContext, Generator, Rejected, TwoStepGenerator
from synthcpt.s5_generate.mix import quality_reason
from synthcpt.s5_generate.records import INSTRUCTION_SCHEMA, RECORD_SCHEMA, count_tokens, write_shards
from synthcpt.s5_generate.settings import GENERATORS, GenerateSettings
from synthcpt.stage import Config, StageContext
from synthcpt.stats import CorpusCoverage, GenerateStats, GeneratorStats

# Requests of the next wave: the tokens still missing over the tokens per request so far, plus a
# margin, so most budgets finish in two or three waves; never fewer than `generate.min_wave`.
WAVE_MARGIN = 1.15
# A backend whose every wave costs a completion window (a provider batch, up to 24 h) asks for more at
# once, so the first wave almost always reaches the target and no top-up costs another day.
SINGLE_WAVE_MARGIN = 1.6
# A wave's yield sizes the next one, and a small wave is a biased sample (its requests come from the
# first documents and styles): at most WAVE_GROWTH times the requests sent before it, a wave overshoots
# a budget by a wave or two more at worst, never by a multiple of it (cpu-demo's WRAP: 9 requests, then
# 136 for 6,214 tokens where 2,000 were asked). Not for single-wave backends: each wave costs them a day.
WAVE_GROWTH = 4
# Ordering key of records made without the model: before every request.
DIRECT = -1


@dataclass
class Outcome:
    """What one generator produced: records in budget order, and its counts."""

    name: str
    target: int | None
    records: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    cached: int = 0
    waves: int = 0
    rejected: Counter = field(default_factory=Counter)
    truncated: int = 0  # answers cut off by max_tokens that still gave records (whole sections, Q/A pairs)
    produced_records: int = 0
    produced_tokens: int = 0

    def stats(self) -> GeneratorStats:
        return GeneratorStats(target_tokens=self.target, requests=self.requests, cached=self.cached, waves=self.waves,
                              rejected=dict(sorted(self.rejected.items())), truncated=self.truncated,
                              produced_records=self.produced_records, produced_tokens=self.produced_tokens,
                              records=len(self.records), tokens=sum(r["n_tokens"] for r in self.records))


def load_corpus(run: RunFolder) -> Corpus:
    """The corpus a round generates from: all of it in round 1; in a later round, the passages the round
    before's model missed on the quiz (and their documents)."""
    documents, chunks = run.documents(), run.chunks()
    if run.round > 1:
        missed = run.previous_round().missed_chunks()
        chunks = [c for c in chunks if c.chunk_id in missed]
        documents = [d for d in documents if d.doc_id in {c.doc_id for c in chunks}]
    corpus = Corpus(documents, chunks, summaries=run.summaries(), graph_dir=run.graph_dir)
    for row in sorted(run.entities(), key=lambda r: -(r.get("salience") or 0.0)):
        corpus.entities.setdefault(row["doc_id"], []).append(row["entity"])
    return corpus


def context_window(engine_settings) -> int | None:
    """The generator model's context length: set, or read from its HF config (vllm backend)."""
    if engine_settings.max_model_len:
        return engine_settings.max_model_len
    if not BACKENDS.get(engine_settings.backend).local_model:
        return None
    from transformers import AutoConfig

    from synthcpt.models import resolve

    return getattr(AutoConfig.from_pretrained(resolve(engine_settings.model)), "max_position_embeddings", None)


def generation_context(config: Config, run: RunFolder | Path, tokenizer=None) -> GenerationContext:
    """What the generators of `run`'s round get (a path: the run seen from round 1)."""
    run = run if isinstance(run, RunFolder) else RunFolder(run)
    return GenerationContext(settings=round_settings(config.generate, run.round), corpus=load_corpus(run),
                             seed=config.run.seed,
                             model=config.engine.model, context_window=context_window(config.engine),
                             tokenizer=tokenizer if tokenizer is not None else text_tokenizer(config.engine, "generate"),
                             prompts_dir=config.run.prompts_dir, round=run.round)


def round_settings(settings: GenerateSettings, round: int) -> GenerateSettings:
    """The generate settings of a round: as set in round 1; after it, only the generators that write from a
    passage (the others would write about what the model already knows), sharing the round's budget, and
    no copies of the raw corpus in the mix: round 1's mix holds them, and the train stage replays it."""
    if round == 1:
        return settings
    chosen = [name for name in settings.generators if GENERATORS.get(name).from_passages]
    if not chosen:
        targeting = ", ".join(n for n in GENERATORS.names() if GENERATORS.get(n).from_passages)
        raise SynthcptError(f"round {round} generates for the passages the model missed, and none of "
                            f"generate.generators writes from a passage (those that do: {targeting})")
    return settings.model_copy(update={"generators": chosen, "mix": settings.mix.model_copy(update={"raw_ratio": 0.0})})


def generators(gen_ctx: GenerationContext) -> list[Generator]:
    return [GENERATORS.get(name)(gen_ctx) for name in gen_ctx.settings.generators]


def check_inputs(ctx: StageContext) -> None:
    """The corpus, the outputs of the earlier stages the selected generators need, and in a later round the
    round before's probe."""
    ctx.input("ingest")
    ctx.require(GENERATORS.get(name) for name in ctx.settings.generators)
    if ctx.run.round > 1 and not ctx.run.previous_round().is_done("probe"):
        raise SynthcptError(f"round {ctx.run.round} needs round {ctx.run.round - 1}'s probe, which has not run")


def prompt_files(config: Config) -> list[str]:
    """The prompt files of the selected generators, for the stage's fingerprint."""
    settings = config.generate
    return sorted({name for g in settings.generators for name in GENERATORS.get(g).prompt_files(settings)})


def wave_size(tokens: int, per_request: float, min_wave: int, margin: float = WAVE_MARGIN) -> int:
    """Requests expected to yield `tokens` usable tokens at `per_request` each, with the margin."""
    return max(min_wave, math.ceil(margin * tokens / max(1.0, per_request)))


def next_wave(missing: int, sent: int, generated: int, last: int, max_tokens: int, min_wave: int,
              single_wave: bool) -> int:
    """Requests of the next wave, `missing` usable tokens short of the target after `sent` requests
    yielded `generated` (the last wave was `last` requests)."""
    if sent and not generated:  # nothing accepted yet: widen the search geometrically
        return 2 * last
    per_request = generated / sent if generated else max_tokens
    size = wave_size(missing, per_request, min_wave, SINGLE_WAVE_MARGIN if single_wave else WAVE_MARGIN)
    return size if single_wave or not sent else min(size, WAVE_GROWTH * sent)


def step(generator: Generator) -> str:
    """The engine step of a generator: its usage, cache statistics and plan are reported under it (a later
    round's under the round's step name)."""
    return f"{step_name('generate', generator.ctx.round)}: {generator.name}"


def first_step(generator: TwoStepGenerator) -> str:
    """The engine step of a two-step generator's first step."""
    return f"{step(generator)}: {generator.first_step_name}"


def prepare(generator: Generator, engine) -> Counter:
    """Run a two-step generator's first step through the engine and hand it the results; its rejections."""
    if not isinstance(generator, TwoStepGenerator):
        return Counter()
    requests = list(generator.first_step())
    return generator.prepare(engine.generate(requests, description=first_step(generator)) if requests else ())


def cached_results(engine_settings, run_dir: Path, requests: Iterable[Request]) -> list[Result]:
    """The results of `requests` that the run's response cache already holds (the plan generates nothing)."""
    from synthcpt.engine.cache import ResponseCache, request_key
    from synthcpt.engine.engine import CACHE_FILE, cache_dir, result_of

    path = cache_dir(run_dir) / CACHE_FILE
    if not path.is_file():
        return []
    cache = ResponseCache(path)
    try:
        stored = ((request, cache.get(request_key(engine_settings.model, request))) for request in requests)
        return [result_of(request, response, cached=True) for request, response in stored if response is not None]
    finally:
        cache.close()


def planned_requests(ctx: StageContext) -> dict[str, Iterable[Request]]:
    """For `synthcpt plan`: the requests each LLM generator sends to reach its token target, in order, if
    its responses are as long as those it has already produced (else max_tokens) and none is rejected;
    a two-step generator's first step whole, and its second as if the first's missing results were full."""
    from synthcpt.engine.plan import mean_completion_tokens

    check_inputs(ctx)
    gen_ctx = generation_context(ctx.config, ctx.run)
    targets = gen_ctx.settings.targets()
    planned = {}
    for generator in generators(gen_ctx):
        if not generator.max_tokens or targets[generator.name] == 0:
            continue  # mined from the corpus without a model, or nothing asked of it
        if isinstance(generator, TwoStepGenerator):
            first = list(generator.first_step())
            if first:
                planned[first_step(generator)] = first
            generator.prepare(cached_results(ctx.config.engine, ctx.run.dir, first), planning=True)
        requests, target = generator.requests(), targets[generator.name]
        if target is not None:
            per_request = mean_completion_tokens(ctx.run.dir, step(generator)) or generator.max_tokens
            requests = islice(requests, wave_size(target, per_request, ctx.settings.min_wave))
        planned[step(generator)] = requests
    return planned


def _with_tokens(records: list[dict[str, Any]], tokenizer) -> list[dict[str, Any]]:
    for record, n in zip(records, count_tokens(tokenizer, [r["text"] for r in records])):
        record["n_tokens"] = n
    return records


def _numbered(requests: Iterable[Request], start: int) -> Iterator[Request]:
    for order, request in enumerate(requests, start):
        request.metadata["order"] = order
        yield request


def _usable(generator: Generator, records: list[dict[str, Any]], outcome: Outcome) -> list[dict[str, Any]]:
    """The records that pass the quality rules: only they count toward the token target, so a budget
    buys usable text, and only they reach the mix. The rest are counted as rejected by their rule."""
    usable = []
    for record in records:
        reason = quality_reason(generator, record, generator.stage.mix)
        if reason:
            outcome.rejected[reason] += 1
        else:
            usable.append(record)
    return usable


def run_generator(generator: Generator, engine, target: int | None, tokenizer) -> Outcome:
    """Requests in waves until the usable tokens reach `target`, each sized from the usable tokens per
    request seen so far (max_tokens at first); a backend whose waves each cost a completion window
    (`single_wave`) gets waves with a wider margin, so one batch usually carries a generator's work.
    Waves grow at most WAVE_GROWTH-fold, except on a single-wave backend. Only what the generator's
    `select` keeps counts toward the target."""
    outcome = Outcome(generator.name, target)
    single_wave = engine is not None and engine.plugin.single_wave
    ranked: list[tuple[int, int, dict[str, Any]]] = [
        (DIRECT, i, r) for i, r in enumerate(_usable(generator, _with_tokens(list(generator.records()), tokenizer),
                                                     outcome))]
    direct = sum(r["n_tokens"] for _, _, r in ranked)
    kept, dropped = _select(generator, ranked)
    produced = sum(r["n_tokens"] for r in kept)
    outcome.rejected.update(prepare(generator, engine))
    pending = generator.requests()
    sent = generated = size = 0
    while target is None or produced < target:
        if target is None:
            wave: Iterable[Request] = _numbered(pending, sent)
        else:
            size = next_wave(target - produced, sent, generated, size, generator.max_tokens,
                             generator.stage.min_wave, single_wave)
            wave = list(_numbered(islice(pending, size), sent))
            if not wave:
                break
        outcome.waves += 1
        for result in engine.generate(wave, description=step(generator)):
            sent += 1
            outcome.cached += result.cached
            if not result.texts:  # failed in the engine (a malformed JSON answer keeps its text for parse)
                outcome.rejected["engine_error"] += 1
                continue
            parsed = generator.parse(result)
            if isinstance(parsed, Rejected):
                outcome.rejected[parsed.reason] += 1
                continue
            outcome.truncated += result.truncated
            order = result.request.metadata["order"]
            ranked.extend((order, part, record)
                          for part, record in enumerate(_usable(generator, _with_tokens(parsed, tokenizer), outcome)))
        kept, dropped = _select(generator, ranked)
        produced = sum(r["n_tokens"] for r in kept)
        generated = produced - direct
        if target is None:
            break
    outcome.requests = sent
    outcome.rejected.update(dropped)
    outcome.produced_records, outcome.produced_tokens = len(kept), produced
    total = 0
    for record in kept:
        if target is not None and total >= target:
            break
        outcome.records.append(record)
        total += record["n_tokens"]
    return outcome


def _select(generator: Generator, ranked: list[tuple[int, int, dict[str, Any]]]
            ) -> tuple[list[dict[str, Any]], Counter]:
    """The generator's selection of its records so far, in budget order (request order, then part)."""
    ranked.sort(key=lambda item: (item[0], item[1]))
    return generator.select([record for _, _, record in ranked])


def _coverage(graph_dir: Path | None, records: list[dict[str, Any]]) -> dict[str, CorpusCoverage] | None:
    if graph_dir is None:
        return None
    from synthcpt.s5_generate.coverage import coverage

    synthetic = [{"doc_id": r["doc_id"], "text": r["text"]} for r in records if r["generator"] != "raw"]
    entigraph = [{"doc_id": r["doc_id"], "text": r["text"]} for r in records if r["generator"] == "entigraph"]
    return {"entigraph": coverage(graph_dir, entigraph), "all": coverage(graph_dir, synthetic)}


def generate(ctx: StageContext) -> GenerateStats:
    from synthcpt.engine import open_engine
    from synthcpt.s5_generate.mix import build_mix

    config, out = ctx.config, ctx.out
    run_dir = ctx.run.dir
    check_inputs(ctx)
    ctx.input("exam")  # the leak guard keeps the exam's questions out of the mix
    gen_ctx = generation_context(config, ctx.run)
    if ctx.run.round > 1 and not gen_ctx.corpus.chunks:
        raise SynthcptError(f"round {ctx.run.round}: round {ctx.run.round - 1}'s model answered every quiz question, "
                            f"so no passage is left to generate for: rounds 1 to {ctx.run.round - 1} are complete "
                            f"(run.rounds={ctx.run.round - 1} finishes the run with them)")
    settings = gen_ctx.settings
    targets = settings.targets()
    outcomes: dict[str, Outcome] = {}
    with open_engine(config.engine, run_dir) as engine:
        for generator in generators(gen_ctx):
            outcome = run_generator(generator, engine, targets[generator.name], gen_ctx.tokenizer)
            outcomes[generator.name] = outcome
            write_shards(ctx.run.generator_folder(generator.name), [_record_only(r) for r in outcome.records],
                         RECORD_SCHEMA, settings.shard_records)
            console.print(f"generate: {generator.name}: {len(outcome.records)} records, "
                          f"{sum(r['n_tokens'] for r in outcome.records):,} tokens")
        engine_usage = engine.usage.as_dict()

    for name in set(GENERATORS.names()) - set(settings.generators):
        shutil.rmtree(ctx.run.generator_folder(name), ignore_errors=True)  # an earlier config's, not in the mix
    mix = build_mix({name: o.records for name, o in outcomes.items()}, gen_ctx.corpus.documents,
                    ctx.run.exam(), settings.mix, config.run.seed,
                    qa_generators={g for g in settings.generators if settings.text_kind(g) == "qa"})
    write_shards(ctx.run.mix, [_record_only(r) for r in mix.records], RECORD_SCHEMA, settings.shard_records)
    pairs = [{"id": r["id"], **r["pair"], "doc_id": r["doc_id"]}
             for o in outcomes.values() for r in o.records if "pair" in r and r["id"] in mix.kept_ids]
    write_shards(ctx.run.instructions, pairs, INSTRUCTION_SCHEMA, settings.shard_records)
    write_text(out / "leaks.jsonl", "".join(json.dumps(leak) + "\n" for leak in mix.leaks))

    coverage = _coverage(gen_ctx.corpus.graph_dir, mix.records)
    if coverage is not None:
        ctx.run.write_coverage(coverage)
    stats = GenerateStats(targets=targets, generators={n: o.stats() for n, o in outcomes.items()}, mix=mix.stats,
                          instructions=len(pairs), engine=engine_usage,
                          coverage={name: part.overall() for name, part in coverage.items()} if coverage else None)
    ctx.run.write_stats("generate", stats)
    write_dataset_card(ctx.run, config)
    return stats


def _record_only(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record[key] for key in RECORD_SCHEMA}
