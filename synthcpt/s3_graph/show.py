"""`synthcpt graph`: the graph's stats and top entities, and its export for Gephi or Cytoscape into the
working directory's `graphs/` folder. It reads the graph stage's outputs alone (the coverage of the
synthetic data is generate's to show)."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.table import Table

from synthcpt.atomic import atomic_path
from synthcpt.errors import SynthcptError
from synthcpt.graph_drawing import draw_graph
from synthcpt.progress import console
from synthcpt.run_folder import GRAPH_JSON_FILE, GRAPHML_FILE, load_graph
from synthcpt.stage import StageContext
from synthcpt.stats import GraphStats

EXPORT_FOLDER = "graphs"
SUMMARY_KEYS = ("documents", "nodes", "edges", "entities_per_document", "edges_per_document", "shared_entities",
                "components", "largest_component", "isolated_nodes", "density", "mean_degree", "max_degree")


def export_graph(graph_dir: Path, export_dir: Path, name: str) -> list[Path]:
    """`NAME.graphml`, `NAME.json` (node-link) and `NAME.png` (the report's drawing) in `export_dir`."""
    if export_dir.exists() and not export_dir.is_dir():
        raise SynthcptError(f"cannot export the graph: {export_dir} exists and is not a folder")
    export_dir.mkdir(parents=True, exist_ok=True)
    targets = [export_dir / f"{name}.graphml", export_dir / f"{name}.json", export_dir / f"{name}.png"]
    for source, target in zip((GRAPHML_FILE, GRAPH_JSON_FILE), targets):
        with atomic_path(target) as tmp:
            shutil.copyfile(graph_dir / source, tmp)
    with atomic_path(targets[2]) as tmp:
        tmp.write_bytes(draw_graph(load_graph(graph_dir)))
    return targets


def _summary(stats: GraphStats, folder: Path) -> Table:
    summary = Table("graph", "value", title=str(folder))
    for key in SUMMARY_KEYS:
        summary.add_row(key.replace("_", " "), f"{getattr(stats, key):,}")
    histogram = stats.degree_histogram
    summary.add_row("degree distribution", ", ".join(f"{d}:{n}" for d, n in enumerate(histogram) if n)[:120])
    return summary


def _top(stats: GraphStats) -> Table:
    top = Table("entity", "type", "degree", "weighted degree", "mentions", "documents", title="top entities")
    for entity in stats.top_entities:
        top.add_row(entity.entity, entity.type, str(entity.degree), f"{entity.weighted_degree:,}",
                    f"{entity.mentions:,}", str(entity.documents))
    return top


def show_graph(ctx: StageContext) -> None:
    folder = ctx.run.folder(ctx.stage.name)
    stats = ctx.run.graph_stats()
    if stats is None:
        raise SynthcptError(f"no graph in {ctx.run.dir}: run `synthcpt graph` first")
    console.print(_summary(stats, folder))
    console.print(_top(stats))
    # Named after the run folder, so the graphs of several runs sit side by side.
    graphml, node_link, png = export_graph(folder, Path.cwd() / EXPORT_FOLDER, ctx.run.dir.resolve().name)
    console.print(f"exported: {graphml} (GraphML), {node_link} (node-link JSON), {png} (drawing)")
