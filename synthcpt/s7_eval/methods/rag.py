"""RAG: the log-likelihood method with the passages BM25 retrieves for the question put before it, the
baseline a closed-book score after training is measured against ("RAG" is the base model with it,
"trained + RAG" the trained one).

Retrieval is bm25s (Lucene's BM25, k1 1.5, b 0.75) over the run's corpus chunks (`ctx.passages`: ingest's
sentence-aware chunks; `synthcpt evaluate` cuts the questions' documents into ~1024-character passages).
The query is the question, with the document's title when `eval.source_line` names it to the model
anyway. The top `passages` chunks go before the question best first (EntiGraph's order); when they do
not fit the model's context window the lowest ranked are dropped until they do. BM25 is weaker than
EntiGraph's embedding search with a reranker, so beating this baseline is the weaker claim.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

from pydantic import Field

from synthcpt.errors import SynthcptError
from synthcpt.progress import console
from synthcpt.questions import QAItem, multi_answer_sets
from synthcpt.run_folder import Chunk
from synthcpt.s7_eval.method import Method, MethodContext
from synthcpt.s7_eval.methods.loglik import choice_requests
from synthcpt.s7_eval.prompts import CLOSED_BOOK, RAG, SOURCE, EvalPrompts
from synthcpt.s7_eval.records import choice_records
from synthcpt.section import Section

# EntiGraph's RAG cuts its documents into 1024-character pieces (langchain's RecursiveCharacterTextSplitter).
PASSAGE_CHARS = 1024


class RagSettings(Section):
    """rag: options scored by log-likelihood after the passages BM25 retrieves for the question."""

    passages: int = Field(4, ge=1, description="Passages retrieved per question (BM25's top k) and put before it, "
                                               "best first; fewer where they do not fit the context window "
                                               "(EntiGraph: 16 reranked 1024-character chunks).")
    stopwords: str | None = Field("en", description="Stopwords bm25s leaves out of passages and queries: a language "
                                                    "code of bm25s ('en', 'de', 'fr'...) or null for none.")


class Retriever:
    """BM25 over passages (bm25s); a question's passages best first, equal scores in passage order."""

    def __init__(self, texts: list[str], stopwords: str | None):
        import bm25s

        if not texts:
            raise SynthcptError("eval method rag: no passages to retrieve from")
        self.size, self.stopwords = len(texts), stopwords
        self.index = bm25s.BM25()
        self.index.index(bm25s.tokenize(texts, stopwords=stopwords, show_progress=False), show_progress=False)

    def top(self, query: str, k: int) -> list[int]:
        """The indices of the `k` best passages for `query` (all of them when there are fewer)."""
        import bm25s
        import numpy as np

        [tokens] = bm25s.tokenize([query], stopwords=self.stopwords, return_ids=False, show_progress=False)
        # bm25s's own top-k (retrieve) orders ties arbitrarily and fails when k exceeds the passages; a
        # stable sort of every passage's score does neither.
        scores = self.index.get_scores(tokens) if tokens else np.zeros(self.size)
        return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


def query(item: QAItem, with_source: bool) -> str:
    """The question, after the document's title when the model is told the document anyway."""
    return f"{item.title}\n{item.question}" if with_source and item.title else item.question


def passages_key(passages: list[Chunk]) -> str:
    """Identifies the passages retrieved from (their ids and text), for the key of the stored scores."""
    payload = json.dumps([(p.chunk_id, p.text) for p in passages], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class Rag(Method[RagSettings]):
    name: ClassVar[str] = "rag"
    summary: ClassVar[str] = ("options scored by log-likelihood after passages BM25 retrieves from the corpus "
                              "(the RAG baseline; with the trained model, trained + RAG)")
    uses_passages: ClassVar[bool] = True
    needs: ClassVar[tuple[str, ...]] = ("ingest",)  # the run's chunks are its passages

    @classmethod
    def prompts(cls, settings: RagSettings) -> list[str]:
        return [RAG, CLOSED_BOOK, SOURCE]

    def depends_on(self, ctx: MethodContext) -> dict[str, Any]:
        return {"passages": passages_key(ctx.passages)}

    def score(self, ctx: MethodContext) -> list[dict]:
        """Each question after its retrieved passages; the ids of the passages it got in `outputs`."""
        name, scorer = ctx.candidate.name, ctx.scorer()
        retriever = Retriever([p.text for p in ctx.passages], self.settings.stopwords)
        fitted = []
        for item in ctx.items:
            ranked = [ctx.passages[i] for i in retriever.top(query(item, ctx.stage.source_line), self.settings.passages)]
            request, used = fit(scorer, ctx.prompts, item, ctx.stage.source_line, ranked)
            if used:
                fitted.append((item, request, used))
        report_fitting(name, len(ctx.items), [len(used) for _, _, used in fitted], self.settings.passages,
                       len(ctx.passages))
        if not fitted:
            return []
        scores = scorer.score([request for _, request, _ in fitted], f"{name}: RAG")
        records = choice_records(name, "rag", [item for item, _, _ in fitted], scores, multi_answer_sets(ctx.items))
        for record, (_, _, used) in zip(records, fitted):
            record["outputs"] = [p.chunk_id for p in used]
        return records


def fit(scorer: Any, prompts: EvalPrompts, item: QAItem, with_source: bool, ranked: list[Chunk]
        ) -> tuple[Any, list[Chunk]]:
    """The question's request with as many of its passages (best first) as fit the context window, and
    those passages; no passages when not even the best one fits."""
    from synthcpt.s7_eval.loglik import ChoiceRequest

    [closed] = choice_requests([item], prompts, with_source)
    for n in range(len(ranked), 0, -1):
        request = ChoiceRequest(prompts.rag_prefix([p.text for p in ranked[:n]]) + closed.context,
                                closed.continuations)
        if scorer.fits(request):
            return request, ranked[:n]
    return closed, []


def report_fitting(name: str, questions: int, used: list[int], k: int, available: int) -> None:
    """One yellow line when some questions were left out or got fewer passages to fit the context window."""
    wanted = min(k, available)
    left_out, shortened = questions - len(used), sum(n < wanted for n in used)
    parts = ([f"left out {left_out} questions whose best passage does not fit the model's context window"]
             if left_out else []) + ([f"gave {shortened} questions fewer than {wanted} passages to fit it"]
                                     if shortened else [])
    if parts:
        console.print(f"[yellow]{name}: RAG " + " and ".join(parts))


def document_passages(items: list[QAItem], chars: int = PASSAGE_CHARS) -> list[Chunk]:
    """Passages of the questions' documents (each distinct document once) for retrieval outside a run: whole
    sentences packed up to `chars` characters (a longer sentence is a passage of its own)."""
    from synthcpt.sentences import sentence_spans

    documents = {item.doc_id: item.document for item in items if item.document.strip()}
    passages = []
    for doc_id, text in documents.items():
        for index, (start, end) in enumerate(_packed(sentence_spans(text), chars)):
            # n_tokens 0: not counted; retrieval and the scorer read the text.
            passages.append(Chunk(f"{doc_id}/{index}", doc_id, index, text[start:end], 0, start, end))
    return passages


def _packed(spans: list[tuple[int, int]], chars: int) -> list[tuple[int, int]]:
    """Consecutive sentence spans joined while they stay within `chars` characters."""
    packed: list[tuple[int, int]] = []
    for start, end in spans:
        if packed and end - packed[-1][0] <= chars:
            packed[-1] = (packed[-1][0], end)
        else:
            packed.append((start, end))
    return packed


PLUGIN = Rag
