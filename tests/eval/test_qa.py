"""Question sets: L-Eval (QuALITY, Coursera), original QuALITY, the simple JSONL schema, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthcpt.errors import SynthcptError
from synthcpt.questions import load_qa_file, multi_answer_sets
from synthcpt.s4_exam.given import ingested_questions
from tests.helpers import assert_one_line_error, synthcpt

# A hand-written line in the original QuALITY schema (test fixture): 1-based gold labels, and a
# question without one (the test split), which is skipped.
QUALITY_RECORD = {
    "article_id": "51395", "set_unique_id": "51395_X", "title": "The Lighthouse", "author": "A. Writer",
    "year": 1952, "article": "The keeper lit the lamp every night.",
    "questions": [
        {"question": "Who lit the lamp?", "question_unique_id": "51395_1",
         "options": ["The keeper", "A gull", "The mayor", "Nobody"], "gold_label": 1},
        {"question": "When?", "question_unique_id": "51395_2", "options": ["Dawn", "Night", "Noon", "Never"]},
    ],
}


def test_leval_questions_match_the_ingested_ones(tmp_path, demo_corpus, demo_items):
    from synthcpt.config import load_config
    from synthcpt.pipeline import Runner
    from synthcpt.run_folder import RunFolder

    cfg = load_config(None, [f"run.dir={tmp_path}", f"ingest.inputs=[{demo_corpus}]"])
    Runner(cfg, reporter=lambda _: None).execute(["ingest"], force=set())
    ingested = ingested_questions(RunFolder(tmp_path))
    assert len(demo_items) == len(ingested) == 50
    assert [(i.question_id, i.doc_id, i.options, i.answers, i.title) for i in demo_items] == \
           [(i.question_id, i.doc_id, i.options, i.answers, i.title) for i in ingested]
    assert ingested[0].author and ingested[0].document
    assert not multi_answer_sets(ingested)


def test_coursera_has_multi_letter_answers(shared_data):
    items = load_qa_file(shared_data / "leval" / "coursera.jsonl")
    assert len({i.doc_id for i in items}) == 15
    assert any(len(i.answers) > 1 for i in items) and any(len(i.answers) == 1 for i in items)


def test_original_quality_format(tmp_path):
    path = tmp_path / "quality-dev.jsonl"
    path.write_text(json.dumps(QUALITY_RECORD) + "\n")
    [item] = load_qa_file(path)
    assert (item.question_id, item.doc_id, item.answers, item.year) == ("51395_1", "51395", ("A",), "1952")
    assert item.document.startswith("The keeper")


def test_simple_jsonl(tmp_path):
    path = tmp_path / "mine.jsonl"
    lines = [{"question": "Which colour is the door?", "options": ["Red", "Blue"], "answer": "b", "doc_id": "house",
              "context": "From the house inventory"},
             {"question": "Which rooms have windows?", "options": ["Kitchen", "Hall", "Attic"], "answers": ["C", "A"],
              "doc_id": "house", "id": "rooms"}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    first, second = load_qa_file(path)
    assert (first.answers, first.context, first.question_id) == (("B",), "From the house inventory", "house/q0")
    assert (second.answers, second.question_id) == (("A", "C"), "rooms")
    assert multi_answer_sets([first, second]) == {"mine"}


@pytest.mark.parametrize("line, message", [
    ({"question": "Q?", "options": ["a", "b"], "doc_id": "d"}, "missing answer"),
    ({"question": "Q?", "options": ["a", "b"], "answer": "C", "doc_id": "d"}, "not among the option letters"),
    ({"question": "Q?", "options": ["a"], "answer": "A", "doc_id": "d"}, "at least two options"),
])
def test_bad_questions_are_one_clear_error(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(SynthcptError, match=message):
        load_qa_file(path)


def test_cli_reports_a_bad_question_file_in_one_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text("{not json\n")
    proc = synthcpt("evaluate", "--model", "default", "--qa", str(path), "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, "broken.jsonl:1", "not valid JSON")
    assert not (tmp_path / "out" / "results.json").exists()
    missing = synthcpt("evaluate", "--model", "default", "--qa", str(Path(tmp_path / "none.jsonl")))
    assert_one_line_error(missing, "question file not found")
