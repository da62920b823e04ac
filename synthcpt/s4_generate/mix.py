"""The training mix: the generators' usable records that pass the evaluation-leak guard and
deduplication, plus the raw corpus repeated toward the configured raw:synthetic ratio, shuffled.

The quality rules (empty, too_short, refusal, repetition) are applied once, as each record is made
(`quality_reason`, so that only usable text counts toward a budget); the generators count those
rejections. Here every record is judged by the first rule it breaks, in this order: the leak guard
(eval_leak_question, eval_leak_options), exact_duplicate, near_duplicate, counted per generator and rule.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from synthcpt.run_folder import Document
from synthcpt.s4_generate.dedup import Deduplicator
from synthcpt.s4_generate.filters import quality_rejection
from synthcpt.s4_generate.leak import LeakGuard
from synthcpt.s4_generate.records import make_record
from synthcpt.s4_generate.settings import MixSettings
from synthcpt.stats import MixPart, MixStats

RAW = "raw"


@dataclass
class MixResult:
    records: list[dict[str, Any]]
    kept_ids: set[str]
    stats: MixStats
    leaks: list[dict[str, str]] = field(default_factory=list)


def quality_reason(generator: Any, record: dict[str, Any], settings: MixSettings) -> str | None:
    """The quality rule the record breaks, if any (the repetition rule for model-written text only)."""
    max_repetition = settings.max_repetition if generator.model_written else 1.0
    return quality_rejection(record["text"], record["n_tokens"], settings.min_tokens, max_repetition)


def raw_copies(raw_tokens: int, synthetic_tokens: int, ratio: float, max_repeats: int) -> int:
    """Copies of the raw corpus that bring raw:synthetic tokens nearest `ratio` (at least one)."""
    if ratio <= 0 or raw_tokens <= 0:
        return 0
    return max(1, min(max_repeats, round(ratio * synthetic_tokens / raw_tokens)))


def raw_records(documents: list[Document], copies: int) -> list[dict[str, Any]]:
    return [make_record(id=f"raw-{doc.doc_id}-{copy}", text=doc.text, generator=RAW, style="", doc_id=doc.doc_id,
                        n_tokens=doc.n_tokens)
            for copy in range(copies) for doc in documents]


def build_mix(synthetic: dict[str, list[dict[str, Any]]], documents: list[Document], questions: list[dict],
              settings: MixSettings, seed: int) -> MixResult:
    """`synthetic` maps each generator to its usable records in generation order."""
    guard = LeakGuard.from_questions(questions, [d.text for d in documents], settings.leak_ngram,
                                     settings.leak_threshold)
    dedup = Deduplicator(settings.near_duplicate, seed=seed + 1)
    kept: list[dict[str, Any]] = []
    rejected: dict[str, Counter] = defaultdict(Counter)
    leaks = []
    for generator, records in synthetic.items():
        for record in records:
            reason = None
            leak = guard.leaked(record["text"])
            if leak:
                reason = f"eval_leak_{leak.reason}"
                leaks.append({"id": record["id"], "generator": generator, "reason": leak.reason,
                              "evaluation_text": leak.evaluation_text})
            reason = reason or dedup.check(record["text"])
            if reason:
                rejected[generator][reason] += 1
            else:
                kept.append(record)

    synthetic_tokens = sum(r["n_tokens"] for r in kept)
    raw_tokens = sum(d.n_tokens for d in documents)
    copies = raw_copies(raw_tokens, synthetic_tokens, settings.raw_ratio, settings.raw_max_repeats)
    mixed = kept + raw_records(documents, copies)
    random.Random(seed).shuffle(mixed)

    per_generator = {}
    for generator in [*synthetic, RAW]:
        rows = [r for r in mixed if r["generator"] == generator]
        per_generator[generator] = MixPart(records=len(rows), tokens=sum(r["n_tokens"] for r in rows),
                                           rejected=dict(sorted(rejected[generator].items())))
    stats = MixStats(
        records=len(mixed),
        tokens=synthetic_tokens + raw_tokens * copies,
        synthetic_tokens=synthetic_tokens,
        raw_tokens=raw_tokens * copies,
        raw_copies=copies,
        raw_share=round(raw_tokens * copies / max(1, synthetic_tokens + raw_tokens * copies), 4),
        rejected=dict(sum(rejected.values(), Counter())),
        eval_texts_guarded=len(guard.texts),
        eval_texts_unguarded=guard.unguarded,
        eval_texts_in_corpus=guard.in_corpus,
        by_generator=per_generator,
    )
    return MixResult(mixed, {r["id"] for r in kept}, stats, leaks)
