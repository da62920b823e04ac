"""The entities stage: candidates from the chosen extractors, normalised, grounded, ranked and capped."""

from __future__ import annotations

import math
import re
import shutil
from collections import Counter
from typing import Any

from spacy.lang.en.stop_words import STOP_WORDS

from synthcpt.atomic import write_records
from synthcpt.engine.types import Request
from synthcpt.mentions import MentionMatcher
from synthcpt.plugins import EXTRACTORS
from synthcpt.progress import console
from synthcpt.run_folder import ENTITIES_FILE, ENTITY_SCHEMA, SUMMARIES_FILE, SUMMARY_SCHEMA
from synthcpt.s2_entities.extractor import ExtractionContext
from synthcpt.s2_entities.normalize import Candidate, Entity, merge_aliases, merge_candidates, merge_plurals
from synthcpt.s2_entities.settings import EntitiesSettings
from synthcpt.stage import StageContext
from synthcpt.stats import EntitiesStats

# Extractors' resumable work (e.g. spaCy's saved blocks), removed once the outputs are written.
WORK_DIR = "work"
# How much a mention counts toward salience, by how the entity was found: names over noun phrases.
TYPE_WEIGHT = {"NOUN": 0.5, "PROPN": 0.8}
AGREEMENT_BONUS = 1.5  # found by both spaCy and the LLM
WORD = re.compile(r"[^\W\d_]+")
# English prose is ~40-50% stop words; below this share a document is reported as likely not English.
MIN_ENGLISH_STOP_SHARE = 0.1


def likely_english(text: str) -> bool:
    words = WORD.findall(text[:20000].lower())
    return not words or sum(w in STOP_WORDS for w in words) / len(words) >= MIN_ENGLISH_STOP_SHARE


def _keep_phrase(entity: Entity, min_mentions: int) -> bool:
    """Noun phrases only when repeated: a phrase seen once is rarely what a document is about."""
    return entity.extractors != {"spacy"} or entity.type not in TYPE_WEIGHT or entity.seen >= min_mentions


def _salience(entity: Entity, mentions: int) -> float:
    bonus = AGREEMENT_BONUS if len(entity.extractors) > 1 else 1.0
    return TYPE_WEIGHT.get(entity.type, 1.0) * bonus * math.log1p(max(mentions, 1))


def document_entities(text: str, candidates: list[Candidate], settings: EntitiesSettings, counts: Counter
                      ) -> list[dict[str, Any]]:
    """The document's entity rows, most salient first, at most `max_entities_per_document`."""
    entities = merge_candidates(candidates, counts)
    counts["most_candidates"] = max(counts["most_candidates"], len(entities))
    counts["plurals_merged"] += merge_plurals(entities)
    for key in [k for k, e in entities.items() if not _keep_phrase(e, settings.spacy.min_phrase_mentions)]:
        del entities[key]
        counts["rare_phrase"] += 1
    counts["aliases_merged"] += merge_aliases(entities)
    mentions = MentionMatcher({k: e.aliases for k, e in entities.items()}).counts(text)
    # spaCy's candidates come from the text, so one never found there is a normalisation artefact; the
    # LLM's concepts are kept unnamed unless require_mention says otherwise.
    for key in [k for k, e in entities.items() if not mentions[k] and (settings.require_mention or
                                                                        "llm" not in e.extractors)]:
        del entities[key]
        counts["not_in_text"] += 1
    ranked = sorted(entities.values(), key=lambda e: (-_salience(e, mentions[e.key]), e.key))
    counts["over_cap"] += max(0, len(ranked) - settings.max_entities_per_document)
    ranked = ranked[: settings.max_entities_per_document]
    top = _salience(ranked[0], mentions[ranked[0].key]) if ranked else 1.0
    return [{"entity": e.name, "type": e.type, "mentions": mentions[e.key],
             "extractor": "+".join(sorted(e.extractors)), "salience": round(_salience(e, mentions[e.key]) / top, 4),
             "aliases": sorted(e.aliases)} for e in ranked]


def extractor(ctx: StageContext):
    """The configured extractor plugin on this run's documents."""
    ctx.input("ingest")
    ctx.require([EXTRACTORS.get(ctx.settings.extractor)])
    chunks_by_doc: dict[str, list] = {}
    for chunk in ctx.run.chunks():
        chunks_by_doc.setdefault(chunk.doc_id, []).append(chunk)
    context = ExtractionContext(ctx.run.documents(), chunks_by_doc, ctx.settings, ctx.config.engine, ctx.run.dir,
                                ctx.out / WORK_DIR, ctx.config.run.seed, ctx.config.run.prompts_dir)
    return EXTRACTORS.get(ctx.settings.extractor)(context), context.documents


def planned_requests(ctx: StageContext) -> dict[str, list[Request]]:
    return extractor(ctx)[0].requests()


def extract(ctx: StageContext) -> EntitiesStats:
    settings, out = ctx.settings, ctx.out
    plugin, documents = extractor(ctx)
    found = plugin.extract()
    candidates = {d.doc_id: found.candidates.get(d.doc_id, []) for d in documents}
    summaries = found.summaries
    counts: Counter = Counter({f"llm_{k}": v for k, v in found.counts.items()})

    rows, empty, not_english = [], [], []
    for doc in documents:
        if not likely_english(doc.text):
            not_english.append(doc.doc_id)
        entities = document_entities(doc.text, candidates[doc.doc_id], settings, counts)
        if not entities:
            empty.append(doc.doc_id)
        rows.extend({"doc_id": doc.doc_id, **row} for row in entities)

    write_records(out / ENTITIES_FILE, rows, ENTITY_SCHEMA)
    write_records(out / SUMMARIES_FILE, [{"doc_id": d, "summary": s} for d, s in summaries.items()],
                  SUMMARY_SCHEMA)
    per_doc = Counter(row["doc_id"] for row in rows)
    stats = EntitiesStats(
        documents=len(documents), entities=len(rows), entities_per_document=round(len(rows) / max(1, len(documents)), 1),
        max_entities_per_document=max(per_doc.values(), default=0), summaries=len(summaries),
        documents_without_entities=empty, documents_not_english=not_english,
        most_candidates_in_a_document=counts.pop("most_candidates"),
        dropped={k: v for k, v in sorted(counts.items()) if not k.startswith("llm_")},
        llm={k.removeprefix("llm_"): v for k, v in sorted(counts.items()) if k.startswith("llm_")})
    ctx.run.write_stats("entities", stats)
    shutil.rmtree(out / WORK_DIR, ignore_errors=True)
    if empty:
        console.print(f"entities: [yellow]{len(empty)} document(s) without entities[/yellow] "
                      f"(listed in {ctx.run.stats_path('entities')})")
    return stats
