import json

import networkx as nx

from synthcpt.entity_names import entity_key
from synthcpt.run_folder import RunFolder, load_graph
from synthcpt.s3_graph.build import build_graph
from tests.helpers import synthcpt


def test_graph_invariants_on_the_demo_stories(spacy_run):
    graph = load_graph(spacy_run / "graph")
    rows = RunFolder(spacy_run).entities()
    assert nx.number_of_selfloops(graph) == 0
    assert set(graph.nodes) == {entity_key(r["entity"]) for r in rows}
    for row in rows:
        node = graph.nodes[entity_key(row["entity"])]
        assert node["names"][row["doc_id"]] == row["entity"] and node["mentions"][row["doc_id"]] == row["mentions"]
    for a, b, edge in graph.edges(data=True):
        assert edge["weight"] == sum(edge["documents"].values()) > 0
        for doc_id in edge["documents"]:  # an edge joins entities of the same document
            assert doc_id in graph.nodes[a]["names"] and doc_id in graph.nodes[b]["names"]
    stats = json.loads((spacy_run / "graph" / "stats.json").read_text())
    assert stats["nodes"] == graph.number_of_nodes() and stats["edges"] == graph.number_of_edges()
    assert sum(stats["degree_histogram"]) == graph.number_of_nodes()
    assert stats["components"] == nx.number_connected_components(graph)


def test_graphml_export_reads_back(spacy_run):
    exported = nx.read_graphml(spacy_run / "graph" / "graph.graphml")
    graph = load_graph(spacy_run / "graph")
    assert set(exported.nodes) == set(graph.nodes) and exported.number_of_edges() == graph.number_of_edges()
    node = next(iter(graph.nodes))
    assert json.loads(exported.nodes[node]["mentions"]) == graph.nodes[node]["mentions"]


def _row(doc_id, entity, mentions=1, aliases=None):
    return {"doc_id": doc_id, "entity": entity, "type": "PERSON", "mentions": mentions, "extractor": "spacy",
            "salience": 1.0, "aliases": aliases or [entity]}


DOCS = [{"doc_id": "a", "text": "Alice met Bob Stone. Stone smiled at Alice. Carol slept. Alice woke Carol."},
        {"doc_id": "b", "text": "Alice flew home."}]
ROWS = [_row("a", "Alice", 3), _row("a", "Bob Stone", 2, ["Bob Stone", "Stone"]), _row("a", "Carol", 2),
        _row("b", "Alice", 1)]


def test_sentence_cooccurrence_weights():
    graph = build_graph(DOCS, ROWS, window_sentences=1)
    assert graph.edges["alice", "bob stone"]["weight"] == 2  # two sentences, the second through an alias
    assert graph.edges["alice", "carol"]["documents"] == {"a": 1}
    assert not graph.has_edge("bob stone", "carol")
    assert graph.nodes["alice"]["documents"] == ["a", "b"] and graph.nodes["alice"]["total_mentions"] == 4
    assert graph.graph["documents"] == ["a", "b"]


def test_wider_window_joins_neighbouring_sentences():
    graph = build_graph(DOCS, ROWS, window_sentences=2)
    # Windows of sentences (1, 2), (2, 3), (3, 4): "Stone smiled at Alice." sits next to "Carol slept."
    assert graph.edges["bob stone", "carol"]["weight"] == 1
    assert graph.edges["alice", "carol"]["weight"] == 2
    assert graph.edges["alice", "bob stone"]["weight"] == 2


def test_graph_command_prints_stats_and_top_entities(spacy_run, tmp_path):
    proc = synthcpt("graph", "--config", str(spacy_run / "config.yaml"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stderr + proc.stdout
    stats = json.loads((spacy_run / "graph" / "stats.json").read_text())
    assert "up to date" in out and "top entities" in out and stats["top_entities"][0]["entity"] in out
    assert f"{stats['edges']:,}" in out

