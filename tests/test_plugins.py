"""The plugin shape: registries give the config its choices, nested sections, comments and dispatch; a
plugin of each kind (generator, engine backend, entity extractor, eval method) defined here runs through
its real stage; no import cycle in the package."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import networkx as nx
import pytest
from pydantic import Field

from synthcpt import plugins
from synthcpt.config import commented_config, config_model, load_config
from synthcpt.engine.backends.openai import OpenAIBackend, OpenAISettings
from synthcpt.errors import SynthcptError
from synthcpt.s2_entities.extractor import Extraction, Extractor
from synthcpt.s2_entities.normalize import Candidate
from synthcpt.s5_generate.base import Generator, GeneratorSettings, Rejected, TwoStepGenerator
from synthcpt.s7_eval.method import Method
from synthcpt.section import Section
from tests.helpers import ROOT, assert_one_line_error, synthcpt

PROMPT = "headline/headline.md"


@contextmanager
def registered(registry: plugins.Registry, plugin: type) -> Iterator[type]:
    """A plugin registered as a user's module would be, for the test's length."""
    registry.register(plugin)
    try:
        yield plugin
    finally:
        registry.unregister(plugin.name)


class HeadlineSettings(GeneratorSettings):
    """headline: a one-line headline per chunk."""

    temperature: float = Field(0.0, ge=0, description="Sampling temperature.")
    max_tokens: int = Field(24, ge=1, description="Max tokens of one headline.")


class Headline(Generator[HeadlineSettings]):
    """A generator defined outside the package, as a user would: settings, prompt, requests, parse."""

    name = "headline"
    summary = "a headline per chunk"
    needs = ("entities",)  # not read, declared to show the stage asks

    @classmethod
    def prompts(cls, settings):
        return [PROMPT]

    def requests(self):
        template = self.prompt(PROMPT)
        for chunk in self.corpus.chunks:
            doc = self.corpus.by_id[chunk.doc_id]
            yield self.request(template.render(header=doc.header, text=chunk.text), template,
                               self.sampling(self.settings.temperature, self.settings.max_tokens),
                               prefix_key=doc.doc_id, metadata={"doc_id": doc.doc_id, "unit": chunk.chunk_id})

    def parse(self, result):
        if not result.text.strip():
            return Rejected("empty")
        doc = self.corpus.by_id[result.request.metadata["doc_id"]]
        return [self.record(result, f"{doc.header}: {result.text.strip()}", "headline")]


@pytest.fixture
def headline():
    with registered(plugins.GENERATORS, Headline) as plugin:
        yield plugin


def test_a_registered_generator_gets_its_choice_section_and_comments(headline):
    config = load_config(None, ["generate.generators=[headline]", "generate.headline.max_tokens=12"])
    assert config.generate.headline.max_tokens == 12 and config.generate.generators == ["headline"]
    assert "headline" not in config_model()().generate.generators  # not a default generator
    text = commented_config(config)
    assert "  headline:\n" in text and "# Max tokens of one headline." in text
    assert "'headline': a headline per chunk" in text  # the generators' description lists it


def test_a_plugin_reads_its_own_typed_section(headline):
    config = load_config(None, ["generate.generators=[headline,rc_mined]", "generate.headline.max_tokens=12"])
    ctx = SimpleNamespace(settings=config.generate, corpus=None)  # what a generator reads of its context here
    made = Headline(ctx)
    assert isinstance(made.settings, HeadlineSettings) and made.settings.max_tokens == 12 and made.max_tokens == 12
    assert plugins.GENERATORS.get("rc_mined")(ctx).max_tokens == 0  # no model, no max_tokens setting
    assert Headline.Settings is HeadlineSettings and not issubclass(Headline, TwoStepGenerator)
    assert issubclass(plugins.GENERATORS.get("active_reading"), TwoStepGenerator)


def test_the_generate_stage_asks_the_generators_what_they_need(headline, tmp_path):
    from synthcpt.pipeline import stage_by_name
    from synthcpt.run_folder import RunFolder
    from synthcpt.s5_generate.run import check_inputs
    from synthcpt.stage import StageContext

    config = load_config(None, [f"run.dir={tmp_path}", "generate.generators=[wrap, headline, entigraph]"])
    run = RunFolder(tmp_path)
    ctx = StageContext(config, stage_by_name("generate"), run)
    for done, missing in (("ingest", "entities"), ("entities", "graph")):
        run.update_stage(done, status="complete")
        with pytest.raises(SynthcptError, match=f"needs the output of '{missing}'"):
            check_inputs(ctx)
    run.update_stage("graph", status="complete")
    check_inputs(ctx)


def test_a_class_of_another_kind_is_refused():
    with pytest.raises(TypeError, match="must derive from the generator base class"):
        plugins.GENERATORS.register(Method)


def test_without_the_plugin_its_name_and_section_are_errors():
    with pytest.raises(Exception, match="generate.generators.0"):
        load_config(None, ["generate.generators=[headline]"])


@pytest.mark.parametrize("key", ["generate.wrap_temperature", "engine.base_url", "entities.llm_max_tokens",
                                 "eval.cot_shots", "generate.prompts_dir"])
def test_an_unknown_key_is_one_clear_error(key):
    with pytest.raises(SynthcptError) as error:
        load_config(None, [f"{key}=1"])
    assert str(error.value) == f"invalid config: unknown setting '{key}'"


def test_an_unknown_key_on_the_command_line_is_one_error_line():
    assert_one_line_error(synthcpt("status", "--set", "generate.wrap_max_tokens=9"), "generate.wrap_max_tokens")


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


class CountingSettings(OpenAISettings):
    """counting backend: the openai backend, counting what it sends."""


class Counting(OpenAIBackend):
    """A backend defined outside the package: the openai backend under its own name and section."""

    name = "counting"
    summary = "the openai backend, counting its requests"
    Settings = CountingSettings
    sent: ClassVar[list[str]] = []

    def submit(self, job):
        type(self).sent.append(job.key)
        super().submit(job)


@pytest.fixture
def counting():
    Counting.sent.clear()
    with registered(plugins.BACKENDS, Counting) as plugin:
        yield plugin


def _demo_config(tmp_path, *overrides):
    from tests.conftest import DEMO_CORPUS

    return load_config(None, [f"run.dir={tmp_path / 'run'}", f"ingest.inputs=[{DEMO_CORPUS}]", *overrides])


@pytest.mark.slow
def test_a_generator_and_a_backend_defined_in_the_test_run_through_the_stage(headline, counting, tmp_path,
                                                                              vllm_server):
    from synthcpt.pipeline import Runner, fingerprints
    from synthcpt.s5_generate.records import read_shards

    prompts_dir = tmp_path / "prompts"
    (prompts_dir / "headline").mkdir(parents=True)
    (prompts_dir / PROMPT).write_text("Write a one-line headline for this passage of {{header}}.\n\n{{text}}\n")
    config = _demo_config(
        tmp_path, f"run.prompts_dir={prompts_dir}", "entities.extractor=spacy", "engine.backend=counting",
        f"engine.counting.base_url={vllm_server}", "engine.counting.concurrency=8",
        "generate.generators=[headline]", "generate.tokens={headline: 60}", "generate.mix.min_tokens=4")
    Runner(config, reporter=lambda _: None).execute(["ingest", "entities", "graph", "exam", "generate"], force=set())
    records = read_shards(tmp_path / "run" / "generate" / "headline")
    assert records and sum(r["n_tokens"] for r in records) >= 60
    assert {r["generator"] for r in records} == {"headline"} and all(r["prompt_file"] == PROMPT for r in records)
    mix = read_shards(tmp_path / "run" / "generate" / "mix")
    assert {r["generator"] for r in mix} == {"headline", "raw"}

    # Every request went through the test's backend, which cannot measure prefix-cache hits: no zero is
    # reported as one.
    stats = json.loads((tmp_path / "run" / "generate" / "stats.json").read_text())
    sent = stats["generators"]["headline"]["requests"] - stats["generators"]["headline"]["cached"]
    assert sent > 0 and len(Counting.sent) == sent
    usage = json.loads((tmp_path / "run" / "cache" / "usage.json").read_text())["generate: headline"]
    assert usage["prompt_tokens"] > 0 and usage["prefix_cached_tokens"] is None

    # Its prompt is part of the stage's fingerprint: editing it makes generate stale.
    before = fingerprints(config)["generate"]
    (prompts_dir / PROMPT).write_text("Give this passage of {{header}} a title.\n\n{{text}}\n")
    assert fingerprints(config)["generate"] != before


CAPITALISED = re.compile(r"\b[A-Z][a-z]{2,}(?: [A-Z][a-z]{2,})*\b")


class CapitalsSettings(Section):
    """capitals extractor: runs of capitalised words seen often enough."""

    min_count: int = Field(2, ge=1, description="Runs seen fewer times in a document are dropped.")


class Capitals(Extractor[CapitalsSettings]):
    """An extractor defined outside the package: capitalised word runs, no model."""

    name = "capitals"
    summary = "capitalised word runs"

    def extract(self) -> Extraction:
        found = Extraction({d.doc_id: [] for d in self.ctx.documents})
        for doc in self.ctx.documents:
            runs = CAPITALISED.findall(doc.text)
            found.candidates[doc.doc_id] = [Candidate(run, "PROPN", runs.count(run), self.name)
                                            for run in sorted(set(runs)) if runs.count(run) >= self.settings.min_count]
        return found


@pytest.fixture
def capitals():
    with registered(plugins.EXTRACTORS, Capitals) as plugin:
        yield plugin


@pytest.mark.slow
def test_an_extractor_defined_in_the_test_runs_through_the_stage(capitals, tmp_path):
    from synthcpt.pipeline import Runner, fingerprints
    from synthcpt.run_folder import RunFolder

    config = _demo_config(tmp_path, "entities.extractor=capitals", "entities.capitals.min_count=3")
    Runner(config, reporter=lambda _: None).execute(["ingest", "entities"], force=set())
    run = RunFolder(tmp_path / "run")
    rows = run.entities()
    assert rows and {r["extractor"] for r in rows} == {"capitals"}
    kept = {d.doc_id: {run for run in CAPITALISED.findall(d.text) if CAPITALISED.findall(d.text).count(run) >= 3}
            for d in run.documents()}
    # Its own setting applied: only runs seen 3 times or more (under their name or an alias).
    assert all({r["entity"], *r["aliases"]} & kept[r["doc_id"]] for r in rows)
    # Its section is part of the stage's fingerprint.
    changed = _demo_config(tmp_path, "entities.extractor=capitals", "entities.capitals.min_count=4")
    assert fingerprints(changed)["entities"] != fingerprints(config)["entities"]


class BareSettings(Section):
    """bare: log-likelihood of the options after the bare question (no source line)."""


class Bare(Method[BareSettings]):
    """An eval method defined outside the package, scored by the candidate's real log-likelihood scorer."""

    name = "bare"
    summary = "options by log-likelihood after the bare question"

    @classmethod
    def prompts(cls, settings):
        from synthcpt.s7_eval.prompts import CLOSED_BOOK

        return [CLOSED_BOOK]

    def score(self, ctx):
        from synthcpt.questions import multi_answer_sets
        from synthcpt.s7_eval.methods.loglik import choice_requests
        from synthcpt.s7_eval.records import choice_records

        scores = ctx.scorer().score(choice_requests(ctx.items, ctx.prompts, False), description="bare")
        return choice_records(ctx.candidate.name, self.name, ctx.items, scores, multi_answer_sets(ctx.items))


@pytest.fixture
def bare():
    with registered(plugins.EVAL_METHODS, Bare) as plugin:
        yield plugin


@pytest.mark.slow
def test_an_eval_method_defined_in_the_test_runs_through_the_stage(bare, tmp_path, embedded_model):
    from synthcpt.questions import load_qa_file
    from synthcpt.s7_eval.evaluation import evaluate_candidates
    from synthcpt.s7_eval.records import Candidate as Model
    from tests.conftest import DEMO_CORPUS

    items = load_qa_file(DEMO_CORPUS)[:6]
    config = load_config(None, ["eval.methods=[bare,loglik]", "eval.bootstrap_resamples=100"])
    results = evaluate_candidates([Model("default", "default")], items, config, tmp_path / "eval", []).model_dump()
    scores = {(s["method"], s["metric"]): s for s in results["scores"]}
    assert scores["bare", "acc"]["n"] == len(items) and 0 <= scores["bare", "acc"]["value"] <= 1
    # Its records are stored as a part of their own, reused on a rerun.
    assert any(p.name.startswith("default-bare-") for p in (tmp_path / "eval" / "parts").iterdir())
