"""Shared fixtures of the evaluation tests: one loaded scorer of the embedded model, the demo questions."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_CORPUS = ROOT / "examples" / "quality" / "quality-demo.jsonl"


@pytest.fixture(scope="session")
def scorer(embedded_model):
    from synthcpt.s6_eval.loglik import LoglikScorer

    return LoglikScorer(str(embedded_model))


@pytest.fixture(scope="session")
def demo_items():
    from synthcpt.s6_eval.qa import load_qa_file

    return load_qa_file(DEMO_CORPUS)


@pytest.fixture
def eval_settings():
    from synthcpt.s6_eval import EvalSettings

    return EvalSettings(methods=["loglik"], bootstrap_resamples=200)

