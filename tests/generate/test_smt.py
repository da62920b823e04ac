"""Synthetic Mixed Training's generators: QA pairs (`qa`) and Focal Rewriting (`focal`), their records'
provenance and the QA : document share of the mix at two budgets, with the embedded model (a killed
focal run's resume is tests/generate/test_resume.py; the mix's rules alone, tests/generate/test_mix.py)."""

from __future__ import annotations

import json

import pytest

from synthcpt.atomic import read_records
from synthcpt.prompts import load_prompt
from synthcpt.s5_generate.generators.focal import FocalRewriting
from synthcpt.s5_generate.generators.qa import PAIRS_PROMPT, SeenQuestions, pairs_model, parse_pairs
from synthcpt.s5_generate.records import read_shards
from synthcpt.s5_generate.run import generation_context
from tests.helpers import config_of, result, run_stage, write_stories

# Both generators share the question lists (the same settings: the same cached answers). Passage
# rewrites and short answers keep the run to a minute or two on two cores.
SETTINGS = ["entities.extractor=spacy", "exam.source=given", "generate.generators=[qa, focal]",
            "generate.mix.min_tokens=8", "generate.mix.raw_ratio=0", "generate.qa.max_tokens=384",
            "generate.qa.temperature=0.5", "generate.focal.questions.max_tokens=384",
            "generate.focal.questions.temperature=0.5", "generate.focal.question_lists=5",
            "generate.focal.source=passage", "generate.focal.max_tokens=128"]
BUDGETS = (300, 900)


def test_pairs_are_questions_that_stand_alone():
    model = pairs_model(3)
    good = {"question": "Who built the lighthouse of Varrow?", "answer": "Mara Quell",
            "explanation": "The engineer Mara Quell built it in 1873."}
    answer = {"pairs": [good, {**good, "question": "What does the passage say about Wren?"},  # points at its source
                        {**good, "question": "The lighthouse of Varrow was built in 1873."}]}  # no question
    assert [p.question for p in parse_pairs(result(answer), model)] == [good["question"]]
    assert parse_pairs(result({"pairs": [good] * 4}), model) == []  # more than asked: the schema's bound
    assert parse_pairs(result({"pairs": [{"question": good["question"], "answer": "x"}]}), model) == []
    cut = json.dumps({"pairs": [good, good]})[:-30]  # cut off by max_tokens inside the second pair
    assert [p.answer for p in parse_pairs(result(None, truncated=True, text=cut), model)] == ["Mara Quell"]


def test_a_question_like_an_earlier_one_of_its_document_repeats():
    seen = SeenQuestions(85)
    assert not seen.repeats("d1", "Who built the lighthouse of Varrow?")
    assert seen.repeats("d1", "who built the lighthouse of Varrow ?")
    assert not seen.repeats("d2", "Who built the lighthouse of Varrow?")  # another document's


def test_focal_requests_need_the_questions_first(tmp_path):
    run_dir = tmp_path / "run"
    config = config_of([f"run.dir={run_dir}", f"ingest.inputs=[{write_stories(tmp_path / 'stories')}]", *SETTINGS])
    run_stage(config, ["ingest"])
    focal = FocalRewriting(generation_context(config, run_dir))
    first = list(focal.first_step())
    # Five sweeps over the two stories' passages, the kind of question rotated.
    passages = {r.metadata["chunk_id"] for r in first}
    assert len(first) == 5 * len(passages) and len({r.metadata["unit"] for r in first}) == len(first)
    assert {r.metadata["kind"] for r in first} == {"fact", "relation", "reason", "number", "sequence"}
    with pytest.raises(RuntimeError, match="prepare"):
        next(focal.requests())


@pytest.fixture(scope="module")
def smt_runs(tmp_path_factory, vllm_engine_settings):
    """The generate stage with qa and focal at two total budgets (the second reuses the first's answers):
    each budget's records, stats and mix."""
    tmp = tmp_path_factory.mktemp("smt")
    run_dir = tmp / "run"
    base = [f"run.dir={run_dir}", f"ingest.inputs=[{write_stories(tmp / 'stories')}]",
            f"engine.vllm.kv_cache_gb={vllm_engine_settings.vllm.kv_cache_gb}", *SETTINGS]
    runs = {}
    for budget in BUDGETS:
        config = config_of([*base, f"generate.total_tokens={budget}"])
        assert config.engine.model_dump() == vllm_engine_settings.model_dump()
        run_stage(config, ["ingest", "entities", "graph", "exam", "generate"], force=["generate"])
        runs[budget] = {"config": config, "qa": read_shards(run_dir / "generate" / "qa"),
                        "focal": read_shards(run_dir / "generate" / "focal"),
                        "mix": read_shards(run_dir / "generate" / "mix"),
                        "stats": json.loads((run_dir / "generate" / "stats.json").read_text())}
    return run_dir, runs


@pytest.mark.slow
def test_records_carry_their_question_passage_and_prompts(smt_runs):
    run_dir, runs = smt_runs
    run = runs[BUDGETS[-1]]
    chunks = {r["chunk_id"]: r for r in read_records(run_dir / "ingest" / "chunks.parquet")}
    pairs_hash, rewrite_hash = load_prompt(PAIRS_PROMPT).hash, load_prompt("focal/rewrite.md").hash
    assert run["qa"] and run["focal"], run["stats"]["generators"]
    for record in run["qa"]:
        assert record["question"].endswith("?") and f"Question: {record['question']}\nAnswer: " in record["text"]
        assert chunks[record["chunk_id"]]["doc_id"] == record["doc_id"]
        assert record["prompt_hash"] == pairs_hash and record["upstream_prompt_hash"] == ""
        assert record["style"] in {"fact", "relation", "reason", "number", "sequence"}
    headers = {doc_id: doc.header for doc_id, doc in
               FocalRewriting(generation_context(run["config"], run_dir)).corpus.by_id.items()}
    for record in run["focal"]:
        # The text is the document's header and the rewrite alone; the question it focused on is kept
        # beside it (the model may quote the question in its rewrite, so that is not checked).
        header, _, rewrite = record["text"].partition("\n\n")
        assert record["question"].endswith("?") and header == headers[record["doc_id"]] and rewrite.strip()
        assert chunks[record["chunk_id"]]["doc_id"] == record["doc_id"]
        assert record["prompt_hash"] == rewrite_hash and record["upstream_prompt_hash"] == pairs_hash
    # The focus questions are the qa generator's: its first step came from the same cached answers.
    usage = json.loads((run_dir / "cache" / "usage.json").read_text())
    assert {"generate: qa", "generate: focal: questions", "generate: focal"} <= set(usage)
    qa_questions = {r["question"] for budget in BUDGETS for r in runs[budget]["qa"]}
    assert {r["question"] for r in run["focal"]} & qa_questions or len(run["qa"]) < 5


@pytest.mark.slow
def test_the_mix_holds_the_qa_share_at_two_budgets(smt_runs):
    _, runs = smt_runs
    for budget, run in runs.items():
        mix = run["stats"]["mix"]
        by_kind = {kind: [r for r in run["mix"] if r["generator"] == kind] for kind in ("qa", "focal")}
        qa, documents = (sum(r["n_tokens"] for r in rows) for rows in by_kind.values())
        assert qa and documents, (budget, run["stats"]["generators"])
        assert mix["qa_share"] == round(qa / (qa + documents), 4)
        # The kind in excess keeps the shortest prefix reaching its share: it is over it by less than
        # one of its records. A kind was in excess even when nothing was cut, when it needed every record.
        cut = {kind: mix["by_generator"][kind]["rejected"].get("over_qa_share", 0) for kind in by_kind}
        assert not (cut["qa"] and cut["focal"]), cut
        excess = "qa" if cut["qa"] or (not cut["focal"] and qa > documents) else "focal"
        over = qa - documents if excess == "qa" else documents - qa
        assert 0 <= over < max(r["n_tokens"] for r in by_kind[excess]), (budget, cut, qa, documents)
    assert runs[BUDGETS[0]]["stats"]["targets"] == {"qa": BUDGETS[0] // 2, "focal": BUDGETS[0] // 2}
