"""The typed hand-offs: what a stage writes through the run folder reads back equal, a NaN included;
a file of another shape is one clear error naming it; the manifest keeps the flat summary."""

from __future__ import annotations

import math

import pytest

from synthcpt.errors import SynthcptError
from synthcpt.run_folder import RunFolder
from synthcpt.stats import EvalResults, Forgetting, IngestStats, Perplexity, Score


def _ingest_stats() -> IngestStats:
    return IngestStats(documents=2, tokens=900, chunks=5, chunk_tokens=300, duplicates_dropped=1, skipped=1,
                       skipped_by_reason={"empty": 1}, questions=4, questions_unparsed=0)


def test_stats_read_back_as_written(tmp_path):
    run = RunFolder(tmp_path)
    stats = _ingest_stats()
    run.write_stats("ingest", stats)
    assert run.stats_path("ingest") == tmp_path / "ingest" / "stats.json"
    assert run.ingest_stats() == stats
    assert run.train_stats() is None  # a stage that has not run


def test_a_nan_survives_the_round_trip(tmp_path):
    run = RunFolder(tmp_path)
    results = EvalResults(questions=1, documents=1, qa_sets=["s"], models={"base": "default"}, baseline="base",
                          methods=["loglik"], confidence=0.95,
                          scores=[Score(model="base", method="loglik", metric="acc", n=1, value=1.0, ci=(1.0, 1.0))],
                          comparisons=[], per_document=[],
                          forgetting=Forgetting(texts=1, perplexity={"base": Perplexity(perplexity=math.nan,
                                                                                        tokens=0, windows=0)}))
    run.write_stats("eval", results)
    assert run.stats_path("eval").name == "results.json"
    assert math.isnan(run.eval_results().forgetting.perplexity["base"].perplexity)


def test_a_file_of_another_shape_is_one_error_naming_it(tmp_path):
    run = RunFolder(tmp_path)
    run.write_stats("ingest", _ingest_stats())
    path = run.stats_path("ingest")
    path.write_text(path.read_text().replace('"documents"', '"docs"'))
    with pytest.raises(SynthcptError) as raised:
        run.ingest_stats()
    assert str(path) in str(raised.value) and "rerun its stage" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_summary_keeps_flat_fields_only():
    summary = _ingest_stats().summary()
    assert summary["documents"] == 2 and summary["skipped_by_reason"] == {"empty": 1}
    results_summary = EvalResults(
        questions=1, documents=1, qa_sets=["s"], models={"base": "default", "trained": "t"}, baseline="base",
        methods=["loglik"], confidence=0.95, comparisons=[], per_document=[],
        scores=[Score(model="base", method="loglik", metric="acc", n=1, value=0.5, ci=(0.0, 1.0))],
        forgetting=Forgetting(texts=0, perplexity={})).summary()
    assert results_summary == {"questions": 1, "models": 2, "base_loglik_acc": 0.5}
