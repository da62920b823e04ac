"""What the generators would send, without a model: deterministic, with provenance, in budget order."""

from __future__ import annotations

import json
from collections import Counter

from synthcpt.plugins import GENERATORS
from synthcpt.s5_generate.run import generation_context
from tests.helpers import synthcpt


def context(prepared_run, **sections):
    """The generation context with some generators' settings changed: `wrap={"styles": [...]}`."""
    config, run_dir = prepared_run
    config = config.model_copy(deep=True)
    for section, changes in sections.items():
        for key, value in changes.items():
            setattr(getattr(config.generate, section), key, value)
    return generation_context(config, run_dir)


def test_requests_are_deterministic_and_carry_provenance(prepared_run):
    config, _ = prepared_run
    first, second = context(prepared_run), context(prepared_run)
    llm_generators = [name for name in config.generate.generators if GENERATORS.get(name)(first).max_tokens]
    assert set(llm_generators) == {"entigraph", "wrap", "rc_llm", "bonito"}  # rc_mined needs no model
    for name in llm_generators:
        a, b = list(GENERATORS.get(name)(first).requests()), list(GENERATORS.get(name)(second).requests())
        assert a and [r.messages or r.prompt for r in a] == [r.messages or r.prompt for r in b]
        assert [r.sampling for r in a] == [r.sampling for r in b]
        for request in a:
            meta = request.metadata
            assert meta["generator"] == name and meta["doc_id"] and meta["prompt_file"] and meta["prompt_hash"]


def test_wrap_sweeps_cover_every_chunk_before_repeating_and_rotate_styles(prepared_run):
    ctx = context(prepared_run, wrap={"styles": ["easy", "medium", "hard", "qa"], "rephrasings": 2})
    requests = list(GENERATORS.get("wrap")(ctx).requests())
    chunks = [c for c in ctx.corpus.chunks if c.n_tokens >= ctx.settings.min_chunk_tokens]
    n = len(chunks)
    assert len(requests) == n * 4 * 2
    first_sweep = requests[:n]
    assert {r.metadata["unit"] for r in first_sweep} == {c.chunk_id for c in chunks}
    assert set(Counter(r.metadata["style"] for r in first_sweep)) == {"easy", "medium", "hard", "qa"}
    assert first_sweep[0].metadata["doc_id"] != first_sweep[1].metadata["doc_id"]  # documents interleaved
    pairs = Counter((r.metadata["unit"], r.metadata["style"], r.sample) for r in requests)
    assert max(pairs.values()) == 1 and {r.sample for r in requests} == {0, 1}


def test_bonito_raw_format_for_the_bonito_model(prepared_run):
    ctx = context(prepared_run, bonito={"format": "auto"})
    ctx.model = "BatsResearch/bonito-v1"
    requests = list(GENERATORS.get("bonito")(ctx).requests())
    assert requests[0].prompt.startswith("<|tasktype|>\n") and requests[0].prompt.endswith("\n<|task|>\n")
    assert requests[0].messages is None
    assert len({r.metadata["style"] for r in requests}) == 16  # task types rotate over the chunks
    sampling = requests[0].sampling
    assert (sampling.temperature, sampling.top_p) == (0.5, 0.95)
    ctx.model = "default"
    instruct = list(GENERATORS.get("bonito")(ctx).requests())
    assert instruct[0].messages and instruct[0].json_schema["required"] == ["instruction", "response"]
    assert requests[0].json_schema is None  # the Bonito model answers in its own format


def test_rc_llm_asks_for_the_configured_number_of_questions_as_json(prepared_run):
    request = next(GENERATORS.get("rc_llm")(context(prepared_run, rc_llm={"questions": 2})).requests())
    questions = request.json_schema["properties"]["questions"]
    assert (questions["minItems"], questions["maxItems"]) == (1, 2)
    assert "Write 2 questions" in request.messages[0]["content"]


def test_entigraph_requests_follow_the_reference_and_fit_the_context(prepared_run):
    ctx = context(prepared_run, entigraph={"max_relations": 12, "triple_share": 0.5, "max_tokens": 64,
                                           "singles": False})
    requests = list(GENERATORS.get("entigraph")(ctx).requests())
    assert len(requests) == 12 and {len(r.metadata["entities"]) for r in requests} == {2, 3}
    ctx.settings.entigraph.singles, ctx.settings.entigraph.max_relations = True, None
    singles = [r for r in GENERATORS.get("entigraph")(ctx).requests() if len(r.metadata["entities"]) == 1]
    assert singles and all(r.messages[0]["content"].startswith("As an examiner") for r in singles)
    for request in requests:
        doc = ctx.corpus.by_id[request.prefix_key]
        system, user = request.messages
        n = len(request.metadata["entities"])
        # The reference's system message: the knowledge analyzer, its headings, one per entity, then the interaction.
        assert system["role"] == "system" and system["content"].startswith("You will act as a knowledge analyzer")
        headings = [line for line in system["content"].splitlines() if line.startswith("### Discussion of")]
        assert headings[:n] == [f"### Discussion of <title> in relation to <entity{i}>" for i in range(1, n + 1)]
        assert headings[n].startswith("### Discussion of Interaction between <entity1>")
        assert user["content"].startswith(f"### Document Content:\n{doc.header}\n")
        assert user["content"].endswith("### Entities:\n" + "\n".join(f"- {e}" for e in request.metadata["entities"]))
    ctx.context_window = 2048
    short = next(iter(GENERATORS.get("entigraph")(ctx).requests())).messages
    assert len(ctx.tokenizer(short[0]["content"] + short[1]["content"])["input_ids"]) + 64 <= 2048


def test_mined_records_need_no_model(prepared_run):
    ctx = context(prepared_run)
    records = list(GENERATORS.get("rc_mined")(ctx).records())
    assert {r["doc_id"] for r in records} == set(ctx.corpus.by_id)
    assert records == list(GENERATORS.get("rc_mined")(ctx).records())
    for record in records:
        assert "title" in record["style"] and record["prompt_file"] == "rc/mined.yaml"
        assert record["text"].startswith(ctx.corpus.by_id[record["doc_id"]].header + "\n\n")


def test_chunk_generators_name_the_document_in_prompt_and_record(prepared_run):
    from synthcpt.engine.types import Result

    ctx = context(prepared_run, bonito={"format": "instruct"})
    for name in ("wrap", "rc_llm", "bonito"):
        generator = GENERATORS.get(name)(ctx)
        request = next(generator.requests())
        header = ctx.corpus.by_id[request.metadata["doc_id"]].header
        assert f'"{header}"' in request.messages[-1]["content"], name
        answer = {"wrap": "A plain rephrasing of the passage, with every fact kept in simple words.",
                  "rc_llm": '{"questions": [{"question": "Who is it about?", "answer": "It is about Korvin."}]}',
                  "bonito": '{"instruction": "Who is the passage about?", "response": "Korvin."}'}[name]
        result = Result(request, [answer], ["stop"], 10, 10, 0.1)
        if request.json_schema is not None:
            result.parsed = [json.loads(answer)]
        [record] = generator.parse(result)
        assert record["text"].startswith(header + "\n\n"), name


def test_plan_command_estimates_each_generator_up_to_its_target(prepared_run):
    _, run_dir = prepared_run
    overrides = [a for s in ["entities.extractor=spacy", *[f"{k}={v}" for k, v in {
        "run.dir": run_dir, "generate.generators": "[entigraph, wrap, rc_mined]",
        "generate.tokens": "{entigraph: 4000, wrap: 200, rc_mined: 100}",
        "generate.entigraph.max_tokens": 64, "generate.wrap.max_tokens": 48}.items()]] for a in ("--set", s)]
    proc = synthcpt("plan", "generate", *overrides)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("│")[2].strip(): line for line in proc.stdout.splitlines() if "generate: " in line}
    assert set(rows) == {"generate: entigraph", "generate: wrap"}  # mined reading comprehension calls no model
    # No responses yet: requests = 1.15 × target / max_tokens, at least one 32-request wave.
    assert "│ 72 " in rows["generate: entigraph"] and "│ 32 " in rows["generate: wrap"]
    assert "max_tokens" in rows["generate: entigraph"]
    # A smaller generate.min_wave lets the budget size the wave: ceil(1.15 × 200 / 48) = 5.
    proc = synthcpt("plan", "generate", *overrides, "--set", "generate.min_wave=2")
    assert proc.returncode == 0, proc.stderr
    wrap = next(line for line in proc.stdout.splitlines() if "generate: wrap" in line)
    assert "│ 5 " in wrap
