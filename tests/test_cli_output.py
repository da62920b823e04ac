"""What a user sees: `synthcpt run CORPUS` on a small real run prints synthcpt's lines only (no vLLM or
library logs without -v), fits an 80-column terminal, and ends with the report's path; a corpus path
that does not exist is one error line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from synthcpt.atomic import read_records
from tests.conftest import DEMO_CORPUS, REPLAY_SAMPLE, ROOT
from tests.helpers import assert_one_line_error

# vLLM's log lines: "(EngineCore pid=12) INFO 12-01 10:35:46 [core.py:402] ..." or "INFO 12-01 ...".
LIBRARY_LOG = re.compile(r"\b(INFO|DEBUG|WARNING)\b \d\d-\d\d \d\d:\d\d:\d\d")
# Characters of rich's table borders: a table's lines, which must fit the terminal (plain lines may be
# longer: a path is never broken, the terminal wraps it).
TABLE_BORDERS = set("┏┃┡│└━─")
# A tiny budget with one LLM generator, so that vLLM loads and generates, and a few training steps.
TINY = ["generate.generators=[wrap, rc_mined]", "generate.tokens={wrap: 50}", "train.max_steps=2",
        "train.block_size=128", "train.batch_size=2", "train.micro_batch_size=2", f"train.replay_path={REPLAY_SAMPLE}"]


def cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    """The CLI as a user in an 80-column terminal runs it (helpers.synthcpt uses a wide one)."""
    env = dict(os.environ, COLUMNS=str(columns), TERM="dumb")
    return subprocess.run([sys.executable, "-c", "from synthcpt.cli import main; main()", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800, check=False)


@pytest.fixture
def corpus_folder(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "story.jsonl").write_text(DEMO_CORPUS.read_text().splitlines()[0] + "\n")
    return folder


@pytest.mark.slow
def test_run_on_a_corpus_folder_prints_only_synthcpt_lines_and_ends_with_the_report(corpus_folder, tmp_path,
                                                                                    embedded_model):
    run_dir = tmp_path / "run"
    proc = cli("run", str(corpus_folder), "--preset", "cpu-demo", "--set", f"run.dir={run_dir}",
               *[a for s in TINY for a in ("--set", s)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["title"] for r in read_records(run_dir / "ingest" / "documents.parquet")] == ["LOST IN TRANSLATION"]
    assert read_records(*sorted((run_dir / "synthetic" / "mix").glob("*.parquet")))
    assert not LIBRARY_LOG.findall(proc.stderr), proc.stderr[-3000:]
    assert "Loading safetensors" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr[-3000:]
    assert "Loading weights" not in proc.stderr and "it/s]" not in proc.stderr, proc.stderr[-3000:]  # no library bars
    lines = proc.stderr.rstrip().splitlines()
    assert lines[-1] == f"report: {run_dir / 'report.html'} and {run_dir / 'report.md'}"
    tables = [line for line in lines if TABLE_BORDERS & set(line)]
    assert len(tables) >= 3 and max(map(len, tables)) <= 80, "\n".join(tables)
    assert proc.stdout == ""


def test_ingest_takes_the_corpus_as_arguments(corpus_folder, tmp_path, embedded_model):
    proc = cli("ingest", str(corpus_folder), "--set", f"run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    documents = read_records(tmp_path / "run" / "ingest" / "documents.parquet")
    assert [d["title"] for d in documents] == ["LOST IN TRANSLATION"]
    assert proc.stderr.rstrip().splitlines()[-1] == f"ingest output: {tmp_path / 'run' / 'ingest'}"


def test_a_corpus_path_that_does_not_exist_is_one_error_line(tmp_path):
    proc = cli("run", str(tmp_path / "nowhere"), "--set", f"run.dir={tmp_path / 'run'}")
    assert_one_line_error(proc, "corpus not found", str(tmp_path / "nowhere"))
    assert not (tmp_path / "run").exists()
