"""The engine's commands as a user runs them: one clear line on bad input."""

from __future__ import annotations

from tests.helpers import assert_one_line_error, synthcpt


def test_serve_with_a_missing_model_is_one_line(tmp_path):
    proc = synthcpt("serve", "--set", f"engine.model={tmp_path / 'missing'}")
    assert_one_line_error(proc, "model not found")


def test_plan_with_an_unknown_stage_is_one_line(tmp_path):
    proc = synthcpt("plan", "nosuchstage", "--set", f"run.dir={tmp_path}")
    assert_one_line_error(proc, "unknown stage 'nosuchstage'")


def test_bad_engine_setting_is_one_line(tmp_path):
    proc = synthcpt("plan", "--set", "engine.backend=llamacpp", "--set", f"run.dir={tmp_path}")
    assert_one_line_error(proc, "engine.backend")
