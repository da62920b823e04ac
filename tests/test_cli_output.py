"""The corpus on the command line: `synthcpt ingest CORPUS` takes a folder, and a corpus path that does not
exist is one error line. (What `synthcpt run CORPUS` prints is tested on the end-to-end run.)"""

from __future__ import annotations

import pytest

from synthcpt.atomic import read_records
from tests.conftest import DEMO_CORPUS
from tests.helpers import assert_one_line_error, synthcpt


@pytest.fixture
def corpus_folder(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "story.jsonl").write_text(DEMO_CORPUS.read_text().splitlines()[0] + "\n")
    return folder


def test_ingest_takes_the_corpus_as_arguments(corpus_folder, tmp_path, embedded_model):
    proc = synthcpt("ingest", str(corpus_folder), "--set", f"run.dir={tmp_path / 'run'}", columns=80)
    assert proc.returncode == 0, proc.stderr[-3000:]
    documents = read_records(tmp_path / "run" / "ingest" / "documents.parquet")
    assert [d["title"] for d in documents] == ["LOST IN TRANSLATION"]
    lines = proc.stderr.rstrip().splitlines()
    assert lines[-1] == f"ingest output: {tmp_path / 'run' / 'ingest'}"
    assert "" not in lines, proc.stderr  # the stage's bar, off in a captured output, leaves no empty line


def test_a_corpus_path_that_does_not_exist_is_one_error_line(tmp_path):
    proc = synthcpt("run", str(tmp_path / "nowhere"), "--set", f"run.dir={tmp_path / 'run'}", columns=80)
    assert_one_line_error(proc, "corpus not found", str(tmp_path / "nowhere"))
    assert not (tmp_path / "run").exists()
