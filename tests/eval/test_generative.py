"""Few-shot chain-of-thought through the engine (real vLLM with the embedded model)."""

from __future__ import annotations

import pytest

from synthcpt.s7_eval.metrics import parse_answer
from synthcpt.s7_eval.records import Candidate
from synthcpt.s7_eval.settings import eval_settings
from tests.eval.conftest import score


@pytest.mark.slow
def test_chain_of_thought_answers_are_parsed_and_cached(demo_items, vllm_engine_settings, tmp_path):
    settings = eval_settings()(methods=["generative"], generative={"shots": 2, "max_tokens": 64})
    items = demo_items[:4]
    records = score("generative", Candidate("base", "default"), items, settings, engine_settings=vllm_engine_settings,
                    work_dir=tmp_path)
    assert [r["question_id"] for r in records] == [i.question_id for i in items]
    for item, record in zip(items, records):
        [text] = record["outputs"]
        assert text.strip()
        parsed = parse_answer(text, item.letters)
        assert record["unparsed"] == float(parsed is None)
        assert record["acc"] == float(parsed is not None and set(parsed) == set(item.answers))
    again = score("generative", Candidate("base", "default"), items, settings, engine_settings=vllm_engine_settings,
                    work_dir=tmp_path)
    assert again == records
