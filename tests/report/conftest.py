"""Run folders for the report tests, built from real pieces: the ingest stage on the demo corpus (plus a
document whose title and text carry a script), a real evaluation with the embedded model, and small
hand-written TEST FIXTURES in the documented formats for the stages between them (synthetic data
statistics and samples, a training log)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_CORPUS = ROOT / "examples" / "quality" / "quality-demo.jsonl"
HOSTILE = "<script>document.title='pwned';document.body.innerHTML='pwned'</script>"
HOSTILE_IMG = "<img src=x onerror=\"document.title='pwned'\">"

# TEST FIXTURE: synthetic/stats.json in the generate stage's format (not model output).
SYNTHETIC_STATS = {
    "targets": {"entigraph": 2000, "wrap": 1000},
    "generators": {"entigraph": {"requests": 12, "cached": 0, "rejected": {"empty": 1}, "records": 11},
                   "wrap": {"requests": 8, "cached": 0, "rejected": {"preamble_only": 2}, "records": 6}},
    "mix": {"records": 20, "tokens": 9000, "synthetic_tokens": 5200, "raw_copies": 1,
            "rejected": {"eval_leak": 1, "near_duplicate": 2},
            "by_generator": {"entigraph": {"records": 10, "tokens": 3800, "rejected": {"eval_leak": 1}},
                             "wrap": {"records": 5, "tokens": 1400, "rejected": {"near_duplicate": 2}},
                             "raw": {"records": 5, "tokens": 3800, "rejected": {}}}},
    "instructions": 0,
}
# TEST FIXTURE: synthetic/coverage.json (overall and per document).
COVERAGE = {"entigraph": {"entities": 0.62, "pairs": 0.18, "documents": {"doc-a": {"entities": 0.7, "pairs": 0.2}}}}


def _train_log() -> str:
    """TEST FIXTURE: train/log.jsonl lines in the train stage's format, with a line cut by a crash."""
    lines = [{"step": s, "tokens": 512 * s, "loss": 3.0 - 0.1 * s, "lr": 1e-4 * min(1, s / 2), "grad_norm": 1.0,
              "tokens_per_s": 900.0 + s, "mfu": None} for s in range(1, 9)]
    return "".join(json.dumps(line) + "\n" for line in lines) + '{"step": 9, "lo'


@pytest.fixture(scope="session")
def ingested_run(tmp_path_factory) -> Path:
    """A run folder where only ingest has run: the demo stories and a document carrying scripts."""
    from synthcpt.config import load_config
    from synthcpt.pipeline import Runner

    folder = tmp_path_factory.mktemp("report")
    hostile = folder / "hostile.jsonl"
    hostile.write_text(json.dumps({"id": "hostile", "title": f"Hostile {HOSTILE}",
                                   "text": f"A page with {HOSTILE} and {HOSTILE_IMG} in it."}) + "\n")
    run_dir = folder / "run"
    cfg = load_config(None, [f"run.dir={run_dir}", f"ingest.inputs=[{DEMO_CORPUS}, {hostile}]"])
    Runner(cfg, reporter=lambda _: None).execute(["ingest"], force=set())
    return run_dir


@pytest.fixture(scope="session")
def full_run(ingested_run, embedded_model, tmp_path_factory) -> Path:
    """The ingested run plus fixture files for generate and train, and a real evaluation of the embedded
    model against itself (as the trained model) on 8 demo questions."""
    from synthcpt.atomic import write_records
    from synthcpt.config import load_config
    from synthcpt.s6_eval.qa import load_run_questions
    from synthcpt.s6_eval.stage import evaluate_run

    run_dir = tmp_path_factory.mktemp("report-full") / "run"
    shutil.copytree(ingested_run, run_dir)
    (run_dir / "synthetic").mkdir()
    (run_dir / "synthetic" / "stats.json").write_text(json.dumps(SYNTHETIC_STATS))
    (run_dir / "synthetic" / "coverage.json").write_text(json.dumps(COVERAGE))
    # TEST FIXTURE: a synthetic shard whose text carries scripts, as a corpus copied into it could.
    write_records(run_dir / "synthetic" / "wrap" / "part-00000.parquet",
                  [{"id": "w1", "text": f"Rephrased: {HOSTILE} then {HOSTILE_IMG}.", "generator": "wrap",
                    "style": "medium", "doc_id": "hostile"}])
    (run_dir / "train").mkdir()
    (run_dir / "train" / "log.jsonl").write_text(_train_log())
    (run_dir / "train" / "stats.json").write_text(json.dumps({"steps": 8, "tokens": 4096, "final_loss": 2.2}))
    (run_dir / "train" / "model").symlink_to(embedded_model, target_is_directory=True)
    cfg = load_config(None, [f"run.dir={run_dir}", "eval.methods=[loglik]", "eval.bootstrap_resamples=200"])
    items = [i for i in load_run_questions(run_dir / "ingest")][:8]
    evaluate_run(cfg, run_dir, items, run_dir / "eval")
    return run_dir


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found
