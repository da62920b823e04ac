"""The run report: built from whatever the run folder holds, opened in headless Chromium, escaped."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from synthcpt.s7_report import ReportSettings
from synthcpt.s7_report.build import build_report
from tests.helpers import assert_one_line_error, synthcpt

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium(binary: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=180, check=False)


def test_partial_run_shows_what_is_there(ingested_run):
    stats = build_report(ingested_run, ReportSettings())
    assert stats["shown"] == ["run", "config", "corpus"]
    page = (ingested_run / "report.html").read_text()
    assert 'id="documents-table"' in page and "LOST IN TRANSLATION" in page
    assert 'id="evaluation-table"' not in page
    assert "## Corpus" in (ingested_run / "report.md").read_text()


def test_full_report_sections(full_run):
    stats = build_report(full_run, ReportSettings(samples=2))
    assert stats["shown"] == ["run", "config", "corpus", "synthetic", "coverage", "samples", "training", "evaluation"]
    markdown = (full_run / "report.md").read_text()
    for figure in ("training-curves", "accuracy", "synthetic-tokens"):
        assert f"(report/{figure}.png)" in markdown
        assert (full_run / "report" / f"{figure}.png").read_bytes().startswith(b"\x89PNG")
    assert "near\\_duplicate 2" in markdown  # what the filters removed
    assert "| trained | loglik | acc | 8 |" in markdown


def test_report_opens_in_chromium_and_no_script_runs(full_run, chromium, tmp_path):
    import matplotlib.image

    build_report(full_run, ReportSettings(samples=2))
    page = full_run / "report.html"
    dumped = _chromium(chromium, page, tmp_path / "profile-dom", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    table = re.search(r'<table id="evaluation-table">.*?</table>', dom, re.DOTALL)
    assert table and "<td>trained</td>" in table.group(0) and "<td>base</td>" in table.group(0)
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
