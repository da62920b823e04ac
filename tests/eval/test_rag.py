"""RAG: BM25 retrieval (bm25s) over passages, then the options scored by log-likelihood after the retrieved
passages, with the embedded model."""

from __future__ import annotations

import pytest

from synthcpt.errors import SynthcptError
from synthcpt.questions import QAItem
from synthcpt.run_folder import Chunk
from synthcpt.s7_eval.method import MethodContext
from synthcpt.s7_eval.methods.rag import Retriever, document_passages, query
from synthcpt.s7_eval.prompts import EvalPrompts
from synthcpt.s7_eval.records import Candidate
from synthcpt.s7_eval.settings import eval_settings
from tests.helpers import STORIES


def _story_items() -> list[QAItem]:
    """A question per story whose document is the story (what `document_passages` cuts up)."""
    return [QAItem(f"{name}/q0", name, "?", ("x", "y"), ("A",), "stories", document=text)
            for name, text in STORIES.items()]


@pytest.fixture(scope="module")
def story_passages() -> list[Chunk]:
    # Short passages, so that each story is several of them and retrieval has to pick the right one.
    return document_passages(_story_items(), chars=160)


@pytest.mark.parametrize("question, holds", [
    ("Who installed an electric light in the lighthouse in 1902?", "Tobias Wren installed an electric light"),
    ("Which steamer ran aground on the Varrow rocks?", "the steamer Halcyon ran aground"),
    ("Who bred the Amber Bell pear first?", "first bred by the gardener Ida Sorn"),
    ("What did Emil replant the frost-killed pear trees from?", "replanted them from cuttings"),
    ("What prize does the best pear win at the Hollin fair?", "wins a brass bell"),
])
def test_the_passage_that_holds_the_answer_is_retrieved_first(story_passages, question, holds):
    assert sum(holds in p.text for p in story_passages) == 1
    top = Retriever([p.text for p in story_passages], "en").top(question, 3)
    assert holds in story_passages[top[0]].text


def test_ties_keep_passage_order_and_k_is_clamped(story_passages):
    retriever = Retriever([p.text for p in story_passages], "en")
    everything = list(range(len(story_passages)))
    # Only stopwords: every passage scores 0, so they come in passage order (bm25s's own top-k would not).
    assert retriever.top("the and of it", len(story_passages) + 5) == everything
    assert retriever.top("zebra quantum", 3) == [0, 1, 2]
    assert sorted(retriever.top("Varrow", 100)) == everything


def test_documents_are_cut_into_whole_sentence_passages(story_passages):
    for name, text in STORIES.items():
        own = [p for p in story_passages if p.doc_id == name]
        assert len(own) > 2 and "".join(p.text for p in own) == text  # they tile the document
        assert [p.index for p in own] == list(range(len(own))) and own[0].chunk_id == f"{name}/0"
        for passage in own:
            assert len(passage.text) <= 160 or passage.text.count(". ") == 0  # one over-long sentence alone
            assert text[passage.char_start:passage.char_end] == passage.text
    assert document_passages([QAItem("q", "d", "?", ("x", "y"), ("A",), "s")]) == []


def test_evaluate_without_documents_refuses_rag():
    from synthcpt.commands.evaluate import _passages

    items = [QAItem("q", "d", "Why?", ("x", "y"), ("A",), "s")]
    assert _passages(["loglik"], items) == []
    with pytest.raises(SynthcptError, match=r"^eval method rag retrieves from the questions' documents") as raised:
        _passages(["loglik", "rag"], items)
    assert "\n" not in str(raised.value)
    assert [p.doc_id for p in _passages(["rag"], _story_items())] == ["lighthouse.txt", "orchard.txt"]


def _rag(items, chunks, scorer, **settings):
    """The rag method's records for `items`, retrieving from `chunks`, with `settings` as eval.rag."""
    from synthcpt.plugins import EVAL_METHODS

    section = eval_settings()(methods=["rag"], rag=settings)
    ctx = MethodContext(Candidate("base", "default"), items, section, EvalPrompts(), None, None, 0, lambda: scorer,
                        chunks)
    return EVAL_METHODS.get("rag")(section).score(ctx)


def test_bm25_finds_a_passage_of_the_questions_own_document(demo_items, demo_passages):
    """The demo questions come with their documents: the best passage is nearly always from the question's own."""
    retriever = Retriever([p.text for p in demo_passages], "en")
    own = sum(demo_passages[retriever.top(query(item, True), 1)[0]].doc_id == item.doc_id for item in demo_items)
    assert own >= 0.9 * len(demo_items)


def test_rag_scores_the_options_after_the_retrieved_passages(demo_items, demo_passages, scorer):
    items = demo_items[::25]  # questions of two documents
    records = _rag(items, demo_passages, scorer, passages=2)
    retriever = Retriever([p.text for p in demo_passages], "en")
    assert [r["question_id"] for r in records] == [i.question_id for i in items]
    for item, record in zip(items, records):
        assert record["method"] == "rag" and len(record["scores"]) == len(item.options)
        assert record["acc"] in (0.0, 1.0) and record["predicted"] in item.letters
        # The retrieved chunks' ids, best first.
        assert record["outputs"] == [demo_passages[i].chunk_id for i in retriever.top(query(item, True), 2)]
        assert demo_passages[retriever.top(query(item, True), 1)[0]].doc_id == item.doc_id


def test_passages_are_dropped_from_the_bottom_to_fit_the_context_window(demo_items, demo_passages, scorer,
                                                                        monkeypatch):
    item = demo_items[0]
    ranked = [demo_passages[i].chunk_id for i in
              Retriever([p.text for p in demo_passages], "en").top(query(item, True), 3)]
    # A context window that holds the question and one or two ~250-token passages, not three.
    monkeypatch.setattr(scorer, "max_length", 560)
    [record] = _rag([item], demo_passages, scorer, passages=3)
    assert 1 <= len(record["outputs"]) < 3 and record["outputs"] == ranked[:len(record["outputs"])]
    monkeypatch.setattr(scorer, "max_length", 60)  # not even the best passage fits: the question is left out
    assert _rag([item], demo_passages, scorer, passages=3) == []


def test_stored_rag_scores_depend_on_the_passages(demo_items, demo_passages, tmp_path):
    """Through the stage's evaluate_models: the passages reach the method, and other passages score again."""
    from synthcpt.s7_eval.evaluate import evaluate_models

    settings = eval_settings()(methods=["rag"], rag={"passages": 1}, bootstrap_resamples=200)
    items, candidate = demo_items[:1], [Candidate("base", "default")]
    [record], _ = evaluate_models(candidate, items, settings, None, tmp_path, 0, passages=demo_passages)
    assert len(record["outputs"]) == 1
    again, _ = evaluate_models(candidate, items, settings, None, tmp_path, 0, passages=demo_passages)
    assert again == [record] and len(list((tmp_path / "parts").iterdir())) == 1
    others = [p for p in demo_passages if p.chunk_id != record["outputs"][0]]
    [other], _ = evaluate_models(candidate, items, settings, None, tmp_path, 0, passages=others)
    assert len(list((tmp_path / "parts").iterdir())) == 2 and other["outputs"] != record["outputs"]


def test_query_names_the_title_only_when_the_model_is_told_it(demo_items):
    item = demo_items[0]
    assert query(item, True) == f"{item.title}\n{item.question}" and query(item, False) == item.question
