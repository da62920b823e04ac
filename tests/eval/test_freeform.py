"""Free-form answers graded by a judge (SimpleQA's grader): the verdict parser, token F1, the judge setting,
the table, and the method end to end with the embedded model answering and judging through vLLM."""

from __future__ import annotations

import hashlib
import random

import pytest
from rich.console import Console

from synthcpt.errors import SynthcptError
from synthcpt.questions import QAItem
from synthcpt.s7_eval.evaluate import summarise
from synthcpt.s7_eval.evaluation import results_tables
from synthcpt.s7_eval.methods.freeform import (
    CORRECT,
    INCORRECT,
    NOT_ATTEMPTED,
    grade_values,
    judge_engine,
    parse_verdict,
)
from synthcpt.s7_eval.metrics import normalize_answer, token_f1
from synthcpt.s7_eval.prompts import EvalPrompts
from synthcpt.s7_eval.records import Candidate, question_record
from synthcpt.s7_eval.settings import eval_settings
from synthcpt.stats import EvalResults, Forgetting
from tests.eval.conftest import score

# sha256 of GRADER_TEMPLATE in openai/simple-evals simpleqa_eval.py (ee3b031), as its .format() sees it.
UPSTREAM_TEMPLATE_SHA256 = "063c04ea798f91c4706c050b66a721afc77a458b12d8f0d72286d4b0eee8a3ee"


@pytest.mark.parametrize("reply, grade", [
    ("A", CORRECT), ("B", INCORRECT), ("C", NOT_ATTEMPTED),
    ("CORRECT", CORRECT), ("INCORRECT", INCORRECT), ("NOT_ATTEMPTED", NOT_ATTEMPTED),
    ("NOT ATTEMPTED", NOT_ATTEMPTED), ("Correct.", CORRECT), ("incorrect", INCORRECT), ("not attempted", NOT_ATTEMPTED),
    ("A: CORRECT", CORRECT), ("C: NOT_ATTEMPTED", NOT_ATTEMPTED), ("(B)", INCORRECT), ('"A"', CORRECT),
    ("\n  B\n", INCORRECT), ("Grade: C", NOT_ATTEMPTED), ("The answer is B.", INCORRECT),
    ("A\nThe predicted answer names Malia and Sasha, so B would be wrong.", CORRECT),
])
def test_the_three_grades_are_read_as_letters_or_labels(reply, grade):
    assert parse_verdict(reply) == grade


@pytest.mark.parametrize("reply", [
    "", "   \n", "a", "not correct", "that is correct", "I cannot grade this.", "A or B",
    'Just return the letters "A", "B", or "C"', "B: CORRECT", "INCORRECT, I mean CORRECT",
])
def test_a_reply_naming_no_grade_or_several_is_unparsed_not_guessed(reply):
    # simple-evals takes C for these; guessing would bias "not attempted".
    assert parse_verdict(reply) is None
    values = grade_values(parse_verdict(reply))
    assert values == {"acc": None, "attempted": None, "acc_attempted": None, "unparsed": 1.0}


def test_grades_give_simpleqa_figures():
    assert grade_values(CORRECT) == {"acc": 1.0, "attempted": 1.0, "acc_attempted": 1.0, "unparsed": 0.0}
    assert grade_values(INCORRECT) == {"acc": 0.0, "attempted": 1.0, "acc_attempted": 0.0, "unparsed": 0.0}
    # Correct given attempted is over the attempted questions only.
    assert grade_values(NOT_ATTEMPTED) == {"acc": 0.0, "attempted": 0.0, "acc_attempted": None, "unparsed": 0.0}


@pytest.mark.parametrize("text, normalised", [
    ("The Amber Bell.", "amber bell"), ("  an   Electric\tlight! ", "electric light"),
    ("Mara Quell's lamp", "mara quells lamp"), ("A, an, the", ""), ("Theo and Anna", "theo and anna"),
])
def test_answers_are_normalised_as_squad_does(text, normalised):
    assert normalize_answer(text) == normalised


@pytest.mark.parametrize("predicted, reference, f1", [
    ("the Amber Bell.", "Amber Bell", 1.0),
    ("Mara Quell", "the engineer Mara Quell", 0.8),  # precision 1, recall 2/3
    ("eleven sailors saved", "eleven sailors", 0.8),
    ("Tobias Wren", "Mara Quell", 0.0),
    ("", "Mara Quell", 0.0),
    ("the", "a", 1.0),  # nothing left on either side: the same (SQuAD v2)
    ("bell bell", "bell", 2 / 3),  # a bag of tokens: the repeat counts once against the reference
])
def test_token_f1(predicted, reference, f1):
    assert token_f1(predicted, reference) == pytest.approx(f1)


def test_the_grader_prompt_is_simple_evals_verbatim():
    rendered = EvalPrompts().simpleqa_grader(question="{question}", target="{target}",
                                             predicted_answer="{predicted_answer}")
    assert "<!--" not in rendered and "MIT" not in rendered  # the attribution comment is not sent
    assert hashlib.sha256(rendered.encode()).hexdigest() == UPSTREAM_TEMPLATE_SHA256


@pytest.mark.parametrize("judge, fragment", [
    ("{backend: nosuch}", "'backend'"), ("{modle: gpt-4o-mini}", "'modle'"), ("{max_model_len: 0}", "max_model_len"),
    ("{openai: {timeout: soon}}", "openai.timeout"), ("gpt-4o-mini", "eval.freeform.judge"),
])
def test_a_bad_judge_setting_is_a_one_line_error(judge, fragment):
    from synthcpt.config import load_config

    with pytest.raises(SynthcptError) as raised:
        load_config(None, ["eval.methods=[freeform]", f"eval.freeform.judge={judge}"])
    message = str(raised.value)
    assert "\n" not in message and "eval.freeform.judge" in message and fragment in message


def test_the_judge_is_the_engine_section_with_its_fields_replaced():
    from synthcpt.engine.settings import engine_settings

    engine = engine_settings()(model="my-generator", openai={"base_url": "http://127.0.0.1:9/v1"})
    judge = judge_engine(engine, {"model": "gpt-4o-mini", "backend": "openai", "openai": {"timeout": 30}})
    assert (judge.model, judge.backend, judge.openai.timeout) == ("gpt-4o-mini", "openai", 30)
    assert judge.openai.base_url == "http://127.0.0.1:9/v1"  # nested sections merge, not replace
    assert judge_engine(engine, {}) == engine
    with pytest.raises(SynthcptError, match=r"^eval\.freeform\.judge: engine setting 'backend'"):
        judge_engine(engine, {"backend": "nosuch"})


def test_the_free_form_table_fits_80_columns(eval_settings):
    """Every figure with its interval, a row per model; not attempted is one minus attempted."""
    rng = random.Random(0)
    items = [QAItem(f"q{i}", f"doc-{i % 3}", f"Question {i}?", ("w", "x"), ("A",), "quality") for i in range(40)]
    records = []
    for model in ("base", "trained"):
        for item in items:
            verdict = rng.choice([CORRECT, INCORRECT, NOT_ATTEMPTED, None])
            records.append(question_record(model, "freeform", item, (verdict,) if verdict else None,
                                           **grade_values(verdict), token_f1=rng.random()))
    results = EvalResults(questions=len(items), documents=3, qa_sets=["quality"], models={"base": "b", "trained": "t"},
                          baseline="base", methods=["freeform"], confidence=0.95,
                          forgetting=Forgetting(texts=0, perplexity={}),
                          **summarise(records, "base", eval_settings, seed=0))
    table = results_tables(results)[-1]
    console = Console(width=80, color_system=None)
    with console.capture() as captured:
        console.print(table)
    lines = captured.get().splitlines()
    assert max(len(line) for line in lines) <= 80
    text = captured.get()
    assert "not attempted" in text and "token F1" in text and "vs base" in text and "did not parse" in text
    attempted = next(s for s in results.scores if s.model == "trained" and s.metric == "attempted")
    assert f"{1 - attempted.value:.2f}" in text
    unparsed = sum(r["unparsed"] == 1.0 for r in records if r["model"] == "trained")
    assert unparsed and f"trained {unparsed} of {len(items)}" in text


@pytest.mark.slow
def test_free_form_answers_are_judged_counted_and_cached(demo_items, vllm_engine_settings, tmp_path):
    """The embedded model answers and judges (the engine section as configured); whatever it says, each
    record's figures follow from its judge's reply, and a rerun gives the same records from the caches."""
    settings = eval_settings()(methods=["freeform"])
    items = demo_items[:4]
    records = score("freeform", Candidate("base", "default"), items, settings, engine_settings=vllm_engine_settings,
                    work_dir=tmp_path)
    assert [r["question_id"] for r in records] == [i.question_id for i in items]
    for item, record in zip(items, records):
        answer, reply = record["outputs"]
        verdict = parse_verdict(reply) if answer else NOT_ATTEMPTED
        assert record["predicted"] == (verdict or "")
        assert record["unparsed"] == float(verdict is None)
        assert {k: record[k] for k in ("acc", "attempted", "acc_attempted", "unparsed")} == grade_values(verdict)
        assert record["token_f1"] == pytest.approx(token_f1(answer, item.reference))
        assert "\n" not in answer  # one line, a few words
    assert any(record["outputs"][1] for record in records), "the judge was never asked"
    # Two caches: the answering model's (by its weights) and the judge's.
    assert len([p for p in (tmp_path / "engine").iterdir() if p.name.startswith("judge-")]) == 1
    assert len(list((tmp_path / "engine").iterdir())) == 2
    again = score("freeform", Candidate("base", "default"), items, settings, engine_settings=vllm_engine_settings,
                  work_dir=tmp_path)
    assert again == records
