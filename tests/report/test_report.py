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

from synthcpt.atomic import read_records
from synthcpt.run_folder import RunFolder
from synthcpt.s7_report.build import build_report
from synthcpt.s7_report.settings import ReportSettings
from synthcpt.s7_report.synthetic import rejects
from tests.helpers import assert_one_line_error, synthcpt

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FULL_SECTIONS = ["learning", "synthetic", "graph", "coverage", "training", "corpus", "run", "config"]
FIGURES = ("accuracy", "synthetic-tokens", "rejects", "graph", "coverage", "training-curves")


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
    from synthcpt.pipeline import STAGES, Runner, fingerprints

    config = load_config(None, [f"run.dir={full_run}", "report.samples=1"])
    folder, prints = RunFolder(full_run), fingerprints(config)
    for stage in STAGES[:-1]:  # the earlier stages' outputs are in the folder; mark them done for this config
        folder.update_stage(stage.name, status="complete", fingerprint=prints[stage.name])
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

    from synthcpt.s7_report.document import CSP

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
