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


@pytest.mark.parametrize("rounds", [1, 3])
def test_a_changed_stage_invalidates_every_later_stage(tmp_path, rounds):
    base = fingerprints(config_for(tmp_path, f"run.rounds={rounds}"))
    assert len(base) >= 2
    changed = fingerprints(config_for(tmp_path, f"run.rounds={rounds}", "ingest.chunk_tokens=77"))
    assert base.keys() == changed.keys() and all(base[n] != changed[n] for n in base)
    # A change in round 2 leaves round 1 and what came before it, and redoes everything after.
    trained = fingerprints(config_for(tmp_path, f"run.rounds={rounds}", "train.lr=0.001"))
    steps = list(base)
    first_train = steps.index("train")
    assert all(trained[n] == base[n] for n in steps[:first_train])
    assert all(trained[n] != base[n] for n in steps[first_train:])
    names = stage_names()
    later = names[1]
    changed_later = fingerprints(config_for(tmp_path, f"run.rounds={rounds}", f"run.dir={tmp_path / 'other'}"))
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


def test_rounds_repeat_generate_train_and_probe_and_round_one_is_a_run_of_one_round(tmp_path):
    one = fingerprints(config_for(tmp_path))
    three = fingerprints(config_for(tmp_path, "run.rounds=3"))
    assert list(one) == ["ingest", "entities", "graph", "exam", "generate", "train", "eval", "report"]
    assert list(three) == ["ingest", "entities", "graph", "exam", "generate", "train", "quiz", "probe",
                           "generate@2", "train@2", "probe@2", "generate@3", "train@3", "probe@3", "eval", "report"]
    # `--rounds 3` on a finished run of one round goes on from its model: round 1 is that run.
    assert all(three[name] == one[name] for name in list(one)[:6])
    assert three["eval"] != one["eval"]
    with pytest.raises(SynthcptError, match="runs only in a run of several rounds"):
        Runner(config_for(tmp_path)).execute(["quiz"], force=set())
