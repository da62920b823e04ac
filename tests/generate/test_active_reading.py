"""Active Reading: strategy lists from structured output, one record per applied strategy, the plan's
two steps (the embedded model, two short stories; a killed run's resume is tests/generate/test_resume.py)."""

from __future__ import annotations

import json

import pytest

from synthcpt.s5_generate.generators.active_reading import (
    INSTRUCTION_CHARS,
    ActiveReading,
    parse_strategies,
    strategies_model,
    style_of,
)
from synthcpt.s5_generate.records import read_shards
from synthcpt.s5_generate.run import cached_results, generation_context
from tests.helpers import config_of, result, run_stage, synthcpt, write_stories

# The stages before generate (spaCy entities: no model).
BEFORE = ["ingest", "entities", "graph", "exam"]
# Greedy strategy lists: the 135M model runs its first instruction on to max_tokens, which keeps its
# complete sentences.
SETTINGS = {"strategies": 2, "strategies_temperature": 0.0, "strategies_max_tokens": 200, "max_tokens": 128}


def overrides(run_dir, corpus, engine=None) -> list[str]:
    same_engine = [f"engine.vllm.kv_cache_gb={engine.vllm.kv_cache_gb}"] if engine is not None else []
    return [f"run.dir={run_dir}", f"ingest.inputs=[{corpus}]", *same_engine, "entities.extractor=spacy",
            "exam.source=given",
            # No repetition rule (it can never fire at 1.0): the 135M model's few applications are sometimes
            # all loops it rejects, leaving no record to check; the rule has its own tests in test_mix.py.
            "generate.generators=[active_reading]", "generate.mix.min_tokens=8", "generate.mix.max_repetition=1.0",
            *[f"generate.active_reading.{key}={value}" for key, value in SETTINGS.items()]]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_stories(tmp_path_factory.mktemp("stories"))


def test_strategies_come_from_the_structured_answer_validated_by_its_model():
    model = strategies_model(3)
    answer = {"strategies": [{"name": "**1. Create a Timeline**", "instruction": "List the dates in order."},
                             {"name": "Self-quiz", "instruction": "Ask and answer questions. " * 60},
                             {"name": "create a timeline", "instruction": "Again."},  # the same style: dropped
                             ]}
    strategies = parse_strategies(result(answer), model)
    assert [s.name for s in strategies] == ["1. Create a Timeline", "Self-quiz"]  # markdown dropped
    assert [style_of(s.name) for s in strategies] == ["create a timeline", "self-quiz"]
    assert len(strategies[1].instruction) <= INSTRUCTION_CHARS and strategies[1].instruction.endswith(".")
    # More strategies than the bound, a missing field or an extra one fail the model's validation.
    assert parse_strategies(result({"strategies": answer["strategies"] * 2}), model) == []
    assert parse_strategies(result({"strategies": [{"name": "Paraphrase"}]}), model) == []
    assert parse_strategies(result({"strategies": [{"name": "a", "instruction": "b", "why": "c"}]}), model) == []
    # A list cut off by max_tokens keeps the strategies it completed.
    cut = json.dumps(answer)[:json.dumps(answer).index('{"name": "create')] + '{"name": "Anal'
    assert [s.name for s in parse_strategies(result(None, truncated=True, text=cut), model)] == [
        "1. Create a Timeline", "Self-quiz"]
    # ... and the complete sentences of the one it was cut off in (a small model's instruction runs on).
    looping = '{"strategies": [{"name": "Retell it", "instruction": "Retell the story. It was built on a rock, and it'
    assert [(s.name, s.instruction) for s in parse_strategies(result(None, truncated=True, text=looping), model)] == [
        ("Retell it", "Retell the story.")]


def test_plan_counts_the_strategy_lists_and_the_applications(tmp_path, corpus):
    run_dir = tmp_path / "run"
    args = overrides(run_dir, corpus)
    run_stage(config_of(args), ["ingest"])
    proc = synthcpt("plan", "generate", *[a for o in [*args, "generate.tokens={active_reading: 100}"]
                                          for a in ("--set", o)])
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("│")[2].strip(): line for line in proc.stdout.splitlines() if "generate: " in line}
    assert set(rows) == {"generate: active_reading: strategies", "generate: active_reading"}
    # One list per document; before any list exists, each is assumed full: 2 documents × 2 strategies.
    assert "│ 2 " in rows["generate: active_reading: strategies"] and "│ 4 " in rows["generate: active_reading"]


def test_requests_need_the_strategies_first(tmp_path, corpus):
    run_dir = tmp_path / "run"
    config = config_of(overrides(run_dir, corpus))
    run_stage(config, ["ingest"])
    generator = ActiveReading(generation_context(config, run_dir))
    first = list(generator.first_step())
    assert [r.metadata["doc_id"] for r in first] == [d.doc_id for d in generator.corpus.documents]
    assert all(r.json_schema["properties"]["strategies"]["maxItems"] == 2 for r in first)
    with pytest.raises(RuntimeError, match="prepare"):
        next(generator.requests())


@pytest.mark.slow
def test_one_record_per_applied_strategy_headed_by_its_document(tmp_path, corpus, vllm_engine_settings):
    run_dir = tmp_path / "run"
    config = config_of(overrides(run_dir, corpus, vllm_engine_settings))
    run_stage(config, [*BEFORE, "generate"])
    stats = json.loads((run_dir / "generate" / "stats.json").read_text())["generators"]["active_reading"]
    usage = json.loads((run_dir / "cache" / "usage.json").read_text())
    assert {"generate: active_reading: strategies", "generate: active_reading"} <= set(usage)

    generator = ActiveReading(generation_context(config, run_dir))
    first = list(generator.first_step())
    generator.prepare(cached_results(config.engine, run_dir, first))
    applied = list(generator.requests())  # one per strategy the model chose, from the cached lists
    assert applied and stats["requests"] == len(applied)
    records = read_shards(run_dir / "generate" / "active_reading")
    assert records, stats["rejected"]
    assert len(records) + sum(n for r, n in stats["rejected"].items() if r != "no_strategies") == len(applied)
    chosen = {(r.metadata["doc_id"], style_of(r.metadata["strategy"])) for r in applied}
    by_id = generator.corpus.by_id
    for record in records:
        assert (record["doc_id"], record["style"]) in chosen
        assert record["text"].startswith(by_id[record["doc_id"]].header)
        assert record["prompt_file"] == "active_reading/apply.md" and record["generator"] == "active_reading"
