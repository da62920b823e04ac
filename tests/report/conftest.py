"""Run folders for the report tests, built from real pieces: ingest on the demo corpus (plus a document
whose title and text carry a script), real spaCy entities and the real graph, the real train stage
on the embedded model (its log, stats and weights), and a real evaluation of base against trained.
Only generate's outputs are small hand-written TEST FIXTURES in its documented formats (records,
stats); their coverage of the graph is computed by the real coverage code."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from synthcpt.stats import GenerateStats, GeneratorStats, MixPart, MixStats

ROOT = Path(__file__).resolve().parents[2]
DEMO_CORPUS = ROOT / "examples" / "quality" / "quality-demo.jsonl"
REPLAY_SAMPLE = ROOT / "examples" / "replay" / "general-sample.jsonl"
HOSTILE = "<script>document.title='pwned';document.body.innerHTML='pwned'</script>"
HOSTILE_IMG = "<img src=x onerror=\"document.title='pwned'\">"
QUESTIONS = 8


def _ingest_overrides(run_dir: Path, hostile: Path) -> list[str]:
    return [f"run.dir={run_dir}", f"ingest.inputs=[{DEMO_CORPUS}, {hostile}]", "entities.extractor=spacy"]


@pytest.fixture(scope="session")
def hostile_corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report-corpus") / "hostile.jsonl"
    path.write_text(json.dumps({"id": "hostile", "title": f"Hostile {HOSTILE}",
                                "text": f"A page with {HOSTILE} and {HOSTILE_IMG} in it."}) + "\n")
    return path


@pytest.fixture(scope="session")
def ingested_run(hostile_corpus, tmp_path_factory) -> Path:
    """A run folder where only ingest has run: the demo stories and a document carrying scripts."""
    from synthcpt.config import load_config
    from synthcpt.pipeline import Runner

    run_dir = tmp_path_factory.mktemp("report") / "run"
    Runner(load_config(None, _ingest_overrides(run_dir, hostile_corpus)), reporter=lambda _: None).execute(
        ["ingest"], force=set())
    return run_dir


def _fixture_records(run_dir: Path) -> dict[str, list[dict]]:
    """TEST FIXTURE: generate's records in its schema, naming real entities of the real graph, with the
    shipped prompts' names and hashes; one carries scripts, as a corpus copied into it could."""
    from synthcpt.graph_drawing import top_entities
    from synthcpt.prompts import load_prompt
    from synthcpt.run_folder import load_graph
    from synthcpt.s5_generate.records import make_record

    graph = load_graph(run_dir / "graph")
    relation, medium = load_prompt("entigraph/pairs.md"), load_prompt("wrap/medium.md")
    entigraph = []
    for i, key in enumerate(top_entities(graph, 6)):
        node = graph.nodes[key]
        partner = next(iter(sorted(graph.neighbors(key))), key)
        names = [node["label"], graph.nodes[partner]["label"]]
        entigraph.append(make_record(id=f"e{i}", text=f"{names[0]} and {names[1]} meet again.", generator="entigraph",
                                     style="pair", doc_id=node["documents"][0], entities=names,
                                     prompt_file=relation.name, prompt_hash=relation.hash, model="default",
                                     n_tokens=8))
    wrap = [make_record(id="w1", text=f"Rephrased: {HOSTILE} then {HOSTILE_IMG}.", generator="wrap", style="medium",
                        doc_id="hostile", prompt_file=medium.name, prompt_hash=medium.hash, model="default",
                        n_tokens=30)]
    apply = load_prompt("active_reading/apply.md")
    active_reading = [make_record(id="a1", text="Timeline: the story's events in order.", generator="active_reading",
                                  style="create a timeline", doc_id="hostile", prompt_file=apply.name,
                                  prompt_hash=apply.hash, model="default", n_tokens=9)]
    return {"entigraph": entigraph, "wrap": wrap, "active_reading": active_reading}


def _fixture_stats(records: dict[str, list[dict]]) -> GenerateStats:
    """TEST FIXTURE: the generate stage's stats, counting the fixture records."""
    tokens = {name: sum(r["n_tokens"] for r in rows) for name, rows in records.items()}
    made = {name: GeneratorStats(target_tokens=2000, requests=len(rows) + 2, cached=0, waves=1,
                                 rejected={"empty": 1, "preamble_only": 1}, truncated=0, produced_records=len(rows),
                                 produced_tokens=tokens[name], records=len(rows), tokens=tokens[name])
            for name, rows in records.items()}
    by_generator = {"entigraph": MixPart(records=len(records["entigraph"]) - 1, tokens=tokens["entigraph"] - 8,
                                         rejected={"eval_leak": 1}),
                    "wrap": MixPart(records=1, tokens=tokens["wrap"], rejected={}),
                    "active_reading": MixPart(records=1, tokens=tokens["active_reading"], rejected={}),
                    "raw": MixPart(records=4, tokens=3800, rejected={"near_duplicate": 2})}
    synthetic_tokens = sum(tokens.values()) - 8
    mix = MixStats(records=sum(p.records for p in by_generator.values()),
                   tokens=sum(p.tokens for p in by_generator.values()), synthetic_tokens=synthetic_tokens,
                   raw_tokens=3800, raw_copies=1, raw_share=round(3800 / (3800 + synthetic_tokens), 4),
                   rejected={"eval_leak": 1, "near_duplicate": 2}, eval_texts_guarded=8, eval_texts_unguarded=0,
                   eval_texts_in_corpus=0, by_generator=by_generator)
    return GenerateStats(targets={name: 2000 for name in records}, generators=made, mix=mix, instructions=0,
                         engine={}, coverage=None)


def _write_synthetic(run_dir: Path) -> None:
    from synthcpt.run_folder import RunFolder
    from synthcpt.s5_generate.coverage import coverage
    from synthcpt.s5_generate.records import RECORD_SCHEMA, write_shards

    run = RunFolder(run_dir)
    records = _fixture_records(run_dir)
    for name, rows in records.items():
        write_shards(run.generator_folder(name), rows, RECORD_SCHEMA, 100)
    every = [r for rows in records.values() for r in rows]
    run.write_coverage({"entigraph": coverage(run.folder("graph"), records["entigraph"]),
                        "all": coverage(run.folder("graph"), every)})
    run.write_stats("generate", _fixture_stats(records))


def _spread(items: list, count: int) -> list:
    """The first questions of each document in turn, so accuracy per document has several rows."""
    seen: dict[str, int] = {}
    ranked = []
    for order, item in enumerate(items):
        seen[item.doc_id] = seen.get(item.doc_id, 0) + 1
        ranked.append((seen[item.doc_id], order, item))
    return [item for _, _, item in sorted(ranked, key=lambda r: r[:2])[:count]]


@pytest.fixture(scope="session")
def full_run(ingested_run, hostile_corpus, trained_run, tmp_path_factory) -> Path:
    """The ingested run through real entities and graph, generate's fixture outputs, the train stage's
    real outputs (`trained_run`), and a real evaluation of base and trained on 8 demo questions."""
    from synthcpt.config import load_config
    from synthcpt.pipeline import Runner
    from synthcpt.run_folder import RunFolder
    from synthcpt.s7_eval.evaluation import evaluate_run

    run_dir = tmp_path_factory.mktemp("report-full") / "run"
    shutil.copytree(ingested_run, run_dir)
    overrides = _ingest_overrides(run_dir, hostile_corpus)
    Runner(load_config(None, overrides), reporter=lambda _: None).execute(["entities", "graph", "exam"], force=set())
    _write_synthetic(run_dir)
    (run_dir / "train").mkdir()
    for name in ("log.jsonl", "stats.json"):
        shutil.copy(trained_run / "train" / name, run_dir / "train" / name)
    (run_dir / "train" / "model").symlink_to(trained_run / "train" / "model", target_is_directory=True)
    cfg = load_config(None, [*overrides, "eval.methods=[loglik]", "eval.bootstrap_resamples=200",
                             f"train.replay_path={REPLAY_SAMPLE}"])
    evaluate_run(cfg, run_dir, _spread(RunFolder(run_dir).exam(), QUESTIONS), run_dir / "eval")
    return run_dir


@pytest.fixture(scope="session")
def chromium() -> str:
    return find_chromium()


def find_chromium() -> str:
    """The headless browser's path; without one, the test skips, or fails on CI."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        # On CI (.ci/run installs it) a missing browser is a failure: a skip there would read as a pass.
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed on CI (.ci/run installs it with apt-get)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found
