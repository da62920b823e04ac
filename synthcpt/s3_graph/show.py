"""`synthcpt graph`: the graph's stats, its top entities, the coverage of the latest synthetic data
and the exported files."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from synthcpt.progress import console
from synthcpt.run_folder import COVERAGE_FILE
from synthcpt.s3_graph.build import GRAPHML_FILE, JSON_FILE, STATS_FILE

SUMMARY_KEYS = ("documents", "nodes", "edges", "entities_per_document", "edges_per_document", "shared_entities",
                "components", "largest_component", "isolated_nodes", "density", "mean_degree", "max_degree")


def _coverage_table(report: dict[str, Any]) -> Table:
    table = Table("synthetic data", "passages", "entities", "pairs", "co-occurring pairs",
                  title="coverage of the graph by the synthetic data")
    for name, part in report.items():
        if not isinstance(part, dict) or "entity_coverage" not in part:
            continue
        table.add_row(name, f"{part['passages']:,}",
                      f"{part['entity_coverage']:.1%} ({part['entities_covered']:,}/{part['entities']:,})",
                      f"{part['pair_coverage']:.1%} ({part['pairs_covered']:,}/{part['pairs']:,})",
                      f"{part['edge_coverage']:.1%} ({part['edges_covered']:,}/{part['edges']:,})")
    return table


def show(ctx) -> None:
    folder = ctx.run.dir / ctx.stage.output_folder
    stats = json.loads((folder / STATS_FILE).read_text(encoding="utf-8"))
    summary = Table("graph", "value", title=str(folder))
    for key in SUMMARY_KEYS:
        summary.add_row(key.replace("_", " "), f"{stats[key]:,}")
    histogram = stats["degree_histogram"]
    summary.add_row("degree distribution", ", ".join(f"{d}:{n}" for d, n in enumerate(histogram) if n)[:120])
    console.print(summary)
    top = Table("entity", "type", "degree", "weighted degree", "mentions", "documents", title="top entities")
    for entity in stats["top_entities"]:
        top.add_row(entity["entity"], entity["type"], str(entity["degree"]), f"{entity['weighted_degree']:,}",
                    f"{entity['mentions']:,}", str(entity["documents"]))
    console.print(top)
    coverage_path = ctx.run.dir / "synthetic" / COVERAGE_FILE
    if coverage_path.is_file():
        console.print(_coverage_table(json.loads(coverage_path.read_text(encoding="utf-8"))))
    else:
        console.print("coverage: no synthetic data yet (run `synthcpt generate`)")
    console.print(f"exported: {folder / GRAPHML_FILE} (GraphML), {folder / JSON_FILE} (node-link JSON), "
                  f"{folder / STATS_FILE}")
