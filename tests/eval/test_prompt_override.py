"""An evaluation prompt edited in the override folder (run.prompts_dir) makes the eval stage stale, and the
rerun scores the questions again with it."""

from __future__ import annotations

import re

import pytest
import yaml

from synthcpt.atomic import read_records
from tests.helpers import synthcpt

pytestmark = pytest.mark.slow


def _status_of(proc, stage: str) -> str:
    """The status column of the stage's row in `synthcpt status`'s table."""
    assert proc.returncode == 0, proc.stderr[-2000:]
    for line in (proc.stdout + proc.stderr).splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if len(cells) >= 2 and cells[0] == stage:
            return cells[1]
    raise AssertionError(f"no row for {stage} in:\n{proc.stdout}{proc.stderr}")


def test_edited_eval_prompt_makes_eval_stale_and_scores_again(tmp_path, embedded_model, demo_corpus):
    from synthcpt.config import load_config
    from synthcpt.pipeline import STAGES, RunFolder, Runner, fingerprints

    run_dir, prompts_dir = tmp_path / "run", tmp_path / "prompts"
    (prompts_dir / "eval").mkdir(parents=True)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({
        "run": {"dir": str(run_dir), "prompts_dir": str(prompts_dir)}, "ingest": {"inputs": [str(demo_corpus)]},
        "entities": {"extractor": "spacy"},
        "eval": {"methods": ["loglik"], "bootstrap_resamples": 100}}))
    config = load_config(config_path)
    # The exam holds the demo's given questions; generate and train are marked done, and with no trained
    # model the base model is scored.
    Runner(config, reporter=lambda _: None).execute(["ingest", "entities", "graph", "exam"], force=set())
    run, prints = RunFolder(run_dir), fingerprints(config)
    for stage in STAGES:
        if stage.name in ("generate", "train"):
            run.update_stage(stage.name, status="complete", fingerprint=prints[stage.name])

    assert synthcpt("eval", "-c", str(config_path)).returncode == 0
    first = read_records(run_dir / "eval" / "questions.parquet")
    assert _status_of(synthcpt("status", "-c", str(config_path)), "eval") == "complete"

    (prompts_dir / "eval" / "closed_book.md").write_text("{{article}}Q: {{question}}\nThe answer is:\n")
    assert _status_of(synthcpt("status", "-c", str(config_path)), "eval") == "stale"
    proc = synthcpt("eval", "-c", str(config_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = read_records(run_dir / "eval" / "questions.parquet")
    assert [r["question_id"] for r in again] == [r["question_id"] for r in first]
    assert [r["scores"] for r in again] != [r["scores"] for r in first]  # scored with the edited prompt
    assert _status_of(synthcpt("status", "-c", str(config_path)), "eval") == "complete"
