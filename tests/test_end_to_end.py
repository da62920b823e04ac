"""The whole pipeline on one short story at a tiny budget, through the CLI as a user runs it
(`synthcpt run CORPUS` in an 80-column terminal): every stage's output, the report, a terminal that shows
synthcpt's lines only, and a rerun that redoes nothing."""

import json
import re

import pytest

from synthcpt.atomic import read_records
from tests.conftest import DEMO_CORPUS, REPLAY_SAMPLE
from tests.helpers import synthcpt

pytestmark = pytest.mark.slow

TINY = [
    "generate.total_tokens=1500", "generate.entigraph.max_relations=4", "generate.entigraph.max_tokens=96",
    "generate.wrap.max_tokens=96", "generate.rc_llm.max_tokens=96", "generate.bonito.max_tokens=96",
    "train.max_steps=3", "train.block_size=256", "train.batch_size=2", "train.micro_batch_size=2",
    "train.checkpoint_every=2", "train.lr=1e-4", f"train.replay_path={REPLAY_SAMPLE}",
]


# vLLM's log lines: "(EngineCore pid=12) INFO 12-01 10:35:46 [core.py:402] ..." or "INFO 12-01 ...".
LIBRARY_LOG = re.compile(r"\b(INFO|DEBUG|WARNING)\b \d\d-\d\d \d\d:\d\d:\d\d")
# Characters of rich's table borders: a table's lines, which must fit the terminal (plain lines may be
# longer: a path is never broken, the terminal wraps it).
TABLE_BORDERS = set("┏┃┡│└━─")


def rows(path):
    return read_records(*sorted(path.glob("*.parquet")))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, embedded_model):
    folder = tmp_path_factory.mktemp("e2e")
    (folder / "corpus").mkdir()
    (folder / "corpus" / "story.jsonl").write_text(DEMO_CORPUS.read_text().splitlines()[0] + "\n")
    args = ["run", str(folder / "corpus"), "--preset", "cpu-demo", "--set", f"run.dir={folder / 'run'}",
            *[a for s in TINY for a in ("--set", s)]]
    proc = synthcpt(*args, timeout=1800, columns=80)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder / "run", args, proc


def test_every_stage_completes_with_its_outputs(finished_run):
    run_dir, _, _ = finished_run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    from synthcpt.pipeline import stage_names

    assert {n: manifest["stages"][n]["status"] for n in stage_names()} == {n: "complete" for n in stage_names()}
    documents = read_records(run_dir / "ingest" / "documents.parquet")
    assert [d["title"] for d in documents] == ["LOST IN TRANSLATION"]
    entities = read_records(run_dir / "entities" / "entities.parquet")
    assert len(entities) >= 5
    assert (run_dir / "graph" / "graph.graphml").is_file()
    mix = rows(run_dir / "generate" / "mix")
    generators = {r["generator"] for r in mix}
    assert "raw" in generators and len(generators - {"raw"}) >= 2, generators
    assert all(r["text"].strip() and r["doc_id"] for r in mix)
    assert (run_dir / "train" / "model" / "config.json").is_file()
    log = [json.loads(line) for line in (run_dir / "train" / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3]
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert "base" in json.dumps(results) and "trained" in json.dumps(results)
    report = (run_dir / "report.html").read_text()
    assert "LOST IN TRANSLATION" in report and "<table" in report
    assert (run_dir / "report.md").is_file()


def test_the_terminal_shows_synthcpt_lines_only_and_ends_with_the_report(finished_run):
    run_dir, _, proc = finished_run
    assert not LIBRARY_LOG.findall(proc.stderr), proc.stderr[-3000:]
    assert "Loading safetensors" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr[-3000:]
    assert "Loading weights" not in proc.stderr and "it/s]" not in proc.stderr, proc.stderr[-3000:]  # no library bars
    lines = proc.stderr.rstrip().splitlines()
    assert lines[-1] == f"report: {run_dir / 'report.html'} and {run_dir / 'report.md'}"
    tables = [line for line in lines if TABLE_BORDERS & set(line)]
    assert len(tables) >= 3 and max(map(len, tables)) <= 80, "\n".join(tables)
    assert proc.stdout == ""


def test_rerun_redoes_nothing(finished_run):
    run_dir, args, _ = finished_run
    before = json.loads((run_dir / "manifest.json").read_text())["stages"]
    proc = synthcpt(*args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = json.loads((run_dir / "manifest.json").read_text())["stages"]
    assert {n: e["started"] for n, e in after.items()} == {n: e["started"] for n, e in before.items()}
    assert proc.stderr.count("up to date, skipped") == len(before)
    # The closing summary: tokens per generator, base and trained accuracy, where the report is.
    assert "mix:" in proc.stderr and "entigraph" in proc.stderr
    assert "trained" in proc.stderr and "base" in proc.stderr
    assert f"report: {run_dir / 'report.html'}" in proc.stderr
