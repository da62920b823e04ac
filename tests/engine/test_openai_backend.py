"""The openai backend against a real vLLM server on loopback, and through a fault-injecting proxy."""

from __future__ import annotations

import pytest

from synthcpt.engine import Request, Sampling, open_engine
from synthcpt.errors import SynthcptError
from tests.engine.fault_proxy import FAULTS, fault_proxy
from tests.fixtures.engine import free_port


def with_openai(settings, **changes):
    """The engine settings with some of the openai backend's settings changed."""
    return settings.model_copy(update={"openai": settings.openai.model_copy(update=changes)})


def prompts(n: int, max_tokens: int = 8) -> list[Request]:
    return [Request(messages=[{"role": "user", "content": f"Name an animal that starts with the letter {chr(65 + i % 26)}."}],
                    sampling=Sampling(temperature=0.0, max_tokens=max_tokens, seed=i), metadata={"i": i})
            for i in range(n)]


def test_generates_through_the_server_and_resumes_from_the_cache(openai_engine_settings, tmp_path):
    with open_engine(openai_engine_settings, tmp_path) as engine:
        results = list(engine.generate(prompts(12), description="animals"))
        assert engine.usage.requests == 12 and engine.usage.failed == 0
    assert sorted(r.request.metadata["i"] for r in results) == list(range(12))
    assert all(r.ok and r.text and r.prompt_tokens > 10 and 0 < r.completion_tokens <= 8 for r in results)
    with open_engine(openai_engine_settings, tmp_path) as engine:
        again = list(engine.generate(prompts(12), description="animals"))
        assert engine.usage.cached == 12 and engine.usage.completion_tokens == 0
    assert {r.request.metadata["i"]: r.text for r in again} == {r.request.metadata["i"]: r.text for r in results}


def test_raw_prompt_n_samples_and_json_schema(openai_engine_settings, tmp_path):
    schema = {"type": "object", "properties": {"animal": {"type": "string"}}, "required": ["animal"]}
    raw = Request(prompt="The three primary colours are", sampling=Sampling(temperature=0.8, max_tokens=8, n=3, seed=1))
    structured = Request(messages=[{"role": "user", "content": "Name one animal, as JSON."}],
                         sampling=Sampling(temperature=0.0, max_tokens=30), json_schema=schema)
    with open_engine(openai_engine_settings, tmp_path) as engine:
        by_kind = {("raw" if r.request.prompt else "json"): r for r in engine.generate([raw, structured])}
    assert len(by_kind["raw"].texts) == 3 and len(by_kind["raw"].finish_reasons) == 3
    assert by_kind["json"].ok and isinstance(by_kind["json"].parsed[0]["animal"], str)


def test_context_overflow_fails_that_request_only(openai_engine_settings, tmp_path):
    too_long = Request(prompt="word " * 9000, sampling=Sampling(max_tokens=4), metadata={"i": "long"})
    with open_engine(openai_engine_settings, tmp_path) as engine:
        results = {r.request.metadata["i"]: r for r in engine.generate([too_long, *prompts(3)])}
        assert engine.usage.failed == 1
    assert "HTTP 400" in results["long"].error and "context length" in results["long"].error
    assert all(results[i].ok for i in range(3))


def test_unknown_model_unreachable_server_and_wrong_key_fail_in_one_line(openai_engine_settings, vllm_server,
                                                                         tmp_path, monkeypatch):
    with pytest.raises(SynthcptError, match="model 'gpt-nonexistent' is not served at .*it serves: default"):
        open_engine(openai_engine_settings.model_copy(update={"model": "gpt-nonexistent"}), tmp_path).__enter__()
    closed = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(SynthcptError, match="cannot reach the OpenAI-compatible server"):
        open_engine(with_openai(openai_engine_settings, base_url=closed), tmp_path).__enter__()
    monkeypatch.setenv("SYNTHCPT_TEST_KEY", "wrong")
    with fault_proxy(vllm_server, fault_rate=0.0, api_key="right") as (proxy_url, _):
        settings = with_openai(openai_engine_settings, base_url=proxy_url, api_key_env="SYNTHCPT_TEST_KEY")
        with pytest.raises(SynthcptError, match=r"rejected the API key in \$SYNTHCPT_TEST_KEY"):
            open_engine(settings, tmp_path).__enter__()
    assert "wrong" not in (tmp_path / "cache" / "engine.sqlite").read_bytes().decode("latin-1")


def test_hosted_api_without_a_key_is_one_line(monkeypatch, tmp_path):
    from synthcpt.engine.settings import engine_settings

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(SynthcptError, match=r"needs an API key in \$OPENAI_API_KEY"):
        open_engine(engine_settings()(backend="openai", model="gpt-4o-mini"), tmp_path).__enter__()


def test_faults_at_20_percent_every_request_completes_once(openai_engine_settings, vllm_server, tmp_path):
    n = 60
    with fault_proxy(vllm_server, fault_rate=0.2, hang_seconds=10.0, seed=3) as (proxy_url, proxy):
        settings = with_openai(openai_engine_settings, base_url=proxy_url, timeout=8.0, concurrency=8)
        with open_engine(settings, tmp_path) as engine:
            results = list(engine.generate(prompts(n, max_tokens=6), description="faults"))
            usage = engine.usage
    assert set(proxy.injected) == set(FAULTS), proxy.injected  # every kind of fault was met
    assert sum(proxy.injected.values()) >= 0.1 * n
    assert sorted(r.request.metadata["i"] for r in results) == list(range(n))
    assert all(r.ok and r.text for r in results), [r.error for r in results if not r.ok]
    assert usage.requests == n and usage.failed == 0 and usage.cached == 0
    assert proxy.completed == n  # each request reached the model and succeeded exactly once
