"""The training mix: the generators' usable records that pass the evaluation-leak guard and
deduplication, held to the QA : document token ratio (`qa_share`), plus the raw corpus repeated
toward the configured raw:synthetic ratio, shuffled.

The quality rules (empty, too_short, refusal, repetition) are applied once, as each record is made
(`quality_reason`, so that only usable text counts toward a budget); the generators count those
rejections. Here every record is judged by the first rule it breaks, in this order: the leak guard
(eval_leak_question, eval_leak_options, eval_leak_same_question), exact_duplicate, near_duplicate,
counted per generator and rule; then the tail of the kind over its share (over_qa_share).

The ratio is held by cutting, never by repeating: the kind in excess keeps the shortest prefix of its
records whose tokens reach its share, each of its generators cut at the same fraction of its own
tokens (records are in budget order, so a prefix is what a smaller budget would have kept). The
share is then at or above `qa_share` by less than one record.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from synthcpt.questions import QAItem
from synthcpt.run_folder import Document
from synthcpt.s5_generate.dedup import Deduplicator
from synthcpt.s5_generate.filters import quality_rejection
from synthcpt.s5_generate.leak import LeakGuard
from synthcpt.s5_generate.records import make_record
from synthcpt.s5_generate.settings import MixSettings
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


def prefix_reaching(groups: dict[str, list[dict[str, Any]]], tokens: float) -> set[str]:
    """Ids of the shortest prefix of the groups' records, each group cut at the same fraction of its
    tokens, whose tokens reach `tokens`."""
    ranked = []
    for position, records in enumerate(groups.values()):
        total, done = sum(r["n_tokens"] for r in records) or 1, 0
        for record in records:
            done += record["n_tokens"]
            ranked.append((done / total, position, record))
    kept, count = set(), 0
    for _, _, record in sorted(ranked, key=lambda item: item[:2]):
        if count >= tokens:
            break
        kept.add(record["id"])
        count += record["n_tokens"]
    return kept


def over_share(kept: dict[str, list[dict[str, Any]]], qa_generators: set[str], qa_share: float) -> set[str]:
    """Ids of the records cut so that QA tokens are `qa_share` of the synthetic tokens (see above)."""
    qa = {g: rows for g, rows in kept.items() if g in qa_generators}
    documents = {g: rows for g, rows in kept.items() if g not in qa_generators}
    qa_tokens, document_tokens = (sum(r["n_tokens"] for rows in part.values() for r in rows) for part in (qa, documents))
    if not qa_tokens or not document_tokens:
        return set()
    if qa_tokens / (qa_tokens + document_tokens) > qa_share:
        excess, keep = qa, qa_share / (1 - qa_share) * document_tokens
    else:
        excess, keep = documents, (1 - qa_share) / qa_share * qa_tokens
    return {r["id"] for rows in excess.values() for r in rows} - prefix_reaching(excess, keep)


def build_mix(synthetic: dict[str, list[dict[str, Any]]], documents: list[Document], questions: list[QAItem],
              settings: MixSettings, seed: int, qa_generators: set[str] = frozenset()) -> MixResult:
    """`synthetic` maps each generator to its usable records in generation order; `qa_generators` are those
    whose records are QA pairs (the ratio is held when `settings.qa_share` is set)."""
    guard = LeakGuard.from_questions(questions, [d.text for d in documents], settings.leak_ngram,
                                     settings.leak_threshold, settings.leak_question_similarity)
    dedup = Deduplicator(settings.near_duplicate, seed=seed + 1)
    kept: list[dict[str, Any]] = []
    rejected: dict[str, Counter] = defaultdict(Counter)
    leaks = []
    kept_by_generator: dict[str, list[dict[str, Any]]] = {}
    for generator, records in synthetic.items():
        for record in records:
            reason = None
            leak = guard.leaked(record["text"]) or guard.same_question(record["question"])
            if leak:
                reason = f"eval_leak_{leak.reason}"
                leaks.append({"id": record["id"], "generator": generator, "reason": leak.reason,
                              "evaluation_text": leak.evaluation_text})
            reason = reason or dedup.check(record["text"])
            if reason:
                rejected[generator][reason] += 1
            else:
                kept_by_generator.setdefault(generator, []).append(record)
    cut = over_share(kept_by_generator, qa_generators, settings.qa_share) if settings.qa_share is not None else set()
    for generator, records in kept_by_generator.items():
        rejected[generator]["over_qa_share"] += sum(r["id"] in cut for r in records)
        kept.extend(r for r in records if r["id"] not in cut)
    qa_tokens = sum(r["n_tokens"] for r in kept if r["generator"] in qa_generators)

    synthetic_tokens = sum(r["n_tokens"] for r in kept)
    raw_tokens = sum(d.n_tokens for d in documents)
    copies = raw_copies(raw_tokens, synthetic_tokens, settings.raw_ratio, settings.raw_max_repeats)
    mixed = kept + raw_records(documents, copies)
    random.Random(seed).shuffle(mixed)

    per_generator = {}
    for generator in [*synthetic, RAW]:
        rows = [r for r in mixed if r["generator"] == generator]
        per_generator[generator] = MixPart(records=len(rows), tokens=sum(r["n_tokens"] for r in rows),
                                           rejected=dict(sorted((+rejected[generator]).items())))
    stats = MixStats(
        records=len(mixed),
        tokens=synthetic_tokens + raw_tokens * copies,
        synthetic_tokens=synthetic_tokens,
        raw_tokens=raw_tokens * copies,
        raw_copies=copies,
        raw_share=round(raw_tokens * copies / max(1, synthetic_tokens + raw_tokens * copies), 4),
        rejected=dict(sum(rejected.values(), Counter())),
        qa_share=round(qa_tokens / synthetic_tokens, 4) if qa_generators & set(synthetic) and synthetic_tokens else None,
        eval_texts_guarded=len(guard.texts),
        eval_texts_unguarded=guard.unguarded,
        eval_texts_in_corpus=guard.in_corpus,
        by_generator=per_generator,
    )
    return MixResult(mixed, {r["id"] for r in kept}, stats, leaks)
