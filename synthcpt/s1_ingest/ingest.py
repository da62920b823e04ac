"""The ingest step: read, normalise, deduplicate, count tokens, chunk and write the corpus."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from synthcpt.atomic import write_records, write_text
from synthcpt.documents import derive_author, derive_title, document_id, normalise
from synthcpt.engine.tokens import text_tokenizer
from synthcpt.errors import SynthcptError
from synthcpt.progress import console, track
from synthcpt.readers import BadInput, Fields, RawDocument, read_path
from synthcpt.run_folder import (
    CHUNK_SCHEMA,
    CHUNKS_FILE,
    DOCUMENT_SCHEMA,
    DOCUMENTS_FILE,
    QUESTION_SCHEMA,
    QUESTIONS_FILE,
)
from synthcpt.s1_ingest.chunking import chunk_text
from synthcpt.s1_ingest.settings import IngestSettings
from synthcpt.stage import StageContext
from synthcpt.stats import IngestStats


class Collector:
    """Keeps the good documents and the bad inputs, failing on the first bad one unless told to skip."""

    def __init__(self, settings: IngestSettings):
        self.settings = settings
        self.documents: list[tuple[RawDocument, str, str]] = []
        self.skipped: list[BadInput] = []
        self.seen_text: set[str] = set()
        self.seen_ids: dict[str, str] = {}
        self.duplicates = 0

    def bad(self, item: BadInput) -> None:
        if self.settings.on_error == "fail":
            raise SynthcptError(f"{item} (set ingest.on_error=skip to skip bad inputs)")
        self.skipped.append(item)

    def add(self, raw: RawDocument) -> None:
        text = normalise(raw.text, self.settings.unicode_form)
        if not text:
            self.bad(BadInput(raw.source, "empty document", "empty"))
            return
        digest = hashlib.sha256(text.encode()).hexdigest()
        if self.settings.deduplicate and digest in self.seen_text:
            self.duplicates += 1
            return
        doc_id = document_id(raw.given_id, text)
        if self.seen_ids.get(doc_id, digest) != digest:
            self.bad(BadInput(raw.source, f"document id '{doc_id}' is used by another document", "duplicate_id"))
            return
        self.seen_text.add(digest)
        self.seen_ids[doc_id] = digest
        self.documents.append((raw, text, doc_id))


def ingest(ctx: StageContext) -> IngestStats:
    settings = ctx.settings
    if not settings.inputs:
        raise SynthcptError("ingest.inputs is empty: name the files or folders of the corpus")
    fields = Fields(settings.text_field, settings.title_field, settings.id_field,
                    int(settings.max_document_mb * 1e6))
    collector = Collector(settings)
    for root in settings.inputs:
        for item in read_path(Path(root), fields):
            collector.bad(item) if isinstance(item, BadInput) else collector.add(item)
    if not collector.documents:
        raise SynthcptError("no documents ingested: every input was empty, a duplicate or skipped")

    tokenizer = text_tokenizer(ctx.config.engine, "ingest")
    documents, chunks, questions = [], [], []
    dropped_questions = 0
    for raw, text, doc_id in track(collector.documents, "ingest: tokenise and chunk",
                                   total=len(collector.documents)):
        title = " ".join((raw.title or derive_title(text)).split())
        metadata = dict(raw.metadata)
        author = derive_author(text)
        if author and "author" not in metadata:
            metadata["author"] = author
        doc_chunks = chunk_text(text, tokenizer, settings.chunk_tokens)
        n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        documents.append({"doc_id": doc_id, "title": title, "text": text, "source": raw.source,
                          "metadata": json.dumps(metadata, ensure_ascii=False), "n_chars": len(text),
                          "n_tokens": n_tokens, "n_chunks": len(doc_chunks)})
        chunks.extend({"chunk_id": f"{doc_id}/{i}", "doc_id": doc_id, "index": i, "text": text[c.start:c.end],
                       "n_tokens": c.n_tokens, "char_start": c.start, "char_end": c.end}
                      for i, c in enumerate(doc_chunks))
        questions.extend({"question_id": f"{doc_id}/q{i}", "doc_id": doc_id, "title": title,
                          "question": q.question, "options": q.options, "answers": q.answers,
                          "source": raw.source} for i, q in enumerate(raw.questions))
        dropped_questions += raw.dropped_questions

    out = ctx.out
    write_records(out / DOCUMENTS_FILE, documents, DOCUMENT_SCHEMA)
    write_records(out / CHUNKS_FILE, chunks, CHUNK_SCHEMA)
    write_records(out / QUESTIONS_FILE, questions, QUESTION_SCHEMA)
    write_text(out / "skipped.jsonl", "".join(json.dumps({"source": s.source, "reason": s.reason,
                                                          "kind": s.kind}) + "\n" for s in collector.skipped))
    stats = IngestStats(
        documents=len(documents),
        tokens=sum(d["n_tokens"] for d in documents),
        chunks=len(chunks),
        chunk_tokens=settings.chunk_tokens,
        duplicates_dropped=collector.duplicates,
        skipped=len(collector.skipped),
        skipped_by_reason=dict(Counter(s.kind for s in collector.skipped)),
        questions=len(questions),
        questions_unparsed=dropped_questions,
    )
    ctx.run.write_stats("ingest", stats)
    if collector.skipped:
        console.print(f"[yellow]ingest: skipped {len(collector.skipped)} bad inputs, listed in {out / 'skipped.jsonl'}")
    return stats
