"""The graph stage: read the documents and their entities, build the graph, save it with its stats."""

from __future__ import annotations

from typing import Any

from synthcpt.s3_graph.build import build_graph, save_graph


def run(ctx) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from synthcpt.s2_entities.outputs import load_entities

    documents = pq.read_table(ctx.input("ingest") / "documents.parquet", columns=["doc_id", "text"]).to_pylist()
    entities = load_entities(ctx.input("entities"))
    graph = build_graph(documents, entities, ctx.settings.window_sentences)
    stats = save_graph(graph, ctx.out)
    return {key: value for key, value in stats.items() if isinstance(value, (int, float))}
