import json

from synthcpt.s3_graph.build import build_graph, save_graph
from synthcpt.s5_generate.coverage import coverage


def _row(doc_id, entity, aliases=None):
    return {"doc_id": doc_id, "entity": entity, "type": "PERSON", "mentions": 1, "extractor": "spacy",
            "salience": 1.0, "aliases": aliases or [entity]}


DOCS = [{"doc_id": "a", "text": "Korvin met the Ruler. The Ruler questioned Korvin. Didyak watched the ship."},
        {"doc_id": "b", "text": "Ivy Hendricks flew the Aphrodite to Mars."}]
ROWS = [_row("a", "Korvin"), _row("a", "Ruler"), _row("a", "Didyak"), _row("a", "ship"),
        _row("b", "Ivy Hendricks", ["Ivy Hendricks", "Ivy"]), _row("b", "Aphrodite"), _row("b", "Mars")]


def test_coverage_on_hand_made_passages(tmp_path):
    save_graph(build_graph(DOCS, ROWS, window_sentences=1), tmp_path)
    records = [
        {"doc_id": "a", "text": "Korvin and the Ruler argue about ships."},  # korvin, ruler, ship
        {"doc_id": "a", "text": "KORVIN escapes; Didyak is silent."},       # korvin, didyak
        {"doc_id": "b", "text": "Ivy lands on Mars."},                       # ivy hendricks (alias), mars
        {"doc_id": "c", "text": "A passage of a document outside the graph."},
    ]
    report = coverage(tmp_path, records)
    a, b = report.per_document["a"], report.per_document["b"]
    assert (a.entities, a.entities_covered, a.entity_coverage) == (4, 4, 1.0)
    # Pairs named together in one passage: korvin-ruler, korvin-ship, ruler-ship, korvin-didyak (of 6).
    assert (a.pairs, a.pairs_covered) == (6, 4)
    # Source edges: korvin-ruler (sentences 1, 2) and didyak-ship (sentence 3); only the first is covered.
    assert (a.edges, a.edges_covered, a.edge_coverage) == (2, 1, 0.5)
    assert (b.entities_covered, b.pairs, b.pairs_covered, b.passages) == (2, 3, 1, 1)
    assert report.entities == 7 and report.entities_covered == 6 and report.entity_coverage == round(6 / 7, 4)
    assert report.pairs == 9 and report.pairs_covered == 5
    assert report.unmatched_passages == 1 and report.documents_covered == 2


def test_no_passages_means_zero_coverage(tmp_path):
    save_graph(build_graph(DOCS, ROWS, window_sentences=1), tmp_path)
    report = coverage(tmp_path, [])
    assert report.entities_covered == 0 and report.entity_coverage == 0.0 and report.passages == 0


def test_generate_summary_shows_the_coverage_of_the_graph(spacy_run, tmp_path, capsys):
    """The coverage generate measured on the real graph is what `synthcpt generate` prints."""
    from synthcpt.s5_generate.show import show_generated
    from synthcpt.stats import GenerateStats, MixPart, MixStats

    passages = [{"doc_id": d, "text": "Korvin, the Ruler, Strykalski and Cob Whitley; Madison and Parnell."}
                for d in json.loads((spacy_run / "graph" / "graph.json").read_text())["graph"]["documents"]]
    report = coverage(spacy_run / "graph", passages)
    mix = MixStats(records=1, tokens=10, synthetic_tokens=10, raw_tokens=0, raw_copies=0, raw_share=0.0, rejected={},
                   eval_texts_guarded=0, eval_texts_unguarded=0, eval_texts_in_corpus=0,
                   by_generator={"entigraph": MixPart(records=1, tokens=10, rejected={})})
    show_generated(GenerateStats(targets={}, generators={}, mix=mix, instructions=0, engine={},
                                 coverage={"entigraph": report.overall()}))
    captured = capsys.readouterr()
    out = captured.out + captured.err  # the console writes to stderr
    assert "graph coverage (entigraph)" in out
    assert f"entities_covered={report.entities_covered}" in out and f"entities={report.entities}" in out
