"""spaCy candidates: named entities plus salient noun phrases, with only the components they need.

Named entities come from `ner`, which carries its own tok2vec in the CPU pipelines. Noun phrases come
from a `Matcher` over the fine-grained tags of `tagger` (adjectives and nouns ending in a noun, or a
run of proper nouns), so neither the dependency parser, the attribute ruler nor the lemmatizer runs:
they cost more than half of the pipeline's time and add nothing to a list of names. Long documents
are cut at sentence ends into pieces of about `piece_chars`, which keeps every batch of the
transition-based NER full instead of waiting on the longest document. With `n_process` > 1 the
pieces go to forked workers in shards and only the counts come back.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import lru_cache, partial
from itertools import islice

from synthcpt.errors import SynthcptError
from synthcpt.s2_entities.normalize import Candidate

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
