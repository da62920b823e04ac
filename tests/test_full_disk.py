"""A run folder on a full disk: the stage stops with one clear line, nothing half-written is taken for
done, and once space is freed the same command resumes and gives what a run with room gives.

The disk is a small tmpfs (mounting needs root; the test skips without it), filled by ingesting a corpus
larger than it: the cheapest stage that writes much.
"""

from __future__ import annotations

import json
import random
import string
import subprocess
from pathlib import Path

import pytest

from synthcpt.atomic import read_records
from tests.helpers import assert_one_line_error, synthcpt

DISK_MB = 1
# Random words barely compress: the documents and their chunks take over twice this on disk.
CORPUS_BYTES = 600_000
DOCUMENTS = 6


def random_text(rng: random.Random, size: int) -> str:
    """Sentences of twelve random words, about `size` characters."""
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(size // 6)]
    return " ".join(" ".join(words[i:i + 12]).capitalize() + "." for i in range(0, len(words), 12))


def write_corpus(folder: Path) -> Path:
    rng = random.Random(0)
    folder.mkdir()
    for n in range(DOCUMENTS):
        (folder / f"doc{n}.txt").write_text(random_text(rng, CORPUS_BYTES // DOCUMENTS))
    return folder


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(disk)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a {DISK_MB} MB tmpfs to fill (needs root): {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=True)


def grow(disk: Path, mb: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={mb}m", str(disk)], check=True)


def assert_ingested_whole(run_dir: Path, corpus: Path) -> None:
    """Every corpus file is a document with its text, and its chunks tile that text exactly."""
    documents = read_records(run_dir / "ingest" / "documents.parquet")
    chunks = read_records(run_dir / "ingest" / "chunks.parquet")
    assert sorted(d["text"] for d in documents) == sorted(f.read_text() for f in corpus.iterdir())
    for document in documents:
        own = sorted((c for c in chunks if c["doc_id"] == document["doc_id"]), key=lambda c: c["index"])
        assert "".join(c["text"] for c in own) == document["text"]
        assert len(own) == document["n_chunks"]


def test_full_disk_stops_with_one_line_then_resumes_once_space_is_freed(small_disk, tmp_path, embedded_model):
    corpus = write_corpus(tmp_path / "corpus")
    full = synthcpt("ingest", str(corpus), "--set", f"run.dir={small_disk / 'run'}")
    assert_one_line_error(full, "disk full", "free space and rerun to resume")
    manifest = json.loads((small_disk / "run" / "manifest.json").read_text())
    assert manifest["stages"]["ingest"]["status"] == "failed"

    grow(small_disk, 64)
    resumed = synthcpt("ingest", str(corpus), "--set", f"run.dir={small_disk / 'run'}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((small_disk / "run" / "manifest.json").read_text())["stages"]["ingest"]["status"] == "complete"
    assert_ingested_whole(small_disk / "run", corpus)
