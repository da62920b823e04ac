"""Each bad input: one clear line naming the file and the reason, a non-zero exit, no traceback;
or, with ingest.on_error=skip, skipped and counted."""

import json

import pytest

from tests.helpers import assert_one_line_error, synthcpt
from tests.ingest.conftest import table

GOOD = "A good document about the orbit of a small moon."


def write_bad(kind: str, folder):
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "missing":
        return folder / "nowhere.txt", "path not found"
    if kind == "empty_folder":
        (folder / "empty").mkdir()
        return folder / "empty", "empty folder"
    if kind == "binary":
        (folder / "b.txt").write_bytes(b"\x7fELF\x00\x01\x02" + bytes(range(256)))
        return folder / "b.txt", "binary file"
    if kind == "encoding":
        (folder / "latin.txt").write_bytes("caf\u00e9 cr\u00e8me".encode("latin-1"))
        return folder / "latin.txt", "not UTF-8"
    if kind == "unsupported":
        (folder / "paper.pdf").write_bytes(b"%PDF-1.4")
        return folder / "paper.pdf", "unsupported file type '.pdf'"
    if kind == "too_large":
        with open(folder / "big.txt", "w") as f:
            f.write(("x" * 1023 + "\n") * (50 * 1024))
        return folder / "big.txt", "over ingest.max_document_mb"
    if kind == "empty":
        (folder / "blank.md").write_text("  \n\n \t\n")
        return folder / "blank.md", "empty document"
    if kind == "bad_json":
        (folder / "d.jsonl").write_text(json.dumps({"text": "fine"}) + "\n{not json\n")
        return folder / "d.jsonl", ":2: not valid JSON"
    raise ValueError(kind)


KINDS = ["missing", "empty_folder", "binary", "encoding", "unsupported", "too_large", "empty", "bad_json"]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_fails_with_one_clear_line(tmp_path, kind, embedded_model):
    path, reason = write_bad(kind, tmp_path / "in")
    proc = synthcpt("ingest", "--set", f"run.dir={tmp_path / 'run'}", "--set", f"ingest.inputs=['{path}']")
    line = assert_one_line_error(proc, reason)
    assert path.name in line


def test_skip_mode_skips_and_counts_every_bad_input(tmp_path, embedded_model):
    folder = tmp_path / "in"
    inputs = [write_bad(kind, folder)[0] for kind in KINDS]
    (folder / "good.txt").write_text(GOOD)
    listed = ", ".join(f"'{p}'" for p in [*inputs, folder / "good.txt"])
    run_dir = tmp_path / "run"
    proc = synthcpt("ingest", "--set", f"run.dir={run_dir}", "--set", f"ingest.inputs=[{listed}]",
                    "--set", "ingest.on_error=skip")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((run_dir / "ingest" / "stats.json").read_text())
    assert stats["documents"] == 2  # good.txt and the valid first line of d.jsonl
    assert stats["skipped_by_reason"] == {kind: 1 for kind in KINDS}
    skipped = [json.loads(line) for line in (run_dir / "ingest" / "skipped.jsonl").read_text().splitlines()]
    assert len(skipped) == len(KINDS) and all(s["reason"] for s in skipped)


def test_failed_rerun_keeps_earlier_output_intact(tmp_path, embedded_model):
    run_dir = tmp_path / "run"
    (tmp_path / "good.txt").write_text(GOOD)
    assert synthcpt("ingest", "--set", f"run.dir={run_dir}",
                    "--set", f"ingest.inputs=['{tmp_path / 'good.txt'}']").returncode == 0
    before = table(run_dir / "ingest" / "documents.parquet")
    path, reason = write_bad("bad_json", tmp_path / "in")
    proc = synthcpt("ingest", "--set", f"run.dir={run_dir}", "--set", f"ingest.inputs=['{path}']")
    assert_one_line_error(proc, reason)
    assert table(run_dir / "ingest" / "documents.parquet") == before
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["stages"]["ingest"]["status"] == "failed"


def test_empty_inputs_setting(tmp_path):
    assert_one_line_error(synthcpt("ingest", "--set", f"run.dir={tmp_path}"), "ingest.inputs is empty")


def test_missing_config_file(tmp_path):
    assert_one_line_error(synthcpt("run", "--config", str(tmp_path / "nope.yaml")), "config file not found")
