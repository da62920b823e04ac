"""How much of the graph the synthetic data covers, recomputed from the passages themselves.

An entity of a document is covered when a passage generated from that document names it (by any of
its surface forms); a pair is covered when one passage names both; an edge (a pair that co-occurs
in the source) likewise. Shares per document and overall (totals over all documents).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from itertools import combinations
from pathlib import Path
from typing import Any

from synthcpt.mentions import MentionMatcher
from synthcpt.run_folder import load_graph
from synthcpt.stats import CorpusCoverage, Coverage


def _share(covered: int, total: int) -> float:
    return round(covered / total, 4) if total else 0.0


COUNTS = ("passages", "entities", "entities_covered", "pairs", "pairs_covered", "edges", "edges_covered")


def _entry(passages: int, entities: int, entities_covered: int, pairs: int, pairs_covered: int, edges: int,
           edges_covered: int) -> Coverage:
    return Coverage(passages=passages, entities=entities, entities_covered=entities_covered,
                    entity_coverage=_share(entities_covered, entities), pairs=pairs, pairs_covered=pairs_covered,
                    pair_coverage=_share(pairs_covered, pairs), edges=edges, edges_covered=edges_covered,
                    edge_coverage=_share(edges_covered, edges))


def coverage(graph_dir: Path, records: Iterable[dict[str, Any]]) -> CorpusCoverage:
    """Coverage of each document's entities, entity pairs and co-occurrence edges by the records
    (dicts with `doc_id` and `text`); records of documents outside the graph are counted apart."""
    graph = load_graph(graph_dir)
    documents = graph.graph["documents"]
    texts: dict[str, list[str]] = defaultdict(list)
    unknown = 0
    known = set(documents)
    for record in records:
        if record.get("doc_id") in known:
            texts[record["doc_id"]].append(record["text"] or "")
        else:
            unknown += 1
    nodes_of: dict[str, list[str]] = defaultdict(list)
    for node, data in graph.nodes(data=True):
        for doc_id in data["names"]:
            nodes_of[doc_id].append(node)
    per_doc = {}
    for doc_id in documents:
        nodes = nodes_of[doc_id]
        matcher = MentionMatcher({n: graph.nodes[n]["aliases"] for n in nodes})
        seen: set[str] = set()
        seen_pairs: set[tuple[str, str]] = set()
        for text in texts[doc_id]:
            found = matcher.present(text)
            seen |= found
            seen_pairs.update(combinations(sorted(found), 2))
        edges = {tuple(sorted((a, b))) for a, b, d in graph.edges(nodes, data=True) if doc_id in d["documents"]}
        n = len(nodes)
        per_doc[doc_id] = _entry(len(texts[doc_id]), n, len(seen), n * (n - 1) // 2, len(seen_pairs), len(edges),
                                 len(edges & seen_pairs))
    overall = _entry(**{key: sum(getattr(entry, key) for entry in per_doc.values()) for key in COUNTS})
    return CorpusCoverage(**overall.model_dump(), documents=len(documents),
                          documents_covered=sum(1 for e in per_doc.values() if e.entities_covered),
                          unmatched_passages=unknown, per_document=per_doc)
