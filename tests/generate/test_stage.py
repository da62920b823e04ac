"""The generate stage end to end with the embedded model: records parse, carry provenance, respect
their budgets, and the mix, instruction pairs and stats are written."""

from __future__ import annotations

import json

import datasets
import pytest

from synthcpt.atomic import features, read_records
from synthcpt.prompts import Prompt, load_prompt
from synthcpt.run_folder import document_of
from synthcpt.s5_generate.records import INSTRUCTION_SCHEMA, RECORD_SCHEMA, read_shards
from tests.generate.conftest import TARGETS

pytestmark = pytest.mark.slow


def records(run_dir, folder):
    return read_shards(run_dir / "generate" / folder)


def provenance_hash(prompt_file: str) -> str:
    """The hash of the shipped prompt a record names, or of its system and user prompts (`system+user`)."""
    parts = [load_prompt(name) for name in prompt_file.split("+")]
    return Prompt(prompt_file, "".join(p.text for p in parts)).hash


def test_every_generator_made_records_with_provenance(generated_run):
    config, run_dir = generated_run
    documents = {r["doc_id"] for r in read_records(run_dir / "ingest/documents.parquet")}
    for generator in TARGETS:
        rows = records(run_dir, generator)
        assert rows, f"{generator} made no records"
        assert len({r["id"] for r in rows}) == len(rows)
        for row in rows:
            assert row["generator"] == generator and row["doc_id"] in documents
            assert row["text"].strip() and row["n_tokens"] > 0 and row["style"]
            assert row["prompt_hash"] == provenance_hash(row["prompt_file"])
            assert row["model"] == ("" if generator == "rc_mined" else config.engine.model)
    assert {r["style"] for r in records(run_dir, "wrap")} <= {"easy", "qa"}
    for row in records(run_dir, "rc_llm"):
        assert "\nQuestion: " in row["text"] and "\nAnswer: " in row["text"]
    headers = {r["doc_id"]: document_of(r).header for r in read_records(run_dir / "ingest/documents.parquet")}
    for row in records(run_dir, "entigraph"):
        assert row["style"] == {1: "single", 2: "pair", 3: "triple"}[len(row["entities"])]
        assert row["prompt_file"] == f"entigraph/{row['style']}s.md+entigraph/document.md"
        assert row["text"].startswith(headers[row["doc_id"]])  # the document's title first


def test_coverage_of_the_graph_is_measured(generated_run):
    _, run_dir = generated_run
    coverage = json.loads((run_dir / "generate/coverage.json").read_text())
    stats = json.loads((run_dir / "generate/stats.json").read_text())["coverage"]
    for part in ("entigraph", "all"):
        assert 0 < coverage[part]["entity_coverage"] <= 1
        assert stats[part]["entity_coverage"] == coverage[part]["entity_coverage"]
    mix = records(run_dir, "mix")
    assert coverage["entigraph"]["passages"] == sum(1 for r in mix if r["generator"] == "entigraph")
    assert coverage["all"]["passages"] == sum(1 for r in mix if r["generator"] != "raw")


def test_budgets_are_met_and_not_exceeded_by_more_than_one_record(generated_run):
    _, run_dir = generated_run
    stats = json.loads((run_dir / "generate/stats.json").read_text())
    for generator, target in TARGETS.items():
        rows = records(run_dir, generator)
        tokens = sum(r["n_tokens"] for r in rows)
        assert stats["generators"][generator]["tokens"] == tokens
        assert tokens - rows[-1]["n_tokens"] < target, f"{generator} went past its budget"
        exhausted = stats["generators"][generator]["produced_records"] == len(rows)
        assert tokens >= target or exhausted, f"{generator} stopped short of its budget"


def test_mix_holds_raw_and_synthetic_with_stats(generated_run):
    _, run_dir = generated_run
    mix = records(run_dir, "mix")
    stats = json.loads((run_dir / "generate/stats.json").read_text())["mix"]
    assert stats["records"] == len(mix) and stats["tokens"] == sum(r["n_tokens"] for r in mix)
    assert {r["generator"] for r in mix} == {"raw", *TARGETS}
    assert stats["raw_copies"] >= 1
    assert sum(1 for r in mix if r["generator"] == "raw") == 3 * stats["raw_copies"]
    made = sum(len(records(run_dir, g)) for g in TARGETS)
    rejected = sum(stats["rejected"].values())
    assert len(mix) - 3 * stats["raw_copies"] == made - rejected  # every record kept or counted
    assert datasets.Dataset.from_parquet(str(next((run_dir / "generate/mix").glob("*.parquet")))).features == \
        features(RECORD_SCHEMA)


def test_instruction_pairs_match_kept_bonito_records(generated_run):
    _, run_dir = generated_run
    files = sorted(str(p) for p in (run_dir / "generate/instructions").glob("*.parquet"))
    pairs = datasets.Dataset.from_parquet(files)
    assert pairs.features == features(INSTRUCTION_SCHEMA)
    kept = {r["id"]: r for r in records(run_dir, "mix") if r["generator"] == "bonito"}
    assert {p["id"] for p in pairs} == set(kept)
    for pair in pairs:
        assert pair["instruction"] and pair["response"]
        assert kept[pair["id"]]["text"] == f"{pair['instruction']}\n\n{pair['response']}"
        assert pair["task_type"] == kept[pair["id"]]["style"]
