"""Every input format through the real ingest stage, with the embedded model's tokenizer."""

import json

import datasets

from tests.ingest.conftest import ingest, table

STORY = ("THE LONG WATCH\n\nBy\n\nANNA VOSS\n\nCaptain Mira Okafor stood on the bridge of the Halcyon. "
         "The station's reactor had failed twice that week. Engineer Tomas Reyes blamed the coolant pumps.\n\n"
         "Okafor ordered a full inspection. Reyes found a cracked valve near the core.")


def test_text_and_markdown_folder(tmp_path, run_ingest):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text(STORY)
    (corpus / "sub" / "b.md").write_text("# Notes on valves\n\nValves crack under thermal stress.\n")
    (corpus / ".hidden.txt").write_text("ignored")
    out = run_ingest(corpus)
    docs = {d["title"]: d for d in table(out / "documents.parquet")}
    assert set(docs) == {"THE LONG WATCH", "Notes on valves"}
    story = docs["THE LONG WATCH"]
    assert json.loads(story["metadata"])["author"] == "ANNA VOSS"
    assert story["text"] == STORY and story["n_tokens"] > 40
    stats = json.loads((out / "stats.json").read_text())
    assert stats["documents"] == 2 and stats["tokens"] == sum(d["n_tokens"] for d in docs.values())


def test_ids_are_stable_and_content_addressed(tmp_path, run_ingest):
    (tmp_path / "a.txt").write_text(STORY)
    first = table(run_ingest(tmp_path / "a.txt") / "documents.parquet")[0]["doc_id"]
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "renamed.txt").write_text(STORY + "\n")
    second = table(run_ingest(tmp_path / "copy") / "documents.parquet")[0]["doc_id"]
    assert first == second and first.startswith("doc-")


def test_jsonl_with_configured_fields_and_duplicates(tmp_path, run_ingest):
    path = tmp_path / "docs.jsonl"
    rows = [{"body": "First document about reactors.", "name": "Reactors", "key": "r/1", "year": 1957},
            {"body": "Second document about valves.", "name": "Valves", "key": "v 2"},
            {"body": "First document about reactors.", "name": "Again", "key": "r3"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    out = run_ingest(path, settings=("ingest.text_field=body", "ingest.title_field=name", "ingest.id_field=key"))
    docs = table(out / "documents.parquet")
    assert [d["doc_id"] for d in docs] == ["r-1", "v-2"]
    assert [d["title"] for d in docs] == ["Reactors", "Valves"]
    assert json.loads(docs[0]["metadata"]) == {"year": 1957}
    assert json.loads((out / "stats.json").read_text())["duplicates_dropped"] == 1


def test_parquet_and_hf_dataset_folder(tmp_path, run_ingest):
    rows = [{"text": "A parquet document about comets.", "title": "Comets"},
            {"text": "Another about asteroids.", "title": "Asteroids"}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "docs.parquet"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"text": "Saved dataset text on moons."}])}
                         ).save_to_disk(str(tmp_path / "saved"))
    out = run_ingest(tmp_path / "docs.parquet", tmp_path / "saved")
    titles = [d["title"] for d in table(out / "documents.parquet")]
    assert titles == ["Comets", "Asteroids", "Saved dataset text on moons."]


def test_unicode_normalisation(tmp_path, run_ingest):
    (tmp_path / "u.txt").write_bytes("\ufeffCafe\u0301 line\r\nnext\r\n".encode())
    docs = table(run_ingest(tmp_path / "u.txt") / "documents.parquet")
    assert docs[0]["text"] == "Caf\u00e9 line\nnext"


def test_leval_keeps_questions_aside(run_ingest, demo_corpus):
    out = run_ingest(demo_corpus)
    docs = table(out / "documents.parquet")
    questions = table(out / "questions.parquet")
    assert len(docs) == 3 and len(questions) == 50
    doc_ids = {d["doc_id"] for d in docs}
    assert {q["doc_id"] for q in questions} == doc_ids
    first = questions[0]
    assert first["question"].startswith("Why did the Tr'en leave Korvin's door unlocked")
    assert len(first["options"]) == 4 and first["answers"] == ["B"]
    assert first["title"] == "LOST IN TRANSLATION"
    corpus_text = " ".join(d["text"] for d in docs)
    assert first["options"][1] not in corpus_text, "questions and options never enter the corpus"


def test_coursera_multi_letter_answers(tmp_path, run_ingest, shared_data):
    line = (shared_data / "leval" / "coursera.jsonl").read_text().splitlines()[1]
    (tmp_path / "c.jsonl").write_text(line + "\n")
    questions = table(run_ingest(tmp_path / "c.jsonl") / "questions.parquet")
    expected = json.loads(line)["outputs"]
    assert [("".join(q["answers"])) for q in questions] == expected
    assert all(q["question"] and not q["question"].startswith("Question") for q in questions)


def test_hosted_model_without_a_local_tokenizer_is_counted_with_the_embedded_one(tmp_path, embedded_model):
    """`--preset hosted-api` names a model the server knows (gpt-4o-mini), with no tokenizer here:
    ingest counts with the embedded model's tokenizer and says so in one line."""
    from tests.helpers import synthcpt

    (tmp_path / "a.txt").write_text(STORY)
    proc = synthcpt("ingest", str(tmp_path / "a.txt"), "--preset", "hosted-api", "--set", f"run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr
    assert "ingest: no local tokenizer for gpt-4o-mini" in proc.stderr.replace("\n", " ")
    embedded = ingest(tmp_path / "embedded", tmp_path / "a.txt")
    hosted = table(tmp_path / "run" / "ingest" / "documents.parquet")
    assert [d["n_tokens"] for d in hosted] == [d["n_tokens"] for d in table(embedded / "documents.parquet")]
