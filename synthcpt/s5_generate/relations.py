"""Which entity pairs and triples the EntiGraph relation generator writes about.

Strategies, per document:
- `all`: every pair (the reference), in a random order; triples drawn uniformly.

Triples make up `triple_share` of each document's pairs and triples at every point of its order (a
budget cut keeps the share), as many as that asks for, up to `triples_per_doc`. With `singles`, every
entity alone comes too (the reference's entity-specific questions), spread through the order the same way.
- `cooccurring`: pairs that share a sentence window first, heaviest edge first, then the others;
  triples that form a triangle first, then paths of two edges, then the others.
- `random`: pairs and triples drawn uniformly (with `pairs_per_doc` unset, the same pairs as `all`).
- `degree`: pairs and triples drawn with probability proportional to the product of their entities'
  weighted degrees (plus one), so hubs of the document are discussed more.

Each document's pairs and triples are merged by rank, and documents take turns, so a budget cut
(`max_relations`) keeps the best of every document rather than all of the first ones. Everything
is deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import networkx as nx

from synthcpt.errors import SynthcptError
from synthcpt.run_folder import load_graph

STRATEGIES = ("all", "cooccurring", "random", "degree")
# Random draws of a triple before giving up on finding a new one (documents with few entities).
DRAW_ATTEMPTS = 20


@dataclass(frozen=True)
class Relation:
    doc_id: str
    entities: tuple[str, ...]


def _rng(seed: int, *parts: str) -> random.Random:
    digest = hashlib.sha256("\0".join((str(seed), *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _doc_graph(graph: nx.Graph, doc_id: str) -> nx.Graph:
    """The document's entities (most salient first) and its co-occurrence edges, with its own weights."""
    nodes = sorted((n for n, d in graph.nodes(data=True) if doc_id in d["names"]),
                   key=lambda n: (-graph.nodes[n]["salience"][doc_id], n))
    sub = nx.Graph()
    sub.add_nodes_from(nodes)
    sub.add_weighted_edges_from((a, b, d["documents"][doc_id]) for a, b, d in graph.edges(data=True)
                                if doc_id in d["documents"])
    return sub


def _weighted_order(items: list[tuple[str, ...]], weight: Callable[[tuple[str, ...]], float],
                    rng: random.Random) -> list[tuple[str, ...]]:
    """A random order where heavier items tend to come first (Efraimidis-Spirakis keys)."""
    return sorted(items, key=lambda item: -math.log(1.0 - rng.random()) / weight(item))


def _pairs(sub: nx.Graph, strategy: str, rng: random.Random, limit: int | None) -> list[tuple[str, ...]]:
    pairs = list(combinations(sorted(sub.nodes), 2))
    if strategy in ("all", "random"):
        # The same for both: every pair once, in a random order, so a cut keeps a uniform sample.
        rng.shuffle(pairs)
    elif strategy == "cooccurring":
        rng.shuffle(pairs)  # random order among the pairs that never co-occur and among equal weights
        pairs.sort(key=lambda p: -sub.edges[p]["weight"] if sub.has_edge(*p) else 0)
    else:
        strength = dict(sub.degree(weight="weight"))
        pairs = _weighted_order(pairs, lambda p: (strength[p[0]] + 1) * (strength[p[1]] + 1), rng)
    return pairs[:limit]


def _triple_rank(sub: nx.Graph, triple: tuple[str, ...]) -> tuple[int, int]:
    pairs = list(combinations(triple, 2))
    edges = [sub.edges[p]["weight"] for p in pairs if sub.has_edge(*p)]
    return -len(edges), -sum(edges)


def _triples(sub: nx.Graph, strategy: str, rng: random.Random, limit: int) -> list[tuple[str, ...]]:
    nodes = sorted(sub.nodes)
    if limit == 0 or len(nodes) < 3:
        return []
    if strategy == "cooccurring":
        # Candidates: every triple around an edge (a triangle or a path of two edges), then random fill.
        around = {tuple(sorted((a, b, c))) for a, b in sub.edges for c in set(sub[a]) | set(sub[b]) if c not in (a, b)}
        ranked = sorted(around)
        rng.shuffle(ranked)
        ranked.sort(key=lambda t: _triple_rank(sub, t))
        chosen = ranked[:limit]
        return chosen + _draw(nodes, rng, limit - len(chosen), set(chosen), None)
    weights = None
    if strategy == "degree":
        strength = dict(sub.degree(weight="weight"))
        weights = [strength[n] + 1 for n in nodes]
    return _draw(nodes, rng, limit, set(), weights)


def _draw(nodes: list[str], rng: random.Random, count: int, taken: set[tuple[str, ...]],
          weights: list[float] | None) -> list[tuple[str, ...]]:
    """`count` new distinct triples, drawn without enumerating them all (a document may have thousands)."""
    drawn: list[tuple[str, ...]] = []
    possible = math.comb(len(nodes), 3) - len(taken)
    misses = 0
    while len(drawn) < min(count, possible) and misses < DRAW_ATTEMPTS:
        chosen: set[str] = set()
        while len(chosen) < 3:
            chosen.add(rng.choices(nodes, weights=weights)[0] if weights else rng.choice(nodes))
        triple = tuple(sorted(chosen))
        if triple in taken:
            misses += 1
            continue
        taken.add(triple)
        drawn.append(triple)
        misses = 0
    return drawn


def _by_rank(*lists: list) -> list:
    """The lists merged so that each item's place follows its relative rank in its own list."""
    keyed = [((rank + 1) / len(items), which, rank, item)
             for which, items in enumerate(lists) for rank, item in enumerate(items)]
    return [item for *_, item in sorted(keyed, key=lambda k: k[:3])]


def triples_wanted(pairs: int, triple_share: float, triples_per_doc: int | None) -> int:
    """Triples that make `triple_share` of a document's relations beside its `pairs`."""
    wanted = math.ceil(pairs * triple_share / (1 - triple_share))
    return wanted if triples_per_doc is None else min(wanted, triples_per_doc)


def sample_relations(graph_dir: Path, strategy: str, pairs_per_doc: int | None, triple_share: float,
                     triples_per_doc: int | None, seed: int, max_relations: int | None,
                     singles: bool = False) -> list[Relation]:
    """The relations to generate, best first: each document's pairs and triples under `strategy`,
    documents interleaved, cut to `max_relations`."""
    if strategy not in STRATEGIES:
        raise SynthcptError(f"unknown relation sampling strategy '{strategy}' (choose from {', '.join(STRATEGIES)})")
    graph = load_graph(graph_dir)
    per_doc: list[list[Relation]] = []
    for doc_id in graph.graph["documents"]:
        sub = _doc_graph(graph, doc_id)
        rng = _rng(seed, strategy, doc_id)
        pairs = _pairs(sub, strategy, rng, pairs_per_doc)
        triples = _triples(sub, strategy, rng, triples_wanted(len(pairs), triple_share, triples_per_doc))
        names = {n: graph.nodes[n]["names"][doc_id] for n in sub.nodes}
        # The reference's entity-specific questions: every entity alone, most salient first.
        alone = [(n,) for n in sub.nodes] if singles else []
        per_doc.append([Relation(doc_id, tuple(names[n] for n in group))
                        for group in _by_rank(alone, pairs, triples)])
    ordered = _interleave(per_doc)
    return ordered[:max_relations] if max_relations is not None else ordered


def _interleave(per_doc: list[list[Relation]]) -> list[Relation]:
    """First relation of every document, then the second of every document, and so on."""
    longest = max((len(r) for r in per_doc), default=0)
    return [relations[i] for i in range(longest) for relations in per_doc if i < len(relations)]
