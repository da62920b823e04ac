"""Multiple-choice scoring with the embedded model: acc / acc_norm, multi-answer sets, comparisons."""

from __future__ import annotations

import json

import pytest

from synthcpt.questions import QAItem, load_qa_file, multi_answer_sets
from synthcpt.s7_eval.evaluate import summarise
from synthcpt.s7_eval.metrics import choose, set_f1
from synthcpt.s7_eval.records import Candidate, choice_records
from tests.eval.conftest import score


def _item(question: str, options: tuple[str, ...], answers: tuple[str, ...], qa_set: str = "handmade") -> QAItem:
    return QAItem(f"{qa_set}/{question[:20]}", "doc-1", question, options, answers, qa_set, title="Numbers")


def test_a_certain_answer_is_chosen_by_acc_and_acc_norm(scorer, eval_settings):
    item = _item("Count on from one: 1, 2, 3, 4, 5, 6, 7, 8, 9. What number comes next?",
                 ("3", "10"), ("B",))
    [record] = score("loglik", Candidate("base", "default"), [item], eval_settings, scorer)
    assert record["predicted"] == "B"
    assert record["acc"] == 1.0 and record["acc_norm"] == 1.0
    wrong = _item(item.question, item.options, ("A",), qa_set="handmade-wrong")
    [record] = score("loglik", Candidate("base", "default"), [wrong], eval_settings, scorer)
    assert record["acc"] == 0.0 and record["acc_norm"] == 0.0


def test_acc_norm_divides_by_the_options_length_in_characters():
    item = _item("Which?", ("ab", "abcdefghijkl"), ("B",))
    [record] = choice_records("m", "loglik", [item], [[-10.0, -12.0]], set())
    # acc: -10 beats -12; acc_norm: -12 / 12 characters beats -10 / 2.
    assert (record["predicted"], record["acc"], record["acc_norm"]) == ("A", 0.0, 1.0)


def test_multi_answer_sets_are_scored_by_set_match_and_f1():
    items = [_item("Which are even?", ("2", "3", "4", "5"), ("A", "C"), "exam"),
             _item("Which is odd?", ("2", "3", "4", "6"), ("B",), "exam")]
    assert multi_answer_sets(items) == {"exam"}
    # Probabilities ~ (0.45, 0.05, 0.45, 0.05): A and C are above a uniform guess; then only A.
    scores = [[-1.0, -3.2, -1.0, -3.2], [-0.1, -3.0, -3.0, -3.0]]
    first, second = choice_records("m", "loglik", items, scores, multi_answer_sets(items))
    assert (first["predicted"], first["acc"], first["f1"]) == ("AC", 1.0, 1.0)
    assert (second["predicted"], second["acc"], second["f1"]) == ("A", 0.0, 0.0)
    assert first["acc_norm"] is None
    assert set_f1(("A", "B"), ("A", "C")) == pytest.approx(0.5)


def test_coursera_questions_with_the_embedded_model(scorer, eval_settings, shared_data):
    items = load_qa_file(shared_data / "leval" / "coursera.jsonl")
    assert multi_answer_sets(items) == {"coursera"}
    first_document = [item for item in items if item.doc_id == items[0].doc_id]
    assert any(len(item.answers) > 1 for item in first_document)
    records = score("loglik", Candidate("base", "default"), first_document, eval_settings, scorer)
    for item, record in zip(first_document, records):
        predicted = choose(record["scores"], item.letters, multi=True)
        assert record["predicted"] == "".join(predicted) != ""
        assert record["acc"] == float(set(predicted) == set(item.answers))
        assert record["f1"] == pytest.approx(set_f1(predicted, item.answers))
    summary = summarise(records, "base", eval_settings, seed=0)
    by_metric = {s["metric"]: s for s in summary["scores"]}
    assert by_metric["f1"]["value"] >= by_metric["acc"]["value"]
    assert "acc_norm" not in by_metric


def test_identical_models_differ_by_exactly_zero(scorer, demo_items, eval_settings):
    records = score("loglik", Candidate("base", "default"), demo_items[:12], eval_settings, scorer)
    again = score("loglik", Candidate("base", "default"), demo_items[:12], eval_settings, scorer)
    assert json.dumps(records) == json.dumps(again)
    twin = [{**r, "model": "twin"} for r in again]
    summary = summarise(records + twin, "base", eval_settings, seed=0)
    acc = next(c for c in summary["comparisons"] if c["metric"] == "acc")
    assert (acc["model"], acc["difference"], acc["ci"], acc["n"]) == ("twin", 0.0, [0.0, 0.0], 12)
    base_acc = next(s for s in summary["scores"] if s["model"] == "base" and s["metric"] == "acc")
    assert base_acc["ci"][0] <= base_acc["value"] <= base_acc["ci"][1]
