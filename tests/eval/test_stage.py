"""The eval stage on a run folder: base vs trained model, intervals, forgetting, resume, the CLI form."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from synthcpt.atomic import read_records
from tests.helpers import synthcpt

ROOT = Path(__file__).resolve().parents[2]
DEMO_CORPUS = ROOT / "examples" / "quality" / "quality-demo.jsonl"
REPLAY_SAMPLE = ROOT / "examples" / "replay" / "general-sample.jsonl"


def _eval_context(run_dir: Path, overrides: list[str]):
    from synthcpt.config import load_config
    from synthcpt.pipeline import RunFolder, Runner, StageContext, stage_by_name

    cfg = load_config(None, [f"run.dir={run_dir}", f"ingest.inputs=[{DEMO_CORPUS}]", "entities.extractor=spacy",
                             *overrides])
    # The exam: the demo's given questions (no model call).
    Runner(cfg, reporter=lambda _: None).execute(["ingest", "entities", "graph", "exam"], force=set())
    return StageContext(cfg, stage_by_name("eval"), RunFolder(run_dir))


@pytest.mark.slow
def test_eval_stage_compares_base_and_trained(tmp_path, embedded_model, capsys):
    from synthcpt.s7_eval.stage import STAGE

    run_dir = tmp_path / "run"
    ctx = _eval_context(run_dir, ["eval.methods=[loglik]", "eval.bootstrap_resamples=200",
                                  f"train.replay_path={REPLAY_SAMPLE}", "eval.perplexity_max_tokens=1500"])
    # The trained model of this fixture run is the embedded model itself: both must score the same.
    (run_dir / "train").mkdir()
    (run_dir / "train" / "model").symlink_to(embedded_model, target_is_directory=True)
    stats = STAGE.run(ctx)
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert stats.questions == results["questions"] == 50 and len(stats.models) == 2
    assert set(results["models"]) == {"base", "trained"}
    acc = {(s["model"], s["metric"]): s for s in results["scores"] if s["method"] == "loglik"}
    assert acc["base", "acc"]["value"] == acc["trained", "acc"]["value"] == stats.summary()["base_loglik_acc"]
    assert acc["base", "acc"]["ci"][0] <= acc["base", "acc"]["value"] <= acc["base", "acc"]["ci"][1]
    difference = next(c for c in results["comparisons"] if c["metric"] == "acc")
    assert (difference["difference"], difference["ci"], difference["n"]) == (0.0, [0.0, 0.0], 50)
    perplexity = results["forgetting"]["perplexity"]
    assert results["forgetting"]["texts"] >= 1
    assert perplexity["base"]["perplexity"] == pytest.approx(perplexity["trained"]["perplexity"], rel=1e-6)
    assert 1 < perplexity["base"]["perplexity"] < 1000 and perplexity["base"]["tokens"] > 500
    assert len({(d["doc_id"], d["model"]) for d in results["per_document"]}) == 6
    rows = read_records(run_dir / "eval" / "questions.parquet")
    assert len(rows) == 100 and {r["model"] for r in rows} == {"base", "trained"}

    # A rerun reuses the finished parts: the same results, the part files untouched.
    parts = {p: p.stat().st_mtime_ns for p in (run_dir / "eval" / "parts").iterdir()}
    STAGE.run(ctx)
    assert json.loads((run_dir / "eval" / "results.json").read_text()) == results
    assert {p: p.stat().st_mtime_ns for p in (run_dir / "eval" / "parts").iterdir()} == parts
    STAGE.show(ctx)
    assert "closed-book QA" in capsys.readouterr().err


def test_standalone_evaluate_on_a_question_file(tmp_path):
    questions = tmp_path / "mine.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in [
        {"question": "What number comes after 1, 2, 3, 4, 5, 6, 7, 8, 9?", "options": ["Blue whales", "10"],
         "answer": "B", "doc_id": "counting", "title": "Counting"},
        {"question": "Which word is the opposite of hot?", "options": ["cold", "seventeen"], "answer": "A",
         "doc_id": "words", "document": "Hot and cold are opposites."},
    ]))
    out = tmp_path / "out"
    proc = synthcpt("evaluate", "--model", "default", "--qa", str(questions), "--out", str(out),
                    "--set", "eval.bootstrap_resamples=100", "--set", "eval.methods=[loglik,open_book]")
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["questions"] == 2 and results["baseline"] == "default"
    scores = {(s["method"], s["metric"]): s for s in results["scores"]}
    # Only the second question has its document: the open-book reference is scored on it alone.
    assert scores["open_book", "acc"]["n"] == 1 and scores["loglik", "acc"]["n"] == 2
    assert not math.isnan(scores["loglik", "acc"]["value"])
    assert "closed-book QA" in proc.stdout
