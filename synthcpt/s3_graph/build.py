"""The EntiGraph knowledge graph: entities as nodes, co-occurrence in a sentence window as weighted edges.

One graph for the corpus. A node is an entity key (case-folded name), so an entity named in several
documents is one node that lists them; its attributes keep what each document says about it (its
name there, mentions, salience). An edge joins two entities that occur within `window_sentences`
consecutive sentences of a document; its weight counts such windows, in total and per document.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path
from typing import Any

import networkx as nx

from synthcpt.atomic import atomic_path, write_text
from synthcpt.entity_names import entity_key
from synthcpt.mentions import MentionMatcher
from synthcpt.progress import track
from synthcpt.run_folder import GRAPH_JSON_FILE, GRAPHML_FILE
from synthcpt.stats import GraphStats, TopEntity

TOP_ENTITIES = 20


def _sentences(texts: list[str]) -> list[list[str]]:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.max_length = max([nlp.max_length, *(len(t) + 1 for t in texts)])
    return [[s.text for s in doc.sents] for doc in nlp.pipe(texts, batch_size=16)]


def build_graph(documents: list[dict[str, Any]], entities: list[dict[str, Any]], window_sentences: int) -> nx.Graph:
    """The graph of the corpus from the documents (doc_id, text) and the entity rows."""
    graph = nx.Graph(documents=[d["doc_id"] for d in documents], window_sentences=window_sentences)
    by_doc: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in entities:
        by_doc[row["doc_id"]].append(row)
    for row in entities:
        key = entity_key(row["entity"])
        if key not in graph:
            graph.add_node(key, names={}, type=row["type"], mentions={}, salience={}, aliases=set())
        node = graph.nodes[key]
        node["names"].setdefault(row["doc_id"], row["entity"])  # rows come most salient first
        node["mentions"][row["doc_id"]] = node["mentions"].get(row["doc_id"], 0) + row["mentions"]
        node["salience"][row["doc_id"]] = max(node["salience"].get(row["doc_id"], 0.0), row["salience"])
        node["aliases"].update(row["aliases"] or [row["entity"]])
    with_entities = [d for d in documents if by_doc.get(d["doc_id"])]
    sentences = _sentences([d["text"] for d in with_entities])
    for doc, doc_sentences in track(zip(with_entities, sentences), "graph: co-occurrences", total=len(with_entities)):
        rows = by_doc[doc["doc_id"]]
        matcher = MentionMatcher({entity_key(r["entity"]): r["aliases"] or [r["entity"]] for r in rows})
        present = [matcher.present(sentence) for sentence in doc_sentences]
        weights: Counter = Counter()
        for start in range(max(1, len(present) - window_sentences + 1)):
            window = set().union(*present[start:start + window_sentences])
            weights.update(combinations(sorted(window), 2))
        for (a, b), weight in weights.items():
            if not graph.has_edge(a, b):
                graph.add_edge(a, b, weight=0, documents={})
            edge = graph.edges[a, b]
            edge["weight"] += weight
            edge["documents"][doc["doc_id"]] = weight
    for _, node in graph.nodes(data=True):
        node["label"] = Counter(node["names"].values()).most_common(1)[0][0]
        node["documents"] = sorted(node["names"])
        node["total_mentions"] = sum(node["mentions"].values())
        node["aliases"] = sorted(node["aliases"])
    return graph


def graph_stats(graph: nx.Graph) -> GraphStats:
    degrees = sorted((d for _, d in graph.degree()), reverse=True)
    components = sorted((len(c) for c in nx.connected_components(graph)), reverse=True)
    documents = graph.graph["documents"]
    per_doc = Counter(doc for _, node in graph.nodes(data=True) for doc in node["documents"])
    edges_per_doc = Counter(doc for _, _, edge in graph.edges(data=True) for doc in edge["documents"])
    strength = dict(graph.degree(weight="weight"))
    top = sorted(graph.nodes, key=lambda n: (-strength[n], -graph.nodes[n]["total_mentions"], n))[:TOP_ENTITIES]
    return GraphStats(
        nodes=graph.number_of_nodes(), edges=graph.number_of_edges(), documents=len(documents),
        documents_without_entities=sum(1 for d in documents if not per_doc[d]),
        entities_per_document=round(sum(per_doc.values()) / max(1, len(documents)), 1),
        edges_per_document=round(sum(edges_per_doc.values()) / max(1, len(documents)), 1),
        shared_entities=sum(1 for _, node in graph.nodes(data=True) if len(node["documents"]) > 1),
        components=len(components), largest_component=components[0] if components else 0,
        isolated_nodes=sum(1 for d in degrees if d == 0),
        density=round(nx.density(graph), 4) if graph.number_of_nodes() > 1 else 0.0,
        mean_degree=round(sum(degrees) / max(1, len(degrees)), 2), max_degree=degrees[0] if degrees else 0,
        degree_histogram=nx.degree_histogram(graph),
        top_entities=[TopEntity(entity=graph.nodes[n]["label"], type=graph.nodes[n]["type"], degree=graph.degree(n),
                                weighted_degree=strength[n], mentions=graph.nodes[n]["total_mentions"],
                                documents=len(graph.nodes[n]["documents"])) for n in top],
    )


def _graphml_ready(graph: nx.Graph) -> nx.Graph:
    """A copy whose list and dict attributes are JSON strings: GraphML holds scalars only."""
    def flat(data: dict[str, Any]) -> dict[str, Any]:
        return {k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict, set)) else v
                for k, v in data.items()}

    copy = nx.Graph(**flat(graph.graph))
    copy.add_nodes_from((n, flat(d)) for n, d in graph.nodes(data=True))
    copy.add_edges_from((a, b, flat(d)) for a, b, d in graph.edges(data=True))
    return copy


def save_graph(graph: nx.Graph, folder: Path) -> None:
    """The graph as GraphML (for Gephi and other tools) and as node-link JSON (every attribute kept)."""
    with atomic_path(folder / GRAPHML_FILE) as tmp:
        nx.write_graphml(_graphml_ready(graph), tmp)
    write_text(folder / GRAPH_JSON_FILE, json.dumps(nx.node_link_data(graph, edges="edges"), ensure_ascii=False) + "\n")


