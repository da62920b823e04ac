"""One small generation over the demo stories with the embedded model, shared by the stage tests."""

from __future__ import annotations

import pytest

from tests.conftest import DEMO_CORPUS

# Tiny budgets and short answers: the whole generation takes a few minutes on two CPU cores. Waves of at
# least 8 requests, as the cpu-demo preset sends: the default 32 would send EntiGraph 24 requests of
# 6.8k-token prompts for a 200-token budget.
TARGETS = {"entigraph": 200, "wrap": 250, "rc_llm": 400, "bonito": 400, "rc_mined": 3000}
SETTINGS = [
    "entities.extractor=spacy", "generate.entigraph.max_tokens=64", "generate.entigraph.max_relations=8",
    "generate.wrap.max_tokens=48", "generate.rc_llm.max_tokens=64", "generate.bonito.max_tokens=96",
    "generate.rc_llm.questions=1", "generate.wrap.styles=[easy, qa]", "generate.mix.min_tokens=8",
    "generate.min_wave=8",
]


def generate_overrides(run_dir, targets=TARGETS, engine=None) -> list[str]:
    """The test config; with `engine` (the shared vLLM settings), the same engine settings."""
    budget = "{" + ", ".join(f"{k}: {v}" for k, v in targets.items()) + "}"
    same_engine = [f"engine.vllm.kv_cache_gb={engine.vllm.kv_cache_gb}"] if engine is not None else []
    return [f"run.dir={run_dir}", f"ingest.inputs=[{DEMO_CORPUS}]", *same_engine,
            f"generate.generators=[{', '.join(targets)}]", f"generate.tokens={budget}", *SETTINGS]


@pytest.fixture(scope="session")
def generated_run(tmp_path_factory, vllm_engine_settings):
    """A run folder after ingest and generate (in-process vLLM, shared with other areas' tests)."""
    from synthcpt.config import load_config
    from synthcpt.pipeline import Runner

    run_dir = tmp_path_factory.mktemp("generate") / "run"
    config = load_config(None, generate_overrides(run_dir, engine=vllm_engine_settings))
    assert config.engine.model_dump() == vllm_engine_settings.model_dump()  # the same settings share one model
    Runner(config, reporter=lambda _: None).execute(["ingest", "entities", "graph", "exam", "generate"], force=set())
    return config, run_dir


@pytest.fixture(scope="session")
def prepared_run(tmp_path_factory):
    """A run folder after the stages before generate (no LLM: spaCy entities), and its config."""
    from synthcpt.config import load_config
    from synthcpt.pipeline import Runner

    run_dir = tmp_path_factory.mktemp("prepared") / "run"
    config = load_config(None, generate_overrides(run_dir))
    Runner(config, reporter=lambda _: None).execute(["ingest", "entities", "graph", "exam"], force=set())
    return config, run_dir
