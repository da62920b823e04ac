"""The entities stage's files and their loaders (read by the graph and generate stages)."""

from __future__ import annotations

from pathlib import Path

import datasets

from synthcpt.atomic import read_records

ENTITIES_FILE = "entities.parquet"
SUMMARIES_FILE = "summaries.parquet"
REPORT_FILE = "report.json"

ENTITY_FEATURES = datasets.Features({
    "doc_id": datasets.Value("string"), "entity": datasets.Value("string"), "type": datasets.Value("string"),
    "mentions": datasets.Value("int64"), "extractor": datasets.Value("string"),
    "salience": datasets.Value("float64"), "aliases": datasets.Sequence(datasets.Value("string")),
})
SUMMARY_FEATURES = datasets.Features({"doc_id": datasets.Value("string"), "summary": datasets.Value("string")})


def load_entities(entities_dir: Path) -> list[dict]:
    """One row per entity of each document: doc_id, entity, type, mentions, extractor, salience, aliases."""
    return read_records(Path(entities_dir) / ENTITIES_FILE)


def load_summaries(entities_dir: Path) -> dict[str, str]:
    """doc_id → the LLM's summary of the document (empty when no LLM extraction ran)."""
    path = Path(entities_dir) / SUMMARIES_FILE
    if not path.is_file():
        return {}
    return {row["doc_id"]: row["summary"] for row in read_records(path)}
