"""Shared fixtures of the evaluation tests: one loaded scorer of the embedded model, the demo questions."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_CORPUS = ROOT / "examples" / "quality" / "quality-demo.jsonl"


@pytest.fixture(scope="session")
def scorer(embedded_model):
    from synthcpt.s7_eval.loglik import LoglikScorer

    return LoglikScorer(str(embedded_model))


@pytest.fixture(scope="session")
def demo_items():
    from synthcpt.questions import load_qa_file

    return load_qa_file(DEMO_CORPUS)


@pytest.fixture(scope="session")
def demo_passages(demo_items):
    """The demo questions' documents cut into ~1024-character passages (what `rag` retrieves from outside a run)."""
    from synthcpt.s7_eval.methods.rag import document_passages

    return document_passages(demo_items)


@pytest.fixture
def eval_settings():
    from synthcpt.s7_eval.settings import eval_settings

    return eval_settings()(methods=["loglik"], bootstrap_resamples=200)


def score(method: str, candidate, items, settings, scorer=None, engine_settings=None, work_dir=None, seed=0):
    """The records of one evaluation method plugin for `candidate` on `items`."""
    from synthcpt.plugins import EVAL_METHODS
    from synthcpt.s7_eval.method import MethodContext
    from synthcpt.s7_eval.prompts import EvalPrompts

    ctx = MethodContext(candidate, items, settings, EvalPrompts(), engine_settings, work_dir, seed, lambda: scorer)
    return EVAL_METHODS.get(method)(settings).score(ctx)

