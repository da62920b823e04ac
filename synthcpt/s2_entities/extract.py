"""The entities stage: candidates from the chosen extractors, normalised, grounded, ranked and capped."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spacy.lang.en.stop_words import STOP_WORDS

from synthcpt.atomic import read_records, write_json, write_records
from synthcpt.engine.types import Request
from synthcpt.progress import console, track
from synthcpt.s2_entities.mentions import MentionMatcher
from synthcpt.s2_entities.normalize import Candidate, Entity, merge_aliases, merge_candidates, merge_plurals
from synthcpt.s2_entities.outputs import (
    ENTITIES_FILE,
    ENTITY_FEATURES,
    REPORT_FILE,
    SUMMARIES_FILE,
    SUMMARY_FEATURES,
)

# spaCy candidates are saved in blocks of documents, so an interrupted run resumes after the last block.
BLOCK_DOCUMENTS = 64
CANDIDATES_DIR = "spacy-candidates"
# How much a mention counts toward salience, by how the entity was found: names over noun phrases.
TYPE_WEIGHT = {"NOUN": 0.5, "PROPN": 0.8}
AGREEMENT_BONUS = 1.5  # found by both spaCy and the LLM
WORD = re.compile(r"[^\W\d_]+")
# English prose is ~40-50% stop words; below this share a document is reported as likely not English.
MIN_ENGLISH_STOP_SHARE = 0.1


def _header(doc: dict[str, Any]) -> str:
    author = json.loads(doc["metadata"] or "{}").get("author")
    return f"{doc['title']}, by {author}" if author else doc["title"]


def likely_english(text: str) -> bool:
    words = WORD.findall(text[:20000].lower())
    return not words or sum(w in STOP_WORDS for w in words) / len(words) >= MIN_ENGLISH_STOP_SHARE


def _spacy_settings_digest(settings: Any) -> str:
    fields = ("spacy_model", "ner_labels", "noun_phrases", "piece_chars")
    return hashlib.sha256(json.dumps([getattr(settings, f) for f in fields]).encode()).hexdigest()[:12]


def _spacy_blocks(documents: list[dict[str, Any]], settings: Any, folder: Path
                  ) -> Iterator[tuple[str, list[Candidate]]]:
    """spaCy candidates per document, computed block by block and saved, so a rerun resumes."""
    from synthcpt.s2_entities.spacy_extractor import spacy_candidates

    blocks = [documents[i:i + BLOCK_DOCUMENTS] for i in range(0, len(documents), BLOCK_DOCUMENTS)]
    todo = []
    for block in blocks:
        digest = hashlib.sha256("\0".join(f"{d['doc_id']}\0{d['text']}" for d in block).encode()).hexdigest()[:16]
        todo.append((block, folder / f"block-{digest}.json"))
    pending = [doc for block, path in todo if not path.is_file() for doc in block]
    fresh = spacy_candidates(((d["doc_id"], d["text"]) for d in pending), settings.spacy_model, set(settings.ner_labels), settings.noun_phrases,
                             settings.batch_size, settings.n_process, settings.piece_chars)
    for block, path in todo:
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
        else:
            saved = {doc_id: [c.__dict__ for c in candidates]
                     for doc_id, candidates in (next(fresh) for _ in block)}
            write_json(path, saved)
        for doc in block:
            yield doc["doc_id"], [Candidate(**c) for c in saved[doc["doc_id"]]]


def _keep_phrase(entity: Entity, min_mentions: int) -> bool:
    """Noun phrases only when repeated: a phrase seen once is rarely what a document is about."""
    return entity.extractors != {"spacy"} or entity.type not in TYPE_WEIGHT or entity.seen >= min_mentions


def _salience(entity: Entity, mentions: int) -> float:
    bonus = AGREEMENT_BONUS if len(entity.extractors) > 1 else 1.0
    return TYPE_WEIGHT.get(entity.type, 1.0) * bonus * math.log1p(max(mentions, 1))


def document_entities(text: str, candidates: list[Candidate], settings: Any, counts: Counter
                      ) -> list[dict[str, Any]]:
    """The document's entity rows, most salient first, at most `max_entities_per_document`."""
    entities = merge_candidates(candidates, counts)
    counts["most_candidates"] = max(counts["most_candidates"], len(entities))
    counts["plurals_merged"] += merge_plurals(entities)
    for key in [k for k, e in entities.items() if not _keep_phrase(e, settings.min_phrase_mentions)]:
        del entities[key]
        counts["rare_phrase"] += 1
    counts["aliases_merged"] += merge_aliases(entities)
    mentions = MentionMatcher({k: e.aliases for k, e in entities.items()}).counts(text)
    if settings.require_mention:
        for key in [k for k in entities if not mentions[k]]:
            del entities[key]
            counts["not_in_text"] += 1
    ranked = sorted(entities.values(), key=lambda e: (-_salience(e, mentions[e.key]), e.key))
    counts["over_cap"] += max(0, len(ranked) - settings.max_entities_per_document)
    ranked = ranked[: settings.max_entities_per_document]
    top = _salience(ranked[0], mentions[ranked[0].key]) if ranked else 1.0
    return [{"entity": e.name, "type": e.type, "mentions": mentions[e.key],
             "extractor": "+".join(sorted(e.extractors)), "salience": round(_salience(e, mentions[e.key]) / top, 4),
             "aliases": sorted(e.aliases)} for e in ranked]


def _documents(ctx) -> list[dict[str, Any]]:
    documents = read_records(ctx.input("ingest") / "documents.parquet")
    for doc in documents:
        doc["header"] = _header(doc)
    return documents


def _llm_requests(ctx, documents: list[dict[str, Any]]) -> tuple[list[Request], dict[str, int]]:
    from synthcpt.s2_entities.llm_extractor import llm_requests

    chunks_by_doc: dict[str, list[dict[str, Any]]] = {}
    for chunk in read_records(ctx.input("ingest") / "chunks.parquet"):
        chunks_by_doc.setdefault(chunk["doc_id"], []).append(chunk)
    return llm_requests(documents, chunks_by_doc, ctx.settings, ctx.config.run.seed)


def planned_requests(ctx) -> dict[str, list[Request]]:
    from synthcpt.s2_entities.llm_extractor import LLM_STEP

    if ctx.settings.extractor == "spacy":
        return {}  # spaCy alone calls no model
    return {LLM_STEP: _llm_requests(ctx, _documents(ctx))[0]}


def extract(ctx) -> dict[str, Any]:
    settings, out = ctx.settings, ctx.out
    documents = _documents(ctx)
    candidates: dict[str, list[Candidate]] = {d["doc_id"]: [] for d in documents}
    counts: Counter = Counter()
    summaries: dict[str, str] = {}

    if settings.extractor in ("spacy", "hybrid"):
        folder = out / CANDIDATES_DIR / _spacy_settings_digest(settings)
        for doc_id, found in track(_spacy_blocks(documents, settings, folder), "entities: spaCy",
                                   total=len(documents)):
            candidates[doc_id].extend(found)
    if settings.extractor in ("llm", "hybrid"):
        from synthcpt.s2_entities.llm_extractor import extract_with_llm

        requests, n_windows = _llm_requests(ctx, documents)
        outcome = extract_with_llm(ctx.config.engine, ctx.run.dir, requests, n_windows)
        for doc_id, found in outcome.candidates.items():
            candidates[doc_id].extend(found)
        summaries = outcome.summaries
        counts.update({f"llm_{k}": v for k, v in outcome.counts.items()})

    rows, empty, not_english = [], [], []
    for doc in documents:
        if not likely_english(doc["text"]):
            not_english.append(doc["doc_id"])
        found = document_entities(doc["text"], candidates[doc["doc_id"]], settings, counts)
        if not found:
            empty.append(doc["doc_id"])
        rows.extend({"doc_id": doc["doc_id"], **row} for row in found)

    write_records(out / ENTITIES_FILE, rows, ENTITY_FEATURES)
    write_records(out / SUMMARIES_FILE, [{"doc_id": d, "summary": s} for d, s in summaries.items()],
                  SUMMARY_FEATURES)
    report = {"documents": len(documents), "entities": len(rows), "summaries": len(summaries),
              "documents_without_entities": empty, "documents_not_english": not_english,
              "most_candidates_in_a_document": counts.pop("most_candidates"),
              "dropped": {k: v for k, v in sorted(counts.items()) if not k.startswith("llm_")},
              "llm": {k.removeprefix("llm_"): v for k, v in sorted(counts.items()) if k.startswith("llm_")}}
    write_json(out / REPORT_FILE, report)
    shutil.rmtree(out / CANDIDATES_DIR, ignore_errors=True)
    if empty:
        console.print(f"entities: [yellow]{len(empty)} document(s) without entities[/yellow] "
                      f"(listed in {out / REPORT_FILE})")
    per_doc = [sum(1 for r in rows if r["doc_id"] == d["doc_id"]) for d in documents]
    return {"documents": len(documents), "entities": len(rows),
            "entities_per_document": round(len(rows) / max(1, len(documents)), 1),
            "max_entities_per_document": max(per_doc, default=0), "summaries": len(summaries),
            "documents_without_entities": len(empty), "documents_not_english": len(not_english),
            "llm_unparsed": counts["llm_unparsed"], "llm_repaired": counts["llm_repaired"],
            "llm_failed": counts["llm_failed"]}
