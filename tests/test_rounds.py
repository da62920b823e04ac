"""Rounds: learn, quiz, regenerate. The quiz (never the exam's questions), which passages a round's model
missed, the next round's generation for those alone, training on from the round before, resume inside a
later round, and what status, plan and the report show of the rounds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthcpt.config import load_config
from synthcpt.questions import GENERATED, QAItem
from synthcpt.quiz import QUIZ_SAMPLES, keep_quiz, quiz_slots
from synthcpt.run_folder import Chunk, Document, ProbeAnswer, RunFolder
from synthcpt.s4_exam.exam import ExamWriter
from synthcpt.s4_exam.settings import ExamSettings
from synthcpt.s4_exam.validate import ExamDraft, normalised
from synthcpt.s5_generate.run import generation_context, generators, round_settings
from tests.helpers import ROOT, STORIES, assert_one_line_error, synthcpt, write_stories

DOCS = [Document(f"d{i}", f"T{i}", "x", None, 1000) for i in range(2)]
CHUNKS = [Chunk(f"d{i}/{j}", f"d{i}", j, "x", 100 if j != 1 else 10, 0, 1) for i in range(2) for j in range(3)]


def test_the_quiz_drafts_every_passage_with_other_samples_than_the_exam():
    slots = quiz_slots(DOCS, CHUNKS, min_tokens=48, drafts=2)
    # Every passage worth a question (chunk 1 is too short), two samples each, documents interleaved.
    assert {(s.chunk.chunk_id, s.sample) for s in slots} == {
        (f"d{i}/{j}", QUIZ_SAMPLES + k) for i in range(2) for j in (0, 2) for k in range(2)}
    assert [s.document.doc_id for s in slots][:2] == ["d0", "d1"]
    # A quiz request is never one of the exam's (whose samples start at 0): the cache could answer it with
    # the exam's own question.
    writer = ExamWriter(ExamSettings(), seed=0)
    exam_slot = slots[0].__class__(slots[0].document, slots[0].chunk, 0)
    assert writer.draft_request(slots[0]).sample != writer.draft_request(exam_slot).sample


def test_the_quiz_keeps_no_question_near_the_exam_and_caps_each_passage():
    writer = ExamWriter(ExamSettings(), seed=0)
    slots = quiz_slots(DOCS[:1], CHUNKS[:1], min_tokens=48, drafts=3)
    questions = ["Who built the lighthouse of Varrow in 1873?", "Which steamer ran aground in 1921?",
                 "What did the town give Tobias Wren?"]
    drafts = [ExamDraft(question=q, answer="Mara Quell", distractors=["a one", "b two", "c three"]) for q in questions]
    candidates = [(s, d, writer.item(s, d)) for s, d in zip(slots, drafts)]
    exam = [QAItem("e1", "d0", "In 1873, who built the lighthouse of Varrow?", ("a", "b"), ("A",), GENERATED)]
    verdicts: dict[str, str] = {}
    kept = keep_quiz(candidates, verdicts, exam, per_passage=1, similarity=85.0)
    assert [item.question for item in kept] == [questions[1]]
    assert verdicts == {candidates[0][2].question_id: "duplicate", candidates[2][2].question_id: "over_cap"}
    assert kept[0].chunk_id == "d0/0"


def test_a_later_round_generates_only_for_the_missed_passages_with_passage_generators(tmp_path):
    """Round 2's corpus is the passages round 1's probe missed, its generators those that write from a
    passage, and its requests new draws (no cache hit on round 1's)."""
    from synthcpt.atomic import write_records
    from synthcpt.run_folder import CHUNK_SCHEMA, CHUNKS_FILE, DOCUMENT_SCHEMA

    run_dir = tmp_path / "run"
    config = load_config(None, [f"run.dir={run_dir}", "run.rounds=2", "generate.generators=[wrap, qa]",
                                "generate.min_chunk_tokens=1"])
    run = RunFolder(run_dir)
    texts = {"d0": ["The lighthouse was built in 1873.", "Its keeper saved eleven sailors."],
             "d1": ["The pear ripens in October.", "A frost killed half the trees in 1935."]}
    write_records(run.documents_path, [
        {"doc_id": d, "title": d, "text": " ".join(t), "source": "", "metadata": "{}", "n_chars": 1, "n_tokens": 20,
         "n_chunks": 2} for d, t in texts.items()], DOCUMENT_SCHEMA)
    write_records(run.folder("ingest") / CHUNKS_FILE, [
        {"chunk_id": f"{d}/{i}", "doc_id": d, "index": i, "text": text, "n_tokens": 10, "char_start": 0,
         "char_end": len(text)} for d, t in texts.items() for i, text in enumerate(t)], CHUNK_SCHEMA)
    round_2 = run.for_round(2)
    round_1 = run.for_round(1)
    round_1.write_probe([ProbeAnswer("q1", "d0", "d0/0", True), ProbeAnswer("q2", "d0", "d0/1", False),
                         ProbeAnswer("q3", "d1", "d1/0", True), ProbeAnswer("q4", "d1", "d1/1", False)])
    assert round_1.missed_chunks() == {"d0/1", "d1/1"}
    with_documents = load_config(None, ["generate.generators=[entigraph, wrap, qa]"])
    assert round_settings(with_documents.generate, 2).generators == ["wrap", "qa"]  # entigraph: from a document
    assert round_settings(config.generate, 2).mix.raw_ratio == 0 < config.generate.mix.raw_ratio

    first, second = (generation_context(config, r) for r in (round_1, round_2))
    assert {c.chunk_id for c in second.corpus.chunks} == {"d0/1", "d1/1"} and second.round == 2
    requests = [r for g in generators(second) for r in g.requests()]
    assert requests and {r.metadata["chunk_id"] for r in requests} == {"d0/1", "d1/1"}
    earlier = {(tuple(m["content"] for m in r.messages), r.sample) for g in generators(first) for r in g.requests()}
    assert not {(tuple(m["content"] for m in r.messages), r.sample) for r in requests} & earlier

    only_documents = load_config(None, [f"run.dir={run_dir}", "run.rounds=2", "generate.generators=[entigraph]"])
    with pytest.raises(Exception, match="none of generate.generators writes from a passage"):
        round_settings(only_documents.generate, 2)


# The two stories in L-Eval's format, each with a question of its own: the exam.
EXAM = {
    "lighthouse.txt": (("Question 1. Who installed the electric light in the lighthouse of Varrow?\n"
                       "A. Mara Quell\nB. Tobias Wren\nC. Ida Sorn\nD. Emil Sorn"), "B"),
    "orchard.txt": (("Question 1. In which month does the Amber Bell pear ripen?\n"
                    "A. March\nB. June\nC. late October\nD. early January"), "C"),
}


def write_corpus_with_exam(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "stories.jsonl"
    path.write_text("".join(json.dumps({"input": STORIES[name], "instructions": [question], "outputs": [answer]}) + "\n"
                            for name, (question, answer) in EXAM.items()))
    return path


def _rounds_args(tmp_path: Path, base_url: str) -> list[str]:
    corpus = write_corpus_with_exam(tmp_path / "corpus")
    sets = [f"run.dir={tmp_path / 'run'}", f"ingest.inputs=[{corpus}]", "engine.backend=openai",
            f"engine.openai.base_url={base_url}", "engine.openai.concurrency=4",
            # Passages of a few sentences, so that the two stories make several passages to quiz.
            "ingest.chunk_tokens=48", "generate.min_chunk_tokens=16", "exam.min_chunk_tokens=16",
            # The embedded model cannot write questions that pass validation: cloze questions, no model.
            "quiz.source=cloze", "quiz.questions_per_passage=1",
            "generate.generators=[wrap]", "generate.total_tokens=400", "train.max_steps=1", "train.block_size=128",
            "train.batch_size=2", "train.micro_batch_size=2", "eval.methods=[loglik]"]
    return ["--preset", "cpu-demo", *(arg for s in sets for arg in ("--set", s))]


def _manifest(run_dir: Path) -> dict:
    path = run_dir / "manifest.json"
    return json.loads(path.read_text())["stages"] if path.is_file() else {}


@pytest.mark.slow
def test_two_rounds_end_to_end_with_a_kill_inside_round_two(vllm_server, tmp_path):
    args = _rounds_args(tmp_path, vllm_server)
    run_dir = tmp_path / "run"
    worker = subprocess.Popen([sys.executable, "-c", "from synthcpt.cli import main; main()", "run", "--rounds", "2",
                               *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 1500
    while _manifest(run_dir).get("generate@2", {}).get("status") != "running":
        assert worker.poll() is None, f"the run ended before round 2: {worker.stderr.read().decode()[-3000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    run = RunFolder(run_dir)
    round_1 = {name: entry["fingerprint"] for name, entry in _manifest(run_dir).items()}
    assert all(_manifest(run_dir)[n]["status"] == "complete" for n in ("generate", "train", "quiz", "probe"))
    round_1_model = (run.trained_model / "model.safetensors").stat().st_mtime_ns
    usage_path = run_dir / "cache" / "usage.json"
    round_1_usage = json.loads(usage_path.read_text())["generate: wrap"]

    done = synthcpt("run", "--rounds", "2", *args, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    # Round 1 whole: skipped, not one of its requests sent again, its model untouched.
    for name in ("generate", "train", "quiz", "probe"):
        assert f"{name}: up to date, skipped" in output
        assert _manifest(run_dir)[name]["fingerprint"] == round_1[name]
    # The engine's usage per step, over both processes: round 1's step sent nothing more.
    usage = json.loads(usage_path.read_text())
    assert usage["generate: wrap"] == round_1_usage and usage["generate@2: wrap"]["requests"] > 0
    assert (run.trained_model / "model.safetensors").stat().st_mtime_ns == round_1_model

    # Round 2 wrote only about the passages round 1's model missed, and trained on from that model.
    missed = run.missed_chunks()
    quizzed = {item.chunk_id for item in run.quiz()}
    assert missed and missed <= quizzed
    second = run.for_round(2)
    records = [r for f in sorted(second.generator_folder("wrap").glob("*.parquet")) for r in _rows(f)]
    assert records and {r["chunk_id"] for r in records} <= missed
    assert second.train_stats().started_from == str(run.trained_model) and run.train_stats().started_from is None
    config = load_config(None, [a for a in args[2:] if a != "--set"] + ["run.rounds=2"], preset="cpu-demo")
    requests = [r for g in generators(generation_context(config, second)) for r in g.requests()]
    assert requests and {r.metadata["chunk_id"] for r in requests} <= missed
    assert (run_dir / "rounds" / "2" / "train" / "model" / "config.json").is_file()
    assert (run_dir / "rounds" / "2" / "train" / "earlier-rounds.parquet").is_file()

    # The quiz and the exam share no question.
    exam = run.exam()
    assert exam and not {normalised(i.question) for i in run.quiz()} & {normalised(i.question) for i in exam}
    assert not {i.question_id for i in run.quiz()} & {i.question_id for i in exam}

    # Eval scored every round's model on the exam; the report draws the rounds; status lists them.
    results = run.eval_results()
    assert {s.model for s in results.scores} == {"base", "round 1", "trained"}
    assert second.probe_stats().round == 2 and run.probe_stats().round == 1
    html = run.report_html.read_text()
    assert '<section id="rounds"' in html and 'id="rounds-table"' in html
    status = synthcpt("status", *args, "--set", "run.rounds=2")
    listed = status.stdout + status.stderr
    assert status.returncode == 0 and "generate@2" in listed and "probe@2" in listed


def _rows(path: Path) -> list[dict]:
    from synthcpt.atomic import read_records

    return read_records(path)


def test_a_stage_of_rounds_alone_asked_of_a_run_of_one_round_is_one_line(tmp_path):
    corpus = write_stories(tmp_path / "corpus")
    args = ["--set", f"run.dir={tmp_path / 'run'}", "--set", f"ingest.inputs=[{corpus}]"]
    assert_one_line_error(synthcpt("quiz", *args), "runs only in a run of several rounds")
    assert_one_line_error(synthcpt("plan", "probe", *args), "runs only in a run of several rounds")
    assert_one_line_error(synthcpt("run", "--rounds", "0", *args), "run.rounds")
