"""The stage mechanism: skip when complete for the same inputs and settings, rerun on change,
--from / --only, invalidation of later stages."""

import json
import os

import pytest

from synthcpt.config import load_config
from synthcpt.errors import SynthcptError
from synthcpt.pipeline import STAGES, Runner, fingerprints, select, stage_names
from tests.helpers import assert_one_line_error, synthcpt


def config_for(tmp_path, *overrides):
    story = tmp_path / "story.txt"
    if not story.exists():
        story.write_text("Korvin waited in the cell. The Ruler came at dawn and asked him questions.")
    return load_config(None, [f"run.dir={tmp_path / 'run'}", f"ingest.inputs=['{story}']", *overrides])


def ingest_started(tmp_path):
    return json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["ingest"]["started"]


def test_stages_are_discovered_in_pipeline_order():
    names = stage_names()
    assert names[0] == "ingest" and len(names) == len(set(names))
    assert [s.name for s in STAGES] == names


def test_complete_stage_is_skipped_and_changes_rerun_it(tmp_path, embedded_model):
    Runner(config_for(tmp_path)).execute(["ingest"], force=set())
    first = ingest_started(tmp_path)
    Runner(config_for(tmp_path)).execute(["ingest"], force=set())
    assert ingest_started(tmp_path) == first, "same inputs and settings: skipped"

    Runner(config_for(tmp_path, "ingest.chunk_tokens=50")).execute(["ingest"], force=set())
    second = ingest_started(tmp_path)
    assert second != first, "a changed setting reruns the stage"

    story = tmp_path / "story.txt"
    story.write_text(story.read_text() + " He lied.")
    os.utime(story, ns=(1, 1))
    Runner(config_for(tmp_path, "ingest.chunk_tokens=50")).execute(["ingest"], force=set())
    assert ingest_started(tmp_path) != second, "a changed input file reruns the stage"


def test_forced_stage_reruns(tmp_path, embedded_model):
    Runner(config_for(tmp_path)).execute(["ingest"], force=set())
    first = ingest_started(tmp_path)
    Runner(config_for(tmp_path)).execute(["ingest"], force={"ingest"})
    assert ingest_started(tmp_path) != first


def test_a_changed_stage_invalidates_every_later_stage(tmp_path):
    names = stage_names()
    assert len(names) >= 2
    base = fingerprints(config_for(tmp_path))
    changed = fingerprints(config_for(tmp_path, "ingest.chunk_tokens=77"))
    assert all(base[n] != changed[n] for n in names)
    later = names[1]
    changed_later = fingerprints(config_for(tmp_path, f"run.dir={tmp_path / 'other'}"))
    assert changed_later == base, "the run folder is not part of any stage's fingerprint"
    section = type(getattr(config_for(tmp_path), later)).model_fields
    assert section, f"stage {later} has settings"


def test_a_stage_needs_the_stages_before_it(tmp_path):
    later = stage_names()[1]
    with pytest.raises(SynthcptError, match="'ingest' is not complete"):
        Runner(config_for(tmp_path)).execute([later], force={later})


def test_select_from_and_only():
    names = stage_names()
    assert select(names, None, None) == names
    assert select(names, names[1], None) == names[1:]
    assert select(names, None, names[-1]) == [names[-1]]
    with pytest.raises(SynthcptError, match="unknown stage 'nope'"):
        select(names, "nope", None)


def test_cli_run_only_and_status(tmp_path, embedded_model):
    config = tmp_path / "c.yaml"
    (tmp_path / "story.txt").write_text("The ship landed on Callisto. The cook was a robot.")
    config.write_text(f"run:\n  dir: {tmp_path / 'run'}\ningest:\n  inputs: ['{tmp_path / 'story.txt'}']\n")
    proc = synthcpt("run", "--config", str(config), "--only", "ingest")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["ingest"]["status"] == "complete"
    assert manifest["versions"]["torch"] and manifest["versions"]["synthcpt"]
    assert manifest["stages"]["ingest"]["stats"]["documents"] == 1
    status = synthcpt("status", "--config", str(config))
    assert "complete" in status.stderr + status.stdout
    assert_one_line_error(synthcpt("run", "--config", str(config), "--only", "nosuch"), "unknown stage 'nosuch'")
