"""`synthcpt graph` exports the run's graph into the working directory's `graphs/` for Gephi or
Cytoscape: GraphML, node-link JSON and the report's drawing."""

from __future__ import annotations

import io
import json

import matplotlib.image
import networkx as nx

from synthcpt.graph_drawing import draw_graph, top_entities
from synthcpt.run_folder import load_graph
from tests.helpers import assert_one_line_error, synthcpt


def test_graph_command_exports_graphml_json_and_drawing(spacy_run, tmp_path):
    proc = synthcpt("graph", "-c", str(spacy_run / "config.yaml"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    graph = load_graph(spacy_run / "graph")
    exported = tmp_path / "graphs"
    name = spacy_run.name
    assert sorted(p.name for p in exported.iterdir()) == [f"{name}.graphml", f"{name}.json", f"{name}.png"]
    graphml = nx.read_graphml(exported / f"{name}.graphml")
    assert set(graphml.nodes) == set(graph.nodes) and graphml.number_of_edges() == graph.number_of_edges()
    node_link = nx.node_link_graph(json.loads((exported / f"{name}.json").read_text()), edges="edges")
    assert nx.utils.graphs_equal(node_link, graph)
    # The same drawing as the report's (another process may round a pixel differently), and the same
    # bytes on every call in one process (seeded layout).
    drawn = draw_graph(graph)
    assert drawn == draw_graph(load_graph(spacy_run / "graph"))
    difference = matplotlib.image.imread(exported / f"{name}.png") - matplotlib.image.imread(io.BytesIO(drawn))
    assert abs(difference).max() <= 2 / 255
    assert f"{exported / name}.graphml" in (proc.stdout + proc.stderr).replace("\n", "")  # the console writes to stderr


def test_drawing_shows_the_most_connected_entities(spacy_run):
    graph = load_graph(spacy_run / "graph")
    chosen = top_entities(graph, 5)
    strength = dict(graph.degree(weight="weight"))
    assert len(chosen) == 5 and min(strength[n] for n in chosen) >= max(
        strength[n] for n in graph.nodes if n not in chosen)
    pixels = matplotlib.image.imread(io.BytesIO(draw_graph(graph, count=5)))
    assert pixels.std() > 0.05  # nodes and edges drawn, not a blank canvas


def test_export_into_a_file_named_graphs_is_one_error_line(spacy_run, tmp_path):
    (tmp_path / "graphs").write_text("not a folder")
    assert_one_line_error(synthcpt("graph", "-c", str(spacy_run / "config.yaml"), cwd=tmp_path), "is not a folder")
