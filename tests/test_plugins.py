"""The plugin shape: registries give the config its choices, nested sections, comments and dispatch; a
generator defined here runs through the real generate stage; no import cycle in the package."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest
from pydantic import Field

from synthcpt import plugins
from synthcpt.config import commented_config, config_model, load_config
from synthcpt.errors import SynthcptError
from synthcpt.s4_generate.base import Generator, Rejected
from synthcpt.section import Section
from tests.helpers import ROOT, assert_one_line_error, synthcpt

PROMPT = "headline/headline.md"


class HeadlineSettings(Section):
    """headline: a one-line headline per chunk."""

    temperature: float = Field(0.0, ge=0, description="Sampling temperature.")
    max_tokens: int = Field(24, ge=1, description="Max tokens of one headline.")


class Headline(Generator):
    """A generator defined outside the package, as a user would: settings, prompt, requests, parse."""

    name = "headline"
    summary = "a headline per chunk"
    Settings = HeadlineSettings

    @classmethod
    def prompts(cls, settings):
        return [PROMPT]

    @property
    def max_tokens(self) -> int:
        return self.settings.max_tokens

    def requests(self):
        template = self.prompt(PROMPT)
        for chunk in self.corpus.chunks:
            doc = self.corpus.by_id[chunk.doc_id]
            yield self.request(template.render(header=doc.header, text=chunk.text), template,
                               self.sampling(self.settings.temperature, self.settings.max_tokens),
                               prefix_key=doc.doc_id, metadata={"doc_id": doc.doc_id, "unit": chunk.chunk_id})

    def parse(self, result):
        if not result.ok or not result.text.strip():
            return Rejected("empty")
        doc = self.corpus.by_id[result.request.metadata["doc_id"]]
        return [self.record(result, f"{doc.header}: {result.text.strip()}", "headline")]


@pytest.fixture
def headline():
    plugins.GENERATORS.register(Headline)
    try:
        yield Headline
    finally:
        plugins.GENERATORS.unregister(Headline.name)


def test_a_registered_generator_gets_its_choice_section_and_comments(headline):
    config = load_config(None, ["generate.generators=[headline]", "generate.headline.max_tokens=12"])
    assert config.generate.headline.max_tokens == 12 and config.generate.generators == ["headline"]
    assert "headline" not in config_model()().generate.generators  # not a default generator
    text = commented_config(config)
    assert "  headline:\n" in text and "# Max tokens of one headline." in text
    assert "headline (a headline per chunk)" in text  # the generators' description lists it


def test_without_the_plugin_its_name_and_section_are_errors():
    with pytest.raises(Exception, match="generate.generators.0"):
        load_config(None, ["generate.generators=[headline]"])


@pytest.mark.parametrize("key, new_place", [
    ("generate.wrap_temperature=0.5", "generate.wrap.temperature"),
    ("generate.mix_min_tokens=8", "generate.mix.min_tokens"),
    ("generate.rc_questions=2", "generate.rc_llm.questions"),
    ("generate.prompts_dir=p", "run.prompts_dir"),
    ("engine.base_url=http://x", "engine.openai.base_url"),
    ("engine.kv_cache_gb=1", "engine.vllm.kv_cache_gb"),
    ("entities.llm_max_tokens=9", "entities.llm.max_tokens"),
    ("eval.cot_shots=2", "eval.generative.shots"),
])
def test_an_old_flat_key_names_its_new_place(key, new_place):
    with pytest.raises(SynthcptError) as error:
        load_config(None, [key])
    assert str(error.value) == f"invalid config: unknown setting '{key.split('=')[0]}': it is now '{new_place}'"


def test_an_old_flat_key_on_the_command_line_is_one_error_line():
    assert_one_line_error(synthcpt("status", "--set", "generate.wrap_max_tokens=9"), "generate.wrap.max_tokens")


def test_every_plugin_kind_is_discovered_with_its_settings():
    assert {"vllm", "openai"} <= set(plugins.BACKENDS.names())
    assert {"entigraph", "wrap", "rc_mined", "rc_llm", "bonito"} <= set(plugins.GENERATORS.names())
    assert {"loglik", "open_book", "generative"} <= set(plugins.EVAL_METHODS.names())
    assert {"spacy", "llm", "hybrid"} <= set(plugins.EXTRACTORS.names())
    config = config_model()()
    assert config.engine.openai.concurrency == 64 and config.entities.spacy.min_phrase_mentions == 2
    assert config.eval.generative.shots == 5 and config.generate.bonito.top_p == 0.95


def _top_level_imports(path: Path) -> set[str]:
    """The synthcpt modules a module imports when it is imported (not inside functions or TYPE_CHECKING)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("synthcpt"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("synthcpt"))
    return found


def test_no_import_cycle_in_the_package():
    package = ROOT / "synthcpt"
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in package.rglob("*.py") if "shipped_prompts" not in p.parts}
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        for target in _top_level_imports(path):
            if target in modules and target != name:
                graph.add_edge(name, target)
    assert list(nx.simple_cycles(graph)) == []


@pytest.mark.slow
def test_a_generator_defined_in_the_test_runs_through_the_stage(headline, tmp_path, vllm_engine_settings):
    from synthcpt.pipeline import Runner
    from synthcpt.s4_generate.records import read_shards
    from tests.conftest import DEMO_CORPUS

    prompts_dir = tmp_path / "prompts"
    (prompts_dir / "headline").mkdir(parents=True)
    (prompts_dir / PROMPT).write_text("Write a one-line headline for this passage of {{header}}.\n\n{{text}}\n")
    config = load_config(None, [
        f"run.dir={tmp_path / 'run'}", f"run.prompts_dir={prompts_dir}", f"ingest.inputs=[{DEMO_CORPUS}]",
        f"engine.vllm.kv_cache_gb={vllm_engine_settings.vllm.kv_cache_gb}", "entities.extractor=spacy",
        "generate.generators=[headline]", "generate.tokens={headline: 60}", "generate.mix.min_tokens=4"])
    Runner(config, reporter=lambda _: None).execute(["ingest", "entities", "graph", "generate"], force=set())
    records = read_shards(tmp_path / "run" / "generate" / "headline")
    assert records and sum(r["n_tokens"] for r in records) >= 60
    assert {r["generator"] for r in records} == {"headline"} and all(r["prompt_file"] == PROMPT for r in records)
    mix = read_shards(tmp_path / "run" / "generate" / "mix")
    assert {r["generator"] for r in mix} == {"headline", "raw"}

    # Its prompt is part of the stage's fingerprint: editing it makes generate stale.
    from synthcpt.pipeline import fingerprints

    before = fingerprints(config)["generate"]
    (prompts_dir / PROMPT).write_text("Give this passage of {{header}} a title.\n\n{{text}}\n")
    assert fingerprints(config)["generate"] != before
