"""The graph stage's entry points: read the documents and their entities, build the graph, save it with
its stats."""

from __future__ import annotations

from synthcpt.s3_graph.settings import GraphSettings
from synthcpt.stage import Stage, StageContext
from synthcpt.stats import GraphStats


def run(ctx: StageContext) -> GraphStats:
    from synthcpt.s3_graph.build import build_graph, graph_stats, save_graph

    ctx.input("ingest")
    ctx.input("entities")
    documents = [{"doc_id": d.doc_id, "text": d.text} for d in ctx.run.documents()]
    graph = build_graph(documents, ctx.run.entities(), ctx.settings.window_sentences)
    save_graph(graph, ctx.out)
    stats = graph_stats(graph)
    ctx.run.write_stats("graph", stats)
    return stats


def show(ctx: StageContext) -> None:
    from synthcpt.s3_graph.show import show_graph

    show_graph(ctx)


STAGE = Stage(
    name="graph",
    help="build the EntiGraph knowledge graph: entities joined by their co-occurrences, with stats",
    settings=GraphSettings,
    run=run,
    show=show,
    # 2: the run subfolder is graph/ (was graphs/); the stages after it chain this fingerprint and redo.
    version=2,
)
