"""The run report: built from whatever the run folder holds, findings first, readable (no JSON in its
tables), opened in headless Chromium with its figures painted, and escaped."""

from __future__ import annotations

import base64
import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from synthcpt.atomic import read_records, write_model
from synthcpt.questions import QAItem
from synthcpt.run_folder import RunFolder
from synthcpt.s8_report.build import build_report
from synthcpt.s8_report.learning import headline, meaning
from synthcpt.s8_report.settings import ReportSettings
from synthcpt.s8_report.synthetic import rejects
from synthcpt.stats import Comparison, EvalResults, ExamStats, Forgetting, Score
from tests.helpers import assert_one_line_error, synthcpt
from tests.report.conftest import HOSTILE

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FULL_SECTIONS = ["learning", "exam", "synthetic", "graph", "coverage", "training", "corpus", "run", "config"]
FIGURES = ("headline", "accuracy", "synthetic-tokens", "rejects", "graph", "coverage", "training-curves")


def _chromium(binary: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=180, check=False)


def _dom(chromium: str, page: Path, profile: Path) -> str:
    dumped = _chromium(chromium, page, profile, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    return dumped.stdout


def _cells(dom: str) -> list[str]:
    return [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td>(.*?)</td>", dom, re.DOTALL)]


def _expected_changes(run_dir: Path) -> dict[str, set[str]]:
    """From the evaluation's own records: the questions base got wrong and trained right, and back."""
    records = read_records(run_dir / "eval" / "questions.parquet")
    base = {r["question_id"]: r["acc"] for r in records if r["model"] == "base"}
    trained = {r["question_id"]: r["acc"] for r in records if r["model"] == "trained"}
    return {"gained": {q for q in trained if trained[q] > base[q]}, "lost": {q for q in trained if trained[q] < base[q]}}


def _chance(run_dir: Path) -> float:
    options = {q["question_id"]: len(q["options"]) for q in read_records(run_dir / "ingest" / "questions.parquet")}
    asked = {r["question_id"] for r in read_records(run_dir / "eval" / "questions.parquet")}
    return sum(1 / options[q] for q in asked) / len(asked)


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of a session fixture's run folder to change (links, such as train/model, stay links)."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, symlinks=True)
    return copy


def _score(model: str, method: str, value: float, half: float = 0.05, metric: str = "acc") -> Score:
    return Score(model=model, method=method, metric=metric, n=200, value=value, ci=(value - half, value + half))


def _results(scores: list[Score], comparisons: list[Comparison] = (), not_evaluated: str = "",
             models: tuple[str, ...] = ("base", "trained")) -> EvalResults:
    """TEST FIXTURE: the eval stage's results in its schema, with the given scores and no records."""
    return EvalResults(questions=0 if not_evaluated else 200, not_evaluated=not_evaluated,
                       documents=0 if not_evaluated else 3, qa_sets=["quality-demo"],
                       models={} if not_evaluated else {m: f"{m}-model" for m in models},
                       baseline="base", methods=["loglik", "rag", "open_book"], confidence=0.95, scores=scores,
                       comparisons=list(comparisons), per_document=[], forgetting=Forgetting(texts=0, perplexity={}))


def _section(page: str, section: str) -> str:
    found = re.search(rf'<section id="{section}">(.*?)</section>', page, re.DOTALL)
    assert found, f"no {section} section"
    return found.group(1)


def _three_numbers(trained: float, rag: float) -> EvalResults:
    """Closed book 31% → `trained`, RAG at `rag` (and trained + RAG), open book 70%; intervals ±5 points."""
    scores = [_score("base", "loglik", 0.31), _score("trained", "loglik", trained), _score("base", "rag", rag),
              _score("trained", "rag", rag + 0.06), _score("base", "open_book", 0.70)]
    change = Comparison(model="trained", baseline="base", method="loglik", metric="acc", n=200,
                        difference=trained - 0.31, ci=(trained - 0.31 - 0.04, trained - 0.31 + 0.04))
    return _results(scores, [change])


@pytest.mark.parametrize(("trained", "rag", "verdict"), [
    (0.60, 0.45, "so the trained model beats retrieval"),
    (0.36, 0.50, "so the trained model does not yet beat retrieval"),
    (0.45, 0.48, "training and retrieval cannot be told apart"),
])
def test_first_screen_shows_the_three_numbers_and_what_they_mean(ingested_run, tmp_path, trained, rag, verdict):
    run_dir = _copy(ingested_run, tmp_path)
    write_model(RunFolder(run_dir).stats_path("eval"), _three_numbers(trained, rag))
    stats = build_report(run_dir, ReportSettings())
    assert stats.shown[0] == "learning"
    learning = _section((run_dir / "report.html").read_text(), "learning")
    # The sentence first, then the three numbers side by side with their intervals, then one chart.
    sentence = re.match(r'<h2>[^<]*</h2><p class="lead">([^<]*)</p>', learning)
    assert sentence, learning[:300]
    sentence = html.unescape(sentence.group(1))
    assert sentence.startswith(f"Training raised closed-book accuracy from 31.0% to {trained:.1%}")
    assert f"RAG on the base model reaches {rag:.1%}" in sentence and verdict in sentence
    others = {"so the trained model beats retrieval", "so the trained model does not yet beat retrieval",
              "training and retrieval cannot be told apart"} - {verdict}
    assert not any(other in sentence for other in others)
    assert f"the trained model with RAG reaches {rag + 0.06:.1%}" in sentence
    assert "the base model reaches 70.0%, the ceiling for this exam" in sentence
    table = re.search(r'<table id="headline-table">.*?</table>', learning, re.DOTALL)
    assert table and learning.index('id="headline-table"') < learning.index('id="evaluation-table"')
    headers = re.findall(r"<th>(.*?)</th>", table.group(0))
    assert [html.unescape(h) for h in headers] == ["closed book (loglik): base → trained",
                                                    "RAG: base → trained + RAG", "open book (base): the ceiling"]
    cells = _cells(table.group(0))
    low, high = 100 * (trained - 0.05), 100 * (trained + 0.05)
    assert cells[0].startswith(f"31.0% [26.0, 36.0] → {trained:.1%} [{low:.1f}, {high:.1f}]")
    assert cells[1] == f"{rag:.1%} [{100 * rag - 5:.1f}, {100 * rag + 5:.1f}] → {rag + 0.06:.1%} " \
                       f"[{100 * rag + 1:.1f}, {100 * rag + 11:.1f}]"
    assert cells[2] == "70.0% [65.0, 75.0]"
    assert learning.count("<figure") == 2 and learning.index('id="figure-headline"') < learning.index("By method")
    assert (run_dir / "report" / "headline.png").read_bytes().startswith(b"\x89PNG")
    assert "## Did the model learn the corpus?" in (run_dir / "report.md").read_text()


@pytest.mark.parametrize(("scores", "expected", "absent"), [
    ([_score("base", "loglik", 0.31), _score("base", "rag", 0.45), _score("base", "open_book", 0.7)],
     ["The base model's closed-book accuracy is 31.0%; no trained model was evaluated",
      "RAG on the base model reaches 45.0%;", "the ceiling for this exam"], ["beat", "Training"]),
    ([_score("base", "loglik", 0.31), _score("trained", "loglik", 0.50)],
     ["Training raised closed-book accuracy from 31.0% to 50.0%"], ["RAG", "ceiling"]),
    ([_score("base", "loglik", 0.31), _score("trained", "loglik", 0.34)],
     ["a change the interval cannot tell from none"], ["raised", "lowered"]),
    ([_score("base", "loglik", 0.50), _score("trained", "loglik", 0.30)],
     ["Training lowered closed-book accuracy from 50.0% to 30.0%"], ["raised"]),
    ([_score("base", "freeform", 0.20), _score("trained", "freeform", 0.40), _score("base", "open_book", 0.7)],
     ["Training raised closed-book accuracy (freeform) from 20.0% to 40.0%"], ["RAG"]),
])
def test_the_sentence_follows_the_numbers(scores, expected, absent):
    """Without paired comparisons the closed-book verdict comes from the two intervals."""
    sentence = meaning(headline(_results(scores, models=tuple(dict.fromkeys(s.model for s in scores)))))
    for text in expected:
        assert text in sentence
    for text in absent:
        assert text not in sentence
    assert "chance" not in sentence  # not known here


def test_the_sentence_says_when_closed_book_is_no_better_than_guessing():
    h = headline(_results([_score("base", "loglik", 0.25), _score("trained", "loglik", 0.28)]))
    assert "(trained's interval reaches chance, 25.0%: no better than guessing)" in meaning(h, chance=0.25)
    assert "chance" not in meaning(h, chance=0.2)  # the interval [0.23, 0.33] lies above it


def test_freeform_figures_have_readable_names(ingested_run, tmp_path):
    run_dir = _copy(ingested_run, tmp_path)
    scores = [_score("base", "loglik", 0.3), _score("base", "freeform", 0.2), _score("trained", "freeform", 0.4),
              _score("base", "freeform", 0.8, metric="attempted"), _score("trained", "freeform", 0.9, metric="attempted"),
              _score("base", "freeform", 0.25, metric="acc_attempted"), _score("base", "freeform", 0.3, metric="token_f1")]
    attempted = Comparison(model="trained", baseline="base", method="freeform", metric="attempted", n=200,
                           difference=0.1, ci=(0.05, 0.15))
    write_model(RunFolder(run_dir).stats_path("eval"), _results(scores, [attempted]))
    build_report(run_dir, ReportSettings())
    table = re.search(r'<table id="evaluation-table">.*?</table>', (run_dir / "report.html").read_text(), re.DOTALL)
    rows = [_cells(row) for row in re.findall(r"<tr>.*?</tr>", table.group(0), re.DOTALL)[1:]]
    by_measure = {(row[0], row[1]): row for row in rows}
    assert set(by_measure) == {("loglik", "accuracy"), ("freeform", "correct"), ("freeform", "not attempted"),
                               ("freeform", "correct given attempted"), ("freeform", "token F1")}
    # Not attempted is one minus the attempt rate, its interval flipped, its change negated.
    assert by_measure["freeform", "not attempted"][3:] == ["0.200 [0.150, 0.250]", "0.100 [0.050, 0.150]",
                                                           "-0.100 [-0.150, -0.050]"]


def _write_empty_exam(run_dir: Path) -> None:
    run = RunFolder(run_dir)
    run.write_exam([])
    run.write_stats("exam", ExamStats(questions=0, given=0, generated=0, drafts=6,
                                      rejected={"answer_not_in_passage": 4, "self_check_failed": 2}, documents=0,
                                      documents_without_questions=["hostile"], source="generated"))


def test_nothing_evaluated_says_why_and_shows_the_exam(ingested_run, tmp_path):
    run_dir = _copy(ingested_run, tmp_path)
    _write_empty_exam(run_dir)
    why = "the exam holds no questions: no generated question passed validation (see exam/stats.json)"
    write_model(RunFolder(run_dir).stats_path("eval"), _results([], not_evaluated=why))
    stats = build_report(run_dir, ReportSettings())
    assert stats.shown == ["learning", "exam", "corpus", "run", "config"]
    page = (run_dir / "report.html").read_text()
    learning = _section(page, "learning")
    assert re.fullmatch(r'<h2>[^<]*</h2><p class="lead">([^<]*)</p>', learning)  # that line alone
    assert f"Nothing was evaluated: {html.escape(why)}." in learning
    assert 'id="evaluation-table"' not in page and 'id="headline-table"' not in page and "<figure" not in learning
    exam = _section(page, "exam")
    assert "The exam holds 0 questions on 0 documents" in exam and "The engine wrote 6 drafts; validation rejected 6" \
        in exam
    rejected = re.search(r'<table id="exam-rejections-table">.*?</table>', exam, re.DOTALL)
    assert rejected and _cells(rejected.group(0)) == ["answer not in passage", "4", "self check failed", "2"]
    assert "Example questions" not in exam
    assert f"Nothing was evaluated: {why}." in (run_dir / "report.md").read_text()


def test_exam_examples_show_generated_questions_with_their_passage(ingested_run, tmp_path):
    run_dir = _copy(ingested_run, tmp_path)
    run = RunFolder(run_dir)
    documents = {d["doc_id"]: d["title"] for d in read_records(run.documents_path)}
    doc_id = next(d for d in documents if d != "hostile")
    passage = f"The amber bell rang at noon over the harbour. {HOSTILE}"
    generated = QAItem(f"{doc_id}/x0-0", doc_id, "What rang at noon over the harbour?",
                       ("The church organ", "The amber bell", "A ship's horn", "The lighthouse siren"), ("B",),
                       "generated", title=documents[doc_id], answer="the amber bell", passage=passage,
                       origin="generated")
    given = QAItem(f"{doc_id}/q0", doc_id, "A question the corpus brings?", ("yes", "no"), ("A",), "quality-demo")
    run.write_exam([given, generated])
    run.write_stats("exam", ExamStats(questions=2, given=1, generated=1, drafts=3, rejected={"duplicate": 2},
                                      documents=1, documents_without_questions=["hostile"], source="both"))
    stats = build_report(run_dir, ReportSettings())
    assert stats.shown == ["exam", "corpus", "run", "config"]  # no eval: no first section, the exam still shows
    page = (run_dir / "report.html").read_text()
    exam = _section(page, "exam")
    assert "1 given by the corpus or a question file and 1 generated" in exam
    assert "The engine wrote 3 drafts; validation rejected 2: duplicate 2." in exam
    assert "without a question: Hostile" in html.unescape(exam)
    # The generated question is the example, with its options, reference answer and passage (escaped).
    assert exam.count("<h3>Question ") == 1 and "A question the corpus brings?" not in exam
    assert "What rang at noon over the harbour?" in exam
    assert "A. The church organ; B. The amber bell; C. A ship&#x27;s horn; D. The lighthouse siren" in exam
    assert "<dd>B: the amber bell</dd>" in exam
    assert f"<pre>{html.escape(passage)}</pre>" in exam and "<script" not in exam
    # The corpus table counts the exam's questions per document, not ingest's.
    corpus = re.search(r'<table id="documents-table">.*?</table>', page, re.DOTALL)
    rows = {row[1]: row[5] for row in (_cells(r) for r in re.findall(r"<tr>.*?</tr>", corpus.group(0), re.DOTALL)[1:])}
    assert rows[doc_id] == "2" and all(n == "0" for d, n in rows.items() if d != doc_id)
    markdown = (run_dir / "report.md").read_text()
    assert "## The exam" in markdown and f"```text\n{passage}\n```" in markdown


def test_given_questions_are_examples_when_none_is_generated(ingested_run, tmp_path):
    run_dir = _copy(ingested_run, tmp_path)
    run = RunFolder(run_dir)
    items = [QAItem(f"d{i}/q0", f"d{i}", f"Given question {i}?", ("yes", "no"), ("B",), "mine") for i in range(6)]
    run.write_exam(items)  # no exam stats: what the questions themselves say
    build_report(run_dir, ReportSettings())
    exam = _section((run_dir / "report.html").read_text(), "exam")
    assert "The exam holds 6 questions on 6 documents: 6 given by the corpus or a question file, 0 generated" in exam
    assert exam.count("<h3>Question ") == 4 and "<pre>" not in exam and "<dd>B: no</dd>" in exam


def test_an_unreadable_exam_hides_its_section_only(ingested_run, tmp_path):
    from synthcpt.atomic import write_records

    run_dir = _copy(ingested_run, tmp_path)
    write_records(run_dir / "exam" / "questions.parquet", [{"question_id": "q", "colour": "red"}])
    stats = build_report(run_dir, ReportSettings())
    assert stats.shown == ["exam", "corpus", "run", "config"]
    markdown = (run_dir / "report.md").read_text()
    assert "## Not shown: exam" in markdown and "does not hold what this version of synthcpt writes" in markdown
    assert "## Corpus" in markdown and "## Run" in markdown  # the corpus table counts ingest's questions instead


def test_partial_run_shows_what_is_there(ingested_run):
    stats = build_report(ingested_run, ReportSettings())
    assert stats.shown == ["corpus", "run", "config"]
    page = (ingested_run / "report.html").read_text()
    assert 'id="documents-table"' in page and "LOST IN TRANSLATION" in page
    assert 'id="evaluation-table"' not in page
    assert "## Corpus" in (ingested_run / "report.md").read_text()


def test_full_report_sections_and_figures(full_run):
    stats = build_report(full_run, ReportSettings(samples=2))
    assert stats.shown == FULL_SECTIONS
    markdown = (full_run / "report.md").read_text()
    for figure in FIGURES:
        assert f"(report/{figure}.png)" in markdown
        assert (full_run / "report" / f"{figure}.png").read_bytes().startswith(b"\x89PNG")
    assert f"chance (1/number of options) = {_chance(full_run):.2f}" in markdown
    assert "Removed by the mix's filters: eval leak 1, near duplicate 2." in markdown
    per_document = re.search(r'<table id="per-document-table">.*?</table>', (full_run / "report.html").read_text(),
                             re.DOTALL)
    asked = {r["doc_id"] for r in read_records(full_run / "eval" / "questions.parquet")}
    assert len(asked) > 1 and per_document and per_document.group(0).count("<tr>") == len(asked) + 1
    # Evaluated closed book only: the first screen shows that number alone, before and after training.
    learning = _section((full_run / "report.html").read_text(), "learning")
    headline = re.search(r'<table id="headline-table">.*?</table>', learning, re.DOTALL)
    assert headline and re.findall(r"<th>(.*?)</th>", headline.group(0)) == [
        html.escape("closed book (loglik): base → trained")]
    assert "RAG" not in learning.split("</p>")[0] and "ceiling" not in learning.split("</p>")[0]
    assert 'id="exam-rejections-table"' not in learning
    # The same content in both formats: every section, and the first table's header row.
    for title in ("Did the model learn the corpus?", "What was generated", "Knowledge graph", "Training"):
        assert f"## {title}" in markdown and f"<h2>{html.escape(title)}</h2>" in (full_run / "report.html").read_text()


def test_rejects_are_counted_per_reason_and_phase(full_run):
    stats = RunFolder(full_run).generate_stats()
    counts = rejects(stats)
    for generator, part in stats.generators.items():
        for reason, n in part.rejected.items():
            assert counts[f"{reason.replace('_', ' ')} (at generation)"][generator] == n
    assert counts["near duplicate (mix filter)"] == {"raw": 2} and counts["eval leak (mix filter)"] == {"entigraph": 1}
    assert sum(sum(per.values()) for per in counts.values()) == sum(
        n for phase in (stats.generators, stats.mix.by_generator) for part in phase.values()
        for n in part.rejected.values())


def test_changed_answers_are_the_evaluations_own(full_run):
    build_report(full_run, ReportSettings(samples=2))
    page = (full_run / "report.html").read_text()
    questions = {q["question_id"]: q for q in read_records(full_run / "ingest" / "questions.parquet")}
    none = {"gained": "base wrong, trained right: none.", "lost": "base right, trained wrong: none."}
    for direction, expected in _expected_changes(full_run).items():
        table = re.search(rf'<table id="{direction}-table">.*?</table>', page, re.DOTALL)
        if not expected:
            assert table is None and none[direction] in page
            continue
        assert table and table.group(0).count("<tr>") == len(expected) + 1  # the header row too
        for question_id in expected:
            assert html.escape(questions[question_id]["question"]) in table.group(0)


def test_report_stage_is_not_shown_running(full_run):
    """Run as the pipeline's last stage, the report does not list itself (its entry reads "running"
    while it is written)."""
    from synthcpt.config import load_config
    from synthcpt.pipeline import Runner, fingerprints, steps

    config = load_config(None, [f"run.dir={full_run}", "report.samples=1"])
    folder, prints = RunFolder(full_run), fingerprints(config)
    for step in steps(config)[:-1]:  # the earlier steps' outputs are in the folder; mark them done for this config
        folder.update_stage(step.stage.name, status="complete", fingerprint=prints[step.name])
    Runner(config, reporter=lambda _: None).execute(["report"], force={"report"})
    table = re.search(r'<table id="stages-table">.*?</table>', (full_run / "report.html").read_text(), re.DOTALL)
    assert table and "<td>eval</td>" in table.group(0)
    assert "<td>report</td>" not in table.group(0) and "running" not in table.group(0)


def test_report_opens_in_chromium_readable_and_no_script_runs(full_run, chromium, tmp_path):
    import matplotlib.image

    build_report(full_run, ReportSettings(samples=2))
    page = full_run / "report.html"
    dom = _dom(chromium, page, tmp_path / "profile-dom")
    for section in FULL_SECTIONS:
        assert f'<section id="{section}">' in dom
    table = re.search(r'<table id="evaluation-table">.*?</table>', dom, re.DOTALL)
    assert table and "<th>trained</th>" in table.group(0) and "<th>base</th>" in table.group(0)
    caption = re.search(r'<figure id="figure-accuracy">.*?<figcaption[^>]*>(.*?)</figcaption>', dom, re.DOTALL)
    assert caption and f"dashed line: chance (1/number of options) = {_chance(full_run):.2f}" in caption.group(1)
    cells = _cells(dom)
    assert len(cells) > 50
    for cell in cells:  # no JSON dumped into a cell, no flattened `a.b.c` statistics keys
        assert "{" not in cell and not re.fullmatch(r"[a-z_]+(\.[a-z_-]+)+", cell.strip()), cell
    assert dom.count("<details>") >= 3  # the sample browser: one per record
    assert "active_reading · create a timeline" in dom  # a strategy is the style of its record
    # Had a script run, the title and body would read "pwned"; none is in the DOM at all.
    assert re.search(r"<title>synthcpt report: run</title>", dom)
    assert "<script" not in dom.lower() and "<img src=\"x\"" not in dom
    assert "&lt;script&gt;document.title='pwned'" in dom
    shot = tmp_path / "report.png"
    result = _chromium(chromium, page, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,3000",
                       "--hide-scrollbars")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[1] == 1280 and pixels.std() > 0.01  # rendered content, not a blank page


def test_graph_image_is_painted_by_chromium(full_run, chromium, tmp_path):
    """The report's graph figure, alone on a page with the report's own policy, is painted pixel for
    pixel as the PNG it embeds: the image loads under the Content-Security-Policy."""
    import matplotlib.image

    from synthcpt.s8_report.document import CSP

    build_report(full_run, ReportSettings(samples=0))
    figure = re.search(r'<figure id="figure-graph"><img alt="[^"]*" src="data:image/png;base64,([^"]+)"',
                       (full_run / "report.html").read_text())
    assert figure
    png = tmp_path / "graph.png"
    png.write_bytes(base64.b64decode(figure.group(1)))
    expected = matplotlib.image.imread(str(png))
    alone = tmp_path / "graph.html"
    alone.write_text(f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{CSP}"></head>'
                     f'<body style="margin:0"><img src="data:image/png;base64,{figure.group(1)}"></body></html>')
    shot = tmp_path / "shot.png"
    height, width = expected.shape[:2]
    result = _chromium(chromium, alone, tmp_path / "profile-graph", f"--screenshot={shot}",
                       f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    painted = matplotlib.image.imread(str(shot))[:height, :width, :3]
    assert expected.std() > 0.05  # a drawing, not an empty canvas
    assert abs(painted - expected[:, :, :3]).mean() < 0.02


def test_markdown_never_carries_raw_html(full_run):
    build_report(full_run, ReportSettings(samples=2))
    markdown = (full_run / "report.md").read_text()
    outside_fences = re.sub(r"(`{3,})text\n.*?\n\1", "", markdown, flags=re.DOTALL)
    assert "<script" not in outside_fences and "<img" not in outside_fences
    assert "&lt;script&gt;" in outside_fences


def test_cli_rebuilds_from_the_run_folder(full_run, tmp_path):
    (full_run / "report.html").unlink(missing_ok=True)
    proc = synthcpt("report", str(full_run))
    assert proc.returncode == 0, proc.stderr
    assert 'id="evaluation-table"' in (full_run / "report.html").read_text()
    assert_one_line_error(synthcpt("report", str(tmp_path / "nowhere")), "not a run folder")


def test_a_missing_chromium_fails_on_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    from tests.report.conftest import find_chromium

    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on it
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="chromium is not installed on CI"):
        find_chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        find_chromium()


def test_an_unreadable_stats_file_hides_its_section_only(ingested_run, tmp_path):
    """A stats file of another shape (another synthcpt version) is a line in place of its section; the
    rest of the report is built."""
    run_dir = tmp_path / "run"
    shutil.copytree(ingested_run, run_dir)
    stats_file = RunFolder(run_dir).stats_path("ingest")
    stats_file.write_text(stats_file.read_text().replace('"documents"', '"docs"'))
    stats = build_report(run_dir, ReportSettings())
    assert stats.shown == ["corpus", "run", "config"]
    markdown = (run_dir / "report.md").read_text()
    assert "## Not shown: corpus" in markdown and "does not hold what this version of synthcpt writes" in markdown
    assert f"{stats_file} does not hold" in (run_dir / "report.html").read_text()
    assert "## Run" in markdown and "## Config" in markdown
