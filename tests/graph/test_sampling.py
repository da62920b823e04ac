from collections import Counter
from math import comb

import pytest

from synthcpt.errors import SynthcptError
from synthcpt.run_folder import load_graph
from synthcpt.s5_generate.relations import STRATEGIES, sample_relations, triples_wanted


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_deterministic_deduplicated_and_cut_to_budget(spacy_run, strategy):
    graphs = spacy_run / "graph"
    full = sample_relations(graphs, strategy, 30, 0.5, 8, seed=1, max_relations=None)
    assert full == sample_relations(graphs, strategy, 30, 0.5, 8, seed=1, max_relations=None)
    assert full != sample_relations(graphs, strategy, 30, 0.5, 8, seed=2, max_relations=None)
    keys = [(r.doc_id, frozenset(r.entities)) for r in full]
    assert len(set(keys)) == len(keys)
    assert all(len(set(r.entities)) == len(r.entities) for r in full)
    per_doc = Counter((r.doc_id, len(r.entities)) for r in full)
    assert set(per_doc.values()) == {30, 8}  # every document has >= 30 pairs and >= 8 triples here
    cut = sample_relations(graphs, strategy, 30, 0.5, 8, seed=1, max_relations=20)
    assert cut == full[:20]
    assert len({r.doc_id for r in cut}) == 3  # documents take turns: a cut keeps all of them
    assert any(len(r.entities) == 3 for r in full[:30])  # triples are spread, not left for last


def test_all_is_every_pair(spacy_run):
    graph = load_graph(spacy_run / "graph")
    relations = sample_relations(spacy_run / "graph", "all", None, 0.0, None, seed=0, max_relations=None)
    for doc_id in graph.graph["documents"]:
        n = sum(1 for _, d in graph.nodes(data=True) if doc_id in d["names"])
        assert sum(1 for r in relations if r.doc_id == doc_id) == comb(n, 2)


def test_cooccurring_takes_the_heaviest_edges_first(spacy_run):
    graph = load_graph(spacy_run / "graph")
    doc_id = graph.graph["documents"][0]
    key = {d["names"][doc_id]: n for n, d in graph.nodes(data=True) if doc_id in d["names"]}
    pairs = [r for r in sample_relations(spacy_run / "graph", "cooccurring", 15, 0.0, None, 0, None) if r.doc_id == doc_id]
    weights = [graph.edges[key[a], key[b]]["documents"][doc_id] for a, b in (r.entities for r in pairs)]
    heaviest = sorted((d["documents"][doc_id] for *_, d in graph.edges(data=True) if doc_id in d["documents"]),
                      reverse=True)[:15]
    assert weights == heaviest


def test_unknown_strategy_is_one_clear_error(spacy_run):
    with pytest.raises(SynthcptError, match="unknown relation sampling strategy 'everything'"):
        sample_relations(spacy_run / "graph", "everything", None, 0.0, None, 0, None)


@pytest.mark.parametrize("share", [0.25, 0.5])
def test_triples_keep_their_share_at_every_cut(spacy_run, share):
    relations = sample_relations(spacy_run / "graph", "all", 40, share, None, seed=0, max_relations=None)
    for doc_id in {r.doc_id for r in relations}:
        own = [len(r.entities) == 3 for r in relations if r.doc_id == doc_id]
        assert sum(own) == triples_wanted(40, share, None)
        for cut in (8, 20, len(own)):  # any prefix of a document's order holds about the share
            assert abs(sum(own[:cut]) / cut - share) <= 1.5 / cut + 0.01
