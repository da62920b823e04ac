"""The EntiGraph paper's QuALITY protocol: the reference's prompt, majority vote over the samples that
answered, accuracy over the questions answered with the attempt rate beside it."""

from __future__ import annotations

import pytest

from synthcpt.prompts import load_prompt
from synthcpt.questions import QAItem
from synthcpt.s7_eval.evaluate import summarise
from synthcpt.s7_eval.methods.entigraph_cot import EXAMPLES, QUESTION, _record, question_prompt, vote

ITEM = QAItem("d/q0", "d", "Why does Korvin lie to the Tr'en?", ("To escape.", "For fun.", "He cannot help it.",
                                                                  "They ask him to."), ("A",), "quality",
              title="LOST IN TRANSLATION", author="Larry M. Harris", year="1961")


def test_the_prompt_is_the_reference_five_shot_with_the_article_context():
    prompt = question_prompt(load_prompt(EXAMPLES).text, load_prompt(QUESTION).text, ITEM)
    assert prompt.count("### Thought Process and Answer") == 6 and prompt.startswith("## Example 1\n")
    assert prompt.endswith('### Question\nIn the context of "LOST IN TRANSLATION", written by Larry M. Harris in '
                           "1961, why does Korvin lie to the Tr'en? There is only one correct choice.\n### Choices\n"
                           "A. To escape.\nB. For fun.\nC. He cannot help it.\nD. They ask him to.\n"
                           "### Thought Process and Answer\nThought process:")


def test_the_vote_counts_only_samples_that_answered():
    texts = [" He wants out. Answer: A.", " Unsure.", " Answer: B.", " It is A. Answer: A.\n"]
    assert vote(texts, "ABCD") == "A"
    assert vote([" No answer here.", " Answer: E."], "ABCD") is None


def test_accuracy_over_the_answered_questions_and_the_attempt_rate():
    items = [QAItem(f"d/q{i}", "d", "Q?", ("a", "b", "c", "d"), ("A",), "quality", title="T") for i in range(4)]
    outputs = [[" Answer: A."], [" Answer: B."], [" I do not know."], [" Answer: A.", " Answer: C."]]
    records = [_record("base", item, texts) for item, texts in zip(items, outputs)]
    settings = type("S", (), {"bootstrap_resamples": 100, "confidence": 0.95})()
    scores = {s["metric"]: s for s in summarise(records, "base", settings, seed=0)["scores"]}
    assert scores["acc_attempted"]["value"] == pytest.approx(2 / 3) and scores["acc_attempted"]["n"] == 3
    assert scores["attempted"]["value"] == pytest.approx(3 / 4)
    assert scores["acc"]["value"] == pytest.approx(2 / 4)  # unanswered counted wrong


@pytest.mark.slow
def test_embedded_model_through_the_protocol(demo_items, vllm_engine_settings, tmp_path):
    from synthcpt.s7_eval.records import Candidate
    from synthcpt.s7_eval.settings import eval_settings
    from tests.eval.conftest import score

    settings = eval_settings()(methods=["entigraph_cot"], entigraph_cot={"samples": 2, "max_tokens": 48})
    records = score("entigraph_cot", Candidate("base", "default"), demo_items[:3], settings,
                    engine_settings=vllm_engine_settings, work_dir=tmp_path)
    assert [r["question_id"] for r in records] == [i.question_id for i in demo_items[:3]]
    for record in records:
        assert len(record["outputs"]) == 2 and record["attempted"] in (0.0, 1.0)
        assert (record["acc_attempted"] is None) == (record["attempted"] == 0.0)
