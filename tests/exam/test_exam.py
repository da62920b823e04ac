"""The exam stage: given questions, drafted questions and their validation, the leak guard on the exam,
resume, and a plain-text corpus run end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthcpt.questions import GENERATED, QAItem
from synthcpt.run_folder import Chunk, Document, RunFolder
from synthcpt.s4_exam.exam import ExamWriter, Slot, check_verdict, draft_slots, keep
from synthcpt.s4_exam.settings import ExamSettings
from synthcpt.s4_exam.validate import ExamDraft, text_rejection
from synthcpt.s5_generate.leak import LeakGuard
from tests.helpers import ROOT, STORIES, assert_one_line_error, stored_responses, synthcpt, write_stories

LIGHTHOUSE = STORIES["lighthouse.txt"]
DOCUMENT = Document("doc-light", "The Lighthouse of Varrow", LIGHTHOUSE, None, 120)
CHUNK = Chunk("doc-light/0", "doc-light", 0, LIGHTHOUSE, 120, 0, len(LIGHTHOUSE))


def draft(question="Who built the lighthouse of Varrow in 1873?", answer="Mara Quell",
          distractors=("Tobias Wren", "Elias Varrow", "Anna Hale")) -> ExamDraft:
    return ExamDraft(question=question, answer=answer, distractors=list(distractors))


@pytest.mark.parametrize(("changes", "reason"), [
    ({}, None),
    ({"question": "Who built the lighthouse of Varrow in 1873"}, "not_a_question"),
    ({"question": "Who built it? When?"}, "not_a_question"),
    ({"distractors": ("Tobias Wren", "Tobias Wren", "Anna Hale")}, "malformed"),
    ({"distractors": ("Mara Quell", "Elias Varrow", "Anna Hale")}, "malformed"),
    ({"answer": "a tall quiet man who built two small towers on the cold north coast of it"},
     "malformed"),
    ({"question": "Who, according to the passage, built the lighthouse?"}, "refers_to_passage"),
    ({"answer": "Captain Horace Bell"}, "not_grounded"),
    ({"question": "Did Mara Quell build the lighthouse of Varrow?"}, "answer_in_question"),
    ({"question": "What is the answer to this question?"}, "unanchored"),
])
def test_each_text_check_rejects_its_own_fault(changes, reason):
    assert text_rejection(draft(**changes), LIGHTHOUSE, ExamSettings()) == reason


def test_drafts_spread_over_the_chunks_and_documents_interleave():
    docs = [Document(f"d{i}", f"T{i}", "x", None, 1000) for i in range(2)]
    chunks = [Chunk(f"d{i}/{j}", f"d{i}", j, "x", 100 if j != 3 else 10, 0, 1) for i in range(2) for j in range(10)]
    slots = draft_slots(docs, chunks, ExamSettings(questions_per_document=2, drafts_per_question=2))
    assert [s.document.doc_id for s in slots] == ["d0", "d1"] * 4
    assert [s.chunk.index for s in slots if s.document.doc_id == "d0"] == [0, 2, 5, 7]  # of the 9 usable (3 is too short)
    assert {s.sample for s in slots} == {0}
    few = draft_slots(docs[:1], chunks[:2], ExamSettings(questions_per_document=2, drafts_per_question=2))
    assert [(s.chunk.index, s.sample) for s in few] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert len({s.question_id for s in few}) == 4


def test_options_are_shuffled_by_the_question_and_keep_the_answer():
    writer = ExamWriter(ExamSettings(), seed=0)
    items = [writer.item(Slot(DOCUMENT, CHUNK, sample), draft()) for sample in range(8)]
    for item in items:
        assert item.options[item.letters.index(item.answers[0])] == "Mara Quell" == item.reference
        assert item.origin == GENERATED and item.passage == LIGHTHOUSE
    assert len({item.answers for item in items}) > 1  # the answer's letter moves
    assert writer.item(Slot(DOCUMENT, CHUNK, 3), draft()) == items[3]


def test_near_duplicates_of_given_and_kept_questions_are_dropped_and_the_cap_spreads():
    writer = ExamWriter(ExamSettings(), seed=0)
    slots = [Slot(DOCUMENT, CHUNK, i) for i in range(4)]
    questions = ["Who built the lighthouse of Varrow in 1873?", "In 1873, who built the lighthouse of Varrow?",
                 "Which steamer ran aground on the Varrow rocks in 1921?", "What did the town give Tobias Wren?"]
    candidates = [(s, draft(q), writer.item(s, draft(q))) for s, q in zip(slots, questions)]
    verdicts: dict[str, str] = {}
    given = [QAItem("g1", "doc-light", "What did the town of Varrow give Tobias Wren?", ("a", "b"), ("A",), "given")]
    kept = keep(slots, candidates, verdicts, given, ExamSettings(questions_per_document=1))
    assert verdicts == {slots[1].question_id: "duplicate", slots[3].question_id: "duplicate",
                        slots[2].question_id: "over_cap"}
    assert [item.question for item in kept] == [questions[0]]


def test_self_check_rejects_a_question_its_generator_answers_wrongly(vllm_engine_settings, tmp_path):
    """The open-book self-check through the embedded model, in both orders of the options: a question keyed
    to a wrong answer is rejected, and each verdict is what the engine's own replies say."""
    from synthcpt.engine import open_engine

    writer = ExamWriter(ExamSettings(), seed=0)
    wrong_key = draft(answer="Tobias Wren", distractors=("Mara Quell", "Elias Varrow", "Anna Hale"))
    items = [writer.item(Slot(DOCUMENT, CHUNK, i), d) for i, d in enumerate([draft(), wrong_key])]
    requests = [r for item in items for r in writer.check_requests(item)]
    with open_engine(vllm_engine_settings, tmp_path) as engine:
        results = list(engine.generate(requests, description="self-check"))
    assert len(results) == 4
    for result in results:
        picked = result.parsed[0]["answer"] if result.parsed else None
        expected = ("self_check_unparseable" if picked is None
                    else None if picked == result.request.metadata["right"] else "self_check_wrong")
        assert check_verdict(result) == expected
        # the reversed order names the same option by the mirrored letter
        item = items[int(result.request.metadata["question_id"].rsplit("-", 1)[1])]
        order = result.request.metadata["order"]
        letters = item.letters if order == "exam" else item.letters[::-1]
        assert result.request.metadata["right"] == letters[item.letters.index(item.answers[0])]
    # Mara Quell built the lighthouse: keyed to Tobias Wren, the question fails in at least one order.
    assert any(check_verdict(r) for r in results if r.request.metadata["question_id"] == items[1].question_id)


def test_the_leak_guard_drops_a_record_reproducing_a_generated_question():
    writer = ExamWriter(ExamSettings(), seed=0)
    item = writer.item(Slot(DOCUMENT, CHUNK, 0), draft(question="Which steamer ran aground on the Varrow rocks "
                                                                 "in the winter storm of 1921?", answer="Halcyon"))
    guard = LeakGuard.from_questions([item], [], ngram=8, threshold=0.5)
    record = "Quiz night. Which steamer ran aground on the Varrow rocks in the winter storm of 1921? Think."
    leak = guard.leaked(record)
    assert leak is not None and leak.reason == "question" and item.question_id in leak.evaluation_text
    assert guard.leaked(LIGHTHOUSE) is None


def _plain_text_config(tmp_path: Path, base_url: str) -> list[str]:
    corpus = write_stories(tmp_path / "corpus")
    return ["--preset", "cpu-demo", "--set", f"run.dir={tmp_path / 'run'}", "--set", f"ingest.inputs=[{corpus}]",
            "--set", "engine.backend=openai", "--set", f"engine.openai.base_url={base_url}",
            "--set", "engine.openai.concurrency=8", "--set", "exam.questions_per_document=6"]


@pytest.mark.slow
def test_a_plain_text_corpus_runs_end_to_end_through_an_exam_killed_mid_way(vllm_server, tmp_path):
    """No question file: the exam stage drafts and validates questions through the engine; killed mid-way,
    its rerun sends no request twice; then the whole run finishes with a report, whatever validation
    kept (the embedded model's drafts rarely pass)."""
    args = _plain_text_config(tmp_path, vllm_server)
    for stage in ("ingest", "entities", "graph"):
        assert synthcpt(stage, *args).returncode == 0
    run_dir = tmp_path / "run"
    worker = subprocess.Popen([sys.executable, "-c", "from synthcpt.cli import main; main()", "exam", *args],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while stored_responses(run_dir) < 4:
        assert worker.poll() is None, "the exam finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    before = stored_responses(run_dir)
    assert not (run_dir / "exam" / "questions.parquet").exists()

    rerun = synthcpt("exam", *args)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    # The killed run recorded no usage; the rerun's: every request of the exam once, those stored before the
    # kill from the cache, and each response stored once.
    usage = json.loads((run_dir / "cache" / "usage.json").read_text())
    assert usage["total"]["cached"] == before and usage["total"]["requests"] == stored_responses(run_dir)
    assert usage["exam: drafts"]["requests"] == 24
    run = RunFolder(run_dir)
    stats = run.exam_stats()
    assert stats.drafts == 24 and stats.generated + sum(stats.rejected.values()) == stats.drafts
    assert stats.source == "generated" and stats.given == 0

    # The rest at the smallest size: one generator, one step of short sequences, whose memory plan (about a
    # GiB) fits beside the suite's engines; the preset's 4 x 512-token micro-batches plan 5.4 GiB.
    done = synthcpt("run", *args, "--set", "generate.total_tokens=600", "--set", "generate.generators=[wrap]",
                    "--set", "train.max_steps=1", "--set", "train.block_size=256", "--set", "train.batch_size=2",
                    "--set", "train.micro_batch_size=2", "--set", "eval.methods=[loglik]", timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "exam: up to date, skipped" in done.stdout + done.stderr
    results = run.eval_results()
    assert results.questions == stats.generated == len(run.exam())
    if stats.generated:
        assert {s.model for s in results.scores} == {"base", "trained"} and not results.not_evaluated
    else:
        assert "no generated question passed validation" in results.not_evaluated
        assert "nothing evaluated" in done.stdout + done.stderr
    html = run.report_html.read_text()
    assert '<section id="exam"' in html and f"The engine wrote {stats.drafts} drafts" in html


def test_no_questions_and_the_exam_turned_off_ends_eval_with_one_line(tmp_path):
    from synthcpt.config import load_config
    from synthcpt.pipeline import Runner, stage_by_name
    from synthcpt.s7_eval.evaluation import evaluate_stage
    from synthcpt.stage import StageContext

    corpus = write_stories(tmp_path / "corpus")
    config = load_config(None, [f"run.dir={tmp_path / 'run'}", f"ingest.inputs=[{corpus}]", "exam.source=given",
                                "entities.extractor=spacy"])
    Runner(config, reporter=lambda _: None).execute(["ingest", "entities", "graph", "exam"], force=set())
    run = RunFolder(tmp_path / "run")
    assert run.exam() == [] and run.exam_stats().source == "given" and run.exam_stats().drafts == 0
    results = evaluate_stage(StageContext(config, stage_by_name("eval"), run))
    assert results.questions == 0 and "exam.source is 'given'" in results.not_evaluated
    assert run.eval_results() == results


def test_plan_prices_the_exam_and_bad_settings_are_one_line(tmp_path, embedded_model):
    corpus = write_stories(tmp_path / "corpus")
    args = ["--set", f"run.dir={tmp_path / 'run'}", "--set", f"ingest.inputs=[{corpus}]"]
    assert synthcpt("ingest", *args).returncode == 0
    planned = synthcpt("plan", "exam", *args)
    assert planned.returncode == 0, planned.stderr[-2000:]
    assert "exam: drafts" in planned.stdout and "exam: self-check" in planned.stdout
    assert_one_line_error(synthcpt("exam", *args, "--set", "exam.source=sometimes"), "exam.source")
