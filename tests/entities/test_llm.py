"""The EntiGraph request: tolerant parsing of what comes back, windows, and the real embedded model."""

import json

import pytest

from synthcpt.engine.structured import json_schema
from synthcpt.engine.types import Request, Result
from synthcpt.prompts import load_prompt
from synthcpt.run_folder import Chunk
from synthcpt.s2_entities.extractors.llm import (
    PROMPT,
    LlmSettings,
    collect,
    extraction_model,
    parse_extraction,
    windows,
)


@pytest.mark.parametrize("reply, summary, entities, status", [
    ('{"summary": "A ship.", "entities": ["Strike", "Cob"]}', "A ship.", ["Strike", "Cob"], "ok"),
    ('```json\n{"summary": "A ship.", "entities": ["Strike"]}\n```', "A ship.", ["Strike"], "ok"),
    ('Sure! Here it is: {"summary": "S", "entities": ["Ivy"]} Hope it helps.', "S", ["Ivy"], "repaired"),
    ('{"summary": "Cut short", "entities": ["Korvin", "Ruler", "Did', "Cut short", ["Korvin", "Ruler"], "repaired"),
    ('{"summary": "Only half a summ', "Only half a summ", [], "repaired"),
    ('{"entities": [{"name": "Madison", "type": "person"}, {"name": "Parnell"}]}', None, ["Madison", "Parnell"], "ok"),
    ('["Korvin", "Ruler"]', None, ["Korvin", "Ruler"], "ok"),
    ("The story is about a man named Korvin who is captured.", None, [], "unparsed"),
    ("", None, [], "unparsed"),
])
def test_parse_extraction(reply, summary, entities, status):
    parsed = parse_extraction(reply)
    assert (parsed.summary, parsed.entities, parsed.status) == (summary, entities, status)


def test_long_documents_go_as_windows_of_chunks():
    text = "".join(f"Part {i}. " for i in range(10))
    chunks = [Chunk(f"d/{i}", "d", i, text[i * 8:(i + 1) * 8], 100, i * 8, (i + 1) * 8) for i in range(10)]
    assert [w.text for w in windows("d", text, 1000, chunks, 1000)] == [text]
    parts = windows("d", text, 1000, chunks, 300)
    assert [w.index for w in parts] == [0, 1, 2, 3]
    assert "".join(w.text for w in parts) == text and parts[0].text == "Part 0. Part 1. Part 2. "


def _result(doc_id, window, text, finish="stop"):
    return Result(Request(prompt="p", metadata={"doc_id": doc_id, "window": window}), texts=[text] if text else [],
                  finish_reasons=[finish] if text else [], error=None if text else "server error")


def test_collect_merges_windows_and_counts_failures():
    outcome = collect([
        _result("a", 1, '{"summary": "Second.", "entities": ["Ruler", "Korvin"]}'),
        _result("a", 0, '{"summary": "First.", "entities": ["Korvin", "Korvin"]}'),
        _result("b", 0, "I cannot help with that.", finish="stop"),
        _result("c", 0, '{"summary": "Cut", "entities": ["Mars"', finish="length"),
        _result("d", 0, ""),
    ], {"a": 2, "b": 1, "c": 1, "d": 1})
    assert outcome.summaries == {"a": "First.\n\nSecond.", "c": "Cut"}
    assert sorted((c.surface, c.count) for c in outcome.candidates["a"]) == [("Korvin", 1), ("Korvin", 2), ("Ruler", 1)]
    assert outcome.counts["ok"] == 2 and outcome.counts["unparsed"] == 1 and outcome.counts["repaired"] == 1
    assert outcome.counts["truncated"] == 1 and outcome.counts["failed"] == 1
    assert outcome.counts["documents_without_reply"] == 1


def _schema_valid(data, settings) -> bool:
    schema = json_schema(extraction_model(settings.max_entities, settings.summary_chars))
    return (isinstance(data, dict) and set(data) == set(schema["required"]) and isinstance(data["summary"], str)
            and len(data["summary"]) <= settings.summary_chars and isinstance(data["entities"], list)
            and len(data["entities"]) <= settings.max_entities
            and all(isinstance(e, str) and len(e) <= 80 for e in data["entities"]))


def test_the_extraction_schema_comes_from_the_pydantic_model():
    schema = json_schema(extraction_model(8, 300))
    assert schema == {"type": "object", "additionalProperties": False, "required": ["summary", "entities"],
                      "properties": {"summary": {"type": "string", "maxLength": 300},
                                     "entities": {"type": "array", "maxItems": 8,
                                                  "items": {"type": "string", "maxLength": 80}}}}
    model = extraction_model(2, 300)
    assert model.model_validate({"summary": "s", "entities": ["a", "b"]}).entities == ["a", "b"]
    with pytest.raises(ValueError):
        model.model_validate({"summary": "s", "entities": ["a", "b", "c"]})


@pytest.mark.slow
def test_embedded_model_returns_schema_valid_json(vllm_engine_settings, tmp_path):
    """The real request through vLLM with the embedded model: the schema constrains the reply."""
    from synthcpt.engine import open_engine
    from synthcpt.s2_entities.extractors.llm import Window, build_request
    from tests.conftest import DEMO_CORPUS

    stories = [json.loads(line)["input"] for line in DEMO_CORPUS.read_text().splitlines()]
    # Tight bounds: the schema makes even a model that repeats itself close the object in time.
    settings = LlmSettings(max_tokens=320, max_entities=8, summary_chars=300)
    schema = json_schema(extraction_model(settings.max_entities, settings.summary_chars))
    requests = [build_request(Window(f"story-{i}", 0, story[:2500]), f"story {i}", settings, load_prompt(PROMPT),
                              schema, 0) for i, story in enumerate(stories)]
    with open_engine(vllm_engine_settings, tmp_path) as engine:
        results = list(engine.generate(requests, description="entities test"))
    for result in results:
        assert result.ok and result.finish_reasons == ["stop"], (result.error, result.text[-300:])
        assert _schema_valid(json.loads(result.text), settings), result.text
        assert parse_extraction(result.text).status == "ok"


@pytest.mark.slow
def test_hybrid_stage_with_the_embedded_model(vllm_engine_settings, tmp_path):
    """The stage end to end with the LLM: failures are counted, never fatal; spaCy's names are kept."""
    from synthcpt.run_folder import RunFolder
    from tests.conftest import DEMO_CORPUS
    from tests.entities.runs import run_stages, write_corpus

    stories = [json.loads(line)["input"] for line in DEMO_CORPUS.read_text().splitlines()]
    corpus = write_corpus(tmp_path / "excerpts.jsonl", {f"story-{i}": s[:3000] for i, s in enumerate(stories[:2])})
    config = run_stages(tmp_path / "run", [corpus], ["ingest", "entities"], "entities.extractor=hybrid",
                        "entities.llm.max_tokens=200", "entities.llm.max_entities=10", "entities.llm.summary_chars=300")
    assert config.engine == vllm_engine_settings  # shares the session's loaded model
    report = json.loads((config.run.dir / "entities" / "stats.json").read_text())
    replies = sum(report["llm"].get(k, 0) for k in ("ok", "repaired", "unparsed", "failed"))
    assert replies == 2 and report["documents_without_entities"] == []
    rows = RunFolder(config.run.dir).entities()
    assert {r["doc_id"] for r in rows} == {"story-0", "story-1"}
    assert {r["extractor"] for r in rows} <= {"spacy", "llm", "llm+spacy"}
    assert set(RunFolder(config.run.dir).summaries()) <= {"story-0", "story-1"}
