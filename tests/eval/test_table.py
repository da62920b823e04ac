"""The eval results as the terminal shows them: a row per model and method (accuracy and the change from
the base model, with intervals) in 80 columns; option F1 only where a set has several correct options."""

from __future__ import annotations

import random

import pytest
from rich.console import Console

from synthcpt.questions import QAItem, multi_answer_sets
from synthcpt.s7_eval.evaluate import summarise
from synthcpt.s7_eval.evaluation import results_tables
from synthcpt.s7_eval.records import choice_records
from synthcpt.stats import EvalResults, Forgetting, Perplexity

MODELS = ("base", "trained")
# The longest method name, so that the widest row is in the table.
METHODS = ("loglik", "open_book", "generative", "entigraph_cot")


def _items(qa_set: str, count: int, answers_per_question: int) -> list[QAItem]:
    answers = tuple("ABCD"[:answers_per_question])
    return [QAItem(f"{qa_set}/{i}", f"doc-{i % 5}", f"Question {i}?", ("w", "x", "y", "z"), answers, qa_set)
            for i in range(count)]


def _results(items: list[QAItem], eval_settings) -> EvalResults:
    """Results as the eval stage writes them, from random option scores (one draw per model and method)."""
    rng = random.Random(0)
    records = []
    for model in MODELS:
        for method in METHODS:
            scores = [[rng.uniform(-5, 0) for _ in item.options] for item in items]
            records += choice_records(model, method, items, scores, multi_answer_sets(items))
    perplexity = {model: Perplexity(perplexity=12.3456, tokens=1523, windows=2) for model in MODELS}
    return EvalResults(questions=len(items), documents=len({i.doc_id for i in items}),
                       qa_sets=sorted({i.qa_set for i in items}), models={m: m for m in MODELS}, baseline="base",
                       methods=list(METHODS), confidence=eval_settings.confidence,
                       forgetting=Forgetting(texts=3, perplexity=perplexity),
                       **summarise(records, "base", eval_settings, seed=0))


def _render(table) -> list[str]:
    console = Console(width=80, color_system=None)
    with console.capture() as captured:
        console.print(table)
    return captured.get().rstrip("\n").splitlines()


def _data_rows(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("│")]


@pytest.fixture
def single_answer_results(eval_settings):
    return _results(_items("quality", 50, 1), eval_settings)


def test_a_row_per_model_and_method_fits_80_columns(single_answer_results):
    [table] = results_tables(single_answer_results)
    lines = _render(table)
    assert max(map(len, lines)) <= 80, "\n".join(lines)
    # No row wraps: a line per row, one header line.
    assert len(_data_rows(lines)) == len(MODELS) * len(METHODS), "\n".join(lines)
    assert sum(line.startswith("┃") for line in lines) == 1, "\n".join(lines)
    trained = next(line for line in _data_rows(lines) if "trained" in line and "entigraph_cot" in line)
    score = next(s for s in single_answer_results.scores
                 if (s.model, s.method, s.metric) == ("trained", "entigraph_cot", "acc"))
    change = next(c for c in single_answer_results.comparisons
                  if (c.model, c.method, c.metric) == ("trained", "entigraph_cot", "acc"))
    assert f"{score.value:.2f} [{score.ci[0]:.2f}, {score.ci[1]:.2f}]" in trained
    assert f"{change.difference:+.2f} [{change.ci[0]:+.2f}, {change.ci[1]:+.2f}]" in trained
    assert "perplexity on held-out text (1,523 tokens): base 12.35, trained 12.35" in "\n".join(lines)


def test_single_answer_questions_have_no_f1(single_answer_results):
    assert {s.metric for s in single_answer_results.scores} == {"acc", "acc_norm"}
    assert not any(c.metric == "f1" for c in single_answer_results.comparisons)
    assert "F1" not in "\n".join(_render(results_tables(single_answer_results)[0]))


def test_f1_is_shown_for_the_sets_with_several_correct_options(eval_settings):
    items = _items("quality", 30, 1) + _items("coursera", 20, 2)
    results = _results(items, eval_settings)
    f1 = [s for s in results.scores if s.metric == "f1"]
    assert {s.n for s in f1} == {20}, "the multi-answer set's questions only"
    accuracy, option_f1 = results_tables(results)
    lines = _render(option_f1)
    assert "option F1" in "\n".join(lines) and max(map(len, lines)) <= 80, "\n".join(lines)
    assert len(_data_rows(lines)) == len(MODELS) * len(METHODS), "\n".join(lines)
    assert len(_data_rows(_render(accuracy))) == len(MODELS) * len(METHODS)
