"""`synthcpt plan`: exact prompt tokens, completion from max_tokens or the running mean, time, cost."""

from __future__ import annotations

from synthcpt.engine.cache import Response, ResponseCache, request_key
from synthcpt.engine.plan import MIN_RESPONSES_FOR_AVERAGE, estimate
from synthcpt.engine.settings import Price, engine_settings
from synthcpt.engine.types import Request, Sampling
from synthcpt.engine.usage import Usage, record_usage
from tests.helpers import assert_one_line_error, synthcpt


def requests(n: int) -> list[Request]:
    return [Request(messages=[{"role": "user", "content": f"Summarise part {i} of the story in two lines."}],
                    sampling=Sampling(max_tokens=50, n=2)) for i in range(n)]


def test_fresh_plan_counts_prompts_exactly_and_completions_from_max_tokens(tokenizer, tmp_path):
    settings = engine_settings()(prices={"default": Price(input=1.0, output=2.0)})
    plan = estimate(settings, tmp_path, "summaries", requests(5))
    expected_prompt = sum(len(tokenizer(tokenizer.apply_chat_template(r.messages, tokenize=False,
                                                                      add_generation_prompt=True),
                                        add_special_tokens=False)["input_ids"]) for r in requests(5))
    assert plan.exact_prompt_tokens and plan.prompt_tokens == expected_prompt
    assert plan.requests == 5 and plan.cached == 0 and plan.completion_tokens == 5 * 100
    assert plan.completion_basis == "max_tokens" and plan.seconds is None
    assert plan.cost == (expected_prompt * 1.0 + 500 * 2.0) / 1e6


def test_plan_skips_cached_work_and_uses_the_running_mean_and_rate(tmp_path):
    settings = engine_settings()()
    cache = ResponseCache(tmp_path / "cache" / "engine.sqlite")
    done = requests(2)
    cache.put_many("summaries", [(request_key("default", r), Response(["x"], ["stop"], 20, 12, 1.0)) for r in done])
    cache.put_many("summaries", [(f"earlier{i}", Response(["x"], ["stop"], 20, 12, 1.0))
                                 for i in range(MIN_RESPONSES_FOR_AVERAGE)])
    cache.close()
    record_usage(tmp_path / "cache" / "usage.json", "summaries", Usage(completion_tokens=600, seconds=20.0))
    plan = estimate(settings, tmp_path, "summaries", requests(7))
    assert plan.cached == 2 and plan.requests == 7
    assert plan.completion_tokens == 5 * 12 and plan.completion_basis.startswith("mean of")
    assert plan.seconds == 5 * 12 / 30.0


def test_hosted_model_without_tokenizer_is_estimated(tmp_path):
    plan = estimate(engine_settings()(backend="openai", model="gpt-4o-mini"), tmp_path, "x", requests(3))
    assert not plan.exact_prompt_tokens and plan.prompt_tokens > 0
    assert plan.cost > 0  # gpt-4o-mini is in the default price table


def test_plan_command_says_when_a_stage_makes_no_requests(tmp_path):
    proc = synthcpt("plan", "ingest", "--set", f"run.dir={tmp_path}")
    assert_one_line_error(proc, "stage ingest has nothing to plan")
