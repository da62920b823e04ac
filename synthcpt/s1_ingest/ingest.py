"""The ingest step: read, normalise, deduplicate, count tokens, chunk and write the corpus."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import datasets

from synthcpt.atomic import write_json, write_records, write_text
from synthcpt.errors import SynthcptError
from synthcpt.models import load_tokenizer
from synthcpt.progress import console, track
from synthcpt.s1_ingest.chunking import chunk_text
from synthcpt.s1_ingest.readers import BadInput, Fields, RawDocument, read_path

AUTHOR_LINE = re.compile(r"^\s*by\s+(.{2,80}?)\s*$", re.IGNORECASE)
MAX_TITLE_CHARS = 120
SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")

DOCUMENT_FEATURES = datasets.Features({
    "doc_id": datasets.Value("string"), "title": datasets.Value("string"), "text": datasets.Value("string"),
    "source": datasets.Value("string"), "metadata": datasets.Value("string"),
    "n_chars": datasets.Value("int64"), "n_tokens": datasets.Value("int64"), "n_chunks": datasets.Value("int64"),
})
CHUNK_FEATURES = datasets.Features({
    "chunk_id": datasets.Value("string"), "doc_id": datasets.Value("string"), "index": datasets.Value("int64"),
    "text": datasets.Value("string"), "n_tokens": datasets.Value("int64"),
    "char_start": datasets.Value("int64"), "char_end": datasets.Value("int64"),
})
QUESTION_FEATURES = datasets.Features({
    "question_id": datasets.Value("string"), "doc_id": datasets.Value("string"),
    "title": datasets.Value("string"), "question": datasets.Value("string"),
    "options": datasets.Sequence(datasets.Value("string")), "answers": datasets.Sequence(datasets.Value("string")),
    "source": datasets.Value("string"),
})


def normalise(text: str, form: str) -> str:
    text = unicodedata.normalize(form, text.removeprefix("\ufeff"))
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def derive_title(text: str) -> str:
    for line in text.splitlines():
        line = " ".join(line.lstrip("#").split())
        if line:
            return line[:MAX_TITLE_CHARS]
    return ""


def derive_author(text: str) -> str | None:
    """The "By NAME" line of a story's header (QuALITY and Gutenberg stories carry one)."""
    lines = [" ".join(line.split()) for line in text.splitlines()[:20] if line.strip()][:5]
    for i, line in enumerate(lines[1:], start=1):
        if line.lower() == "by" and i + 1 < len(lines):
            line = f"By {lines[i + 1]}"
        match = AUTHOR_LINE.match(line)
        if match:
            return match.group(1)
    return None


def document_id(raw: RawDocument, text: str) -> str:
    if raw.given_id:
        return SAFE_ID.sub("-", raw.given_id).strip("-") or hashlib.sha1(text.encode()).hexdigest()[:12]
    return "doc-" + hashlib.sha1(text.encode()).hexdigest()[:12]


class Collector:
    """Keeps the good documents and the bad inputs, failing on the first bad one unless told to skip."""

    def __init__(self, settings):
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
        doc_id = document_id(raw, text)
        if self.seen_ids.get(doc_id, digest) != digest:
            self.bad(BadInput(raw.source, f"document id '{doc_id}' is used by another document", "duplicate_id"))
            return
        self.seen_text.add(digest)
        self.seen_ids[doc_id] = digest
        self.documents.append((raw, text, doc_id))


def ingest(ctx) -> dict[str, Any]:
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

    tokenizer = load_tokenizer(ctx.config.engine.model)
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
    write_records(out / "documents.parquet", documents, DOCUMENT_FEATURES)
    write_records(out / "chunks.parquet", chunks, CHUNK_FEATURES)
    write_records(out / "questions.parquet", questions, QUESTION_FEATURES)
    write_text(out / "skipped.jsonl", "".join(json.dumps({"source": s.source, "reason": s.reason,
                                                          "kind": s.kind}) + "\n" for s in collector.skipped))
    stats = {
        "documents": len(documents),
        "tokens": sum(d["n_tokens"] for d in documents),
        "chunks": len(chunks),
        "chunk_tokens": settings.chunk_tokens,
        "duplicates_dropped": collector.duplicates,
        "skipped": len(collector.skipped),
        "skipped_by_reason": dict(Counter(s.kind for s in collector.skipped)),
        "questions": len(questions),
        "questions_unparsed": dropped_questions,
    }
    write_json(out / "stats.json", stats)
    if collector.skipped:
        console.print(f"[yellow]ingest: skipped {len(collector.skipped)} bad inputs, listed in {out / 'skipped.jsonl'}")
    return stats
