"""Chunking invariants with the embedded model's real tokenizer."""

import json

import pytest

from synthcpt.s1_ingest.chunking import chunk_text
from synthcpt.sentences import sentence_spans
from tests.ingest.conftest import table


@pytest.fixture(scope="module")
def stories(tokenizer):
    from tests.conftest import DEMO_CORPUS

    return [json.loads(line)["input"] for line in DEMO_CORPUS.read_text().splitlines()]


@pytest.mark.parametrize("max_tokens", [16, 64, 300, 1000])
def test_chunks_tile_the_text_and_respect_the_limit(stories, tokenizer, max_tokens):
    for story in stories:
        chunks = chunk_text(story, tokenizer, max_tokens)
        assert "".join(story[c.start:c.end] for c in chunks) == story
        for chunk in chunks:
            n = len(tokenizer(story[chunk.start:chunk.end], add_special_tokens=False)["input_ids"])
            assert n == chunk.n_tokens <= max_tokens


def test_chunks_end_at_sentence_boundaries(stories, tokenizer):
    story = stories[0]
    ends = {end for _, end in sentence_spans(story)}
    chunks = chunk_text(story, tokenizer, 300)
    assert all(c.end in ends for c in chunks)
    assert sum(c.n_tokens for c in chunks) >= 0.95 * len(tokenizer(story, add_special_tokens=False)["input_ids"])


def test_a_sentence_longer_than_the_window_is_cut(tokenizer):
    text = "word " * 500 + "end."
    chunks = chunk_text(text, tokenizer, 50)
    assert len(chunks) >= 10
    assert "".join(text[c.start:c.end] for c in chunks) == text
    assert max(c.n_tokens for c in chunks) <= 50


def test_ingest_writes_chunks_that_rebuild_each_document(run_ingest, demo_corpus):
    out = run_ingest(demo_corpus, settings=("ingest.chunk_tokens=128",))
    docs = {d["doc_id"]: d for d in table(out / "documents.parquet")}
    chunks = table(out / "chunks.parquet")
    for doc_id, doc in docs.items():
        own = sorted((c for c in chunks if c["doc_id"] == doc_id), key=lambda c: c["index"])
        assert "".join(c["text"] for c in own) == doc["text"]
        assert len(own) == doc["n_chunks"] and max(c["n_tokens"] for c in own) <= 128
