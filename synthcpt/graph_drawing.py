"""The knowledge graph drawn as a PNG: its most connected entities and the edges among them.

One drawing for the report and for `synthcpt graph`'s export, so both show the same picture. The
layout is a spring layout with a fixed seed over a sorted node order: the same graph always gives
the same image.
"""

from __future__ import annotations

import io
import math

import networkx as nx

DRAWN_ENTITIES = 30
LAYOUT_SEED = 0


def top_entities(graph: nx.Graph, count: int = DRAWN_ENTITIES) -> list[str]:
    """The `count` nodes with the most co-occurrence weight (ties: more mentions, then the key), as
    the graph stage ranks its top entities."""
    strength = dict(graph.degree(weight="weight"))
    ranked = sorted(graph.nodes, key=lambda n: (-strength[n], -graph.nodes[n].get("total_mentions", 0), str(n)))
    return ranked[:count]


def _subgraph(graph: nx.Graph, count: int) -> nx.Graph:
    # A fresh graph with sorted nodes and edges: the layout depends on insertion order.
    chosen = sorted(top_entities(graph, count), key=str)
    sub = nx.Graph()
    sub.add_nodes_from((n, graph.nodes[n]) for n in chosen)
    sub.add_edges_from(sorted((a, b, d) for a, b, d in graph.subgraph(chosen).edges(data=True)))
    return sub


def _colours(sub: nx.Graph) -> tuple[list, list[tuple[str, object]]]:
    import matplotlib

    types = sorted({str(d.get("type", "")) for _, d in sub.nodes(data=True)})
    palette = matplotlib.colormaps["tab10"]
    by_type = {t: palette(i % 10) for i, t in enumerate(types)}
    return [by_type[str(d.get("type", ""))] for _, d in sub.nodes(data=True)], list(by_type.items())


def draw_graph(graph: nx.Graph, count: int = DRAWN_ENTITIES) -> bytes:
    """PNG of the `count` top entities: node area by mentions, edge width by co-occurrence weight,
    colour by entity type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = _subgraph(graph, count)
    figure, axis = plt.subplots(figsize=(10, 7.5))
    axis.set_axis_off()
    if sub.number_of_nodes():
        # k spreads the nodes more than the default 1/sqrt(n), so the labels stay legible.
        positions = nx.spring_layout(sub, seed=LAYOUT_SEED, weight="weight", k=2.5 / math.sqrt(len(sub)))
        widths = [0.5 + math.log1p(d.get("weight", 1)) for _, _, d in sub.edges(data=True)]
        sizes = [80 + 40 * math.sqrt(d.get("total_mentions", 1)) for _, d in sub.nodes(data=True)]
        colours, legend = _colours(sub)
        nx.draw_networkx_edges(sub, positions, ax=axis, width=widths, edge_color="#999999", alpha=0.6)
        nx.draw_networkx_nodes(sub, positions, ax=axis, node_size=sizes, node_color=colours, alpha=0.9)
        labels = {n: str(d.get("label", n)) for n, d in sub.nodes(data=True)}
        nx.draw_networkx_labels(sub, positions, labels, ax=axis, font_size=8)
        for name, colour in legend:
            axis.scatter([], [], color=colour, label=name or "untyped")
        axis.legend(loc="lower left", fontsize=8, frameon=False, title="entity type", title_fontsize=8)
    axis.set_title(f"{sub.number_of_nodes()} most connected of {graph.number_of_nodes()} entities, "
                   f"{sub.number_of_edges()} of {graph.number_of_edges()} edges", fontsize=10)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})  # no version: same bytes anywhere
    plt.close(figure)
    return buffer.getvalue()
