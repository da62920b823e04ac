import pytest
import yaml

from synthcpt.config import commented_config, config_model, load_config, preset_names
from synthcpt.errors import SynthcptError
from tests.helpers import assert_one_line_error, synthcpt


def test_defaults_have_every_section_in_pipeline_order():
    from synthcpt.pipeline import stage_names

    fields = list(config_model().model_fields)
    assert fields[:2] == ["run", "engine"]
    assert fields[2:] == stage_names()


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("run:\n  dir: runs/x\ningest:\n  chunk_tokens: 128\n")
    config = load_config(path, ["ingest.chunk_tokens=64", "ingest.inputs=[a.txt, b]", "run.seed=7"])
    assert config.ingest.chunk_tokens == 64
    assert [str(p) for p in config.ingest.inputs] == ["a.txt", "b"]
    assert config.run.seed == 7 and str(config.run.dir) == "runs/x"


@pytest.mark.parametrize("override, fragment", [
    ("ingest.chunk_size=3", "unknown setting 'ingest.chunk_size'"),
    ("nosuch.key=1", "unknown setting 'nosuch'"),
    ("ingest.chunk_tokens=-5", "ingest.chunk_tokens"),
    ("ingest.on_error=maybe", "ingest.on_error"),
    ("ingest", "section.key=value"),
])
def test_bad_settings_name_the_key(override, fragment):
    with pytest.raises(SynthcptError, match=fragment.replace(".", r"\.")):
        load_config(None, [override])


def test_bad_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("run: [unclosed\n")
    with pytest.raises(SynthcptError, match="not valid YAML"):
        load_config(path)
    path.write_text("- a list\n")
    with pytest.raises(SynthcptError, match="mapping"):
        load_config(path)


def test_commented_default_config_round_trips(tmp_path):
    text = commented_config()
    assert text.count("\n  # ") >= 10, "every key carries its description"
    path = tmp_path / "synthcpt.yaml"
    path.write_text(text)
    assert load_config(path).model_dump() == config_model()().model_dump()
    assert isinstance(yaml.safe_load(text), dict)


def test_init_command_writes_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "synthcpt.yaml"
    assert synthcpt("init", str(target)).returncode == 0
    assert load_config(target).ingest.chunk_tokens == 300
    assert_one_line_error(synthcpt("init", str(target)), "exists")


def test_cli_rejects_unknown_setting_in_one_line(tmp_path):
    proc = synthcpt("run", "--set", "ingest.bogus=1", "--set", f"run.dir={tmp_path}")
    assert_one_line_error(proc, "unknown setting 'ingest.bogus'")


@pytest.mark.parametrize("preset", ["cpu-demo", "gpu-local", "hosted-api", "gpu-cluster", "smt"])
def test_presets_validate_and_layer_under_file_and_overrides(tmp_path, preset):
    assert preset in preset_names()
    defaults = config_model()()
    config = load_config(None, [], preset)
    assert config.model_dump() != defaults.model_dump()
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\n")
    layered = load_config(path, ["run.seed=5"], preset)
    assert layered.train.epochs == 3 and layered.run.seed == 5
    assert layered.engine == config.engine, "the file overrides only the keys it names"


def test_the_gpu_presets_share_the_recipe_s_replay_evaluation_and_entigraph_budget():
    """They differ in who generates (vLLM, an API, a Ray cluster), not in what is trained and measured."""

    def recipe(preset: str) -> tuple:
        config = load_config(None, [], preset)
        return (config.train.model, config.train.replay_path, config.train.replay_share, config.eval.methods,
                config.generate.entigraph.max_tokens)

    local = recipe("gpu-local")
    assert local[1] is not None and local[2] == 0.1 and "entigraph_cot" in local[3] and local[4] == 4096
    assert recipe("hosted-api") == local
    assert recipe("gpu-cluster") == local


def test_unknown_preset():
    with pytest.raises(SynthcptError, match="unknown preset 'tiny'"):
        load_config(None, [], "tiny")


def test_init_with_preset_writes_its_values(tmp_path):
    target = tmp_path / "hosted.yaml"
    assert synthcpt("init", str(target), "--preset", "hosted-api").returncode == 0
    assert load_config(target).engine.backend == "openai"
