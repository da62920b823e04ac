"""The packed log-likelihood scorer against direct per-option forward passes of the embedded model."""

from __future__ import annotations

import math

import pytest

from synthcpt.s7_eval.loglik import ChoiceRequest

REQUESTS = [
    ChoiceRequest('Article: "Lost in Translation" by Larry M. Harris\nQuestion: Why did Korvin go home?\nAnswer:',
                  (" He was tired of space.", " To visit his mother.", " He did not.",
                   " The ship broke down and nobody could fix it.")),
    ChoiceRequest("Question: What is two plus two?\nAnswer: ", ("4", "five", "twenty-two, or maybe three")),
    ChoiceRequest("The sky is", (" blue", " green")),
]


def direct_logprob(scorer, prefix_ids: list[int], context_ids: list[int], option_ids: list[int]) -> float:
    """An option's log-probability from its own unpacked forward pass of prefix + context + option."""
    import torch

    ids = torch.tensor([prefix_ids + context_ids + option_ids])
    with torch.inference_mode():
        logprobs = scorer.model(ids).logits.float().log_softmax(-1)[0]
    start = len(prefix_ids) + len(context_ids)
    return sum(logprobs[start - 1 + k, token].item() for k, token in enumerate(option_ids))


def test_packed_scores_match_direct_per_option_passes(scorer):
    # Several questions per row and several rows per batch: every way the packing can share a forward.
    requests = REQUESTS * 4
    scorer.row_tokens, scorer.batch_tokens = 96, 256
    try:
        packed = scorer.score(requests)
    finally:
        scorer.row_tokens, scorer.batch_tokens = 512, 2048
    for request, scores in zip(requests[:3], packed[:3]):
        encoded = scorer.encode(request)
        direct = [direct_logprob(scorer, [], encoded.context, option) for option in encoded.continuations]
        assert scores == pytest.approx(direct, abs=2e-3)
    flat = [score for scores in packed for score in scores]
    per_copy = len(flat) // 4
    assert flat[:per_copy] == pytest.approx(flat[per_copy:2 * per_copy], abs=1e-3)


def test_shared_prefix_cache_matches_direct_passes(scorer):
    prefix = "Once upon a time a ship called the Lucky Star left Earth for Mars.\n\n"
    scores = scorer.score(REQUESTS, prefix=prefix)
    prefix_ids = scorer.tokens(prefix)
    for request, got in zip(REQUESTS, scores):
        encoded = scorer.encode(request)
        direct = [direct_logprob(scorer, prefix_ids, encoded.context, option) for option in encoded.continuations]
        assert got == pytest.approx(direct, abs=2e-3)


def test_encoding_moves_trailing_space_to_the_continuation(scorer):
    encoded = scorer.encode(ChoiceRequest("Answer: ", ("4",)))
    assert scorer.tokenizer.decode(encoded.context) == "Answer:"
    assert scorer.tokenizer.decode(encoded.continuations[0]) == " 4"


def test_scores_are_identical_on_rerun(scorer):
    assert scorer.score(REQUESTS) == scorer.score(REQUESTS)


def test_perplexity_is_the_exponent_of_the_mean_token_loss(scorer):
    text = "The committee met on Tuesday to review the budget for the coming year. " * 3
    result = scorer.perplexity([text], window=1024, max_tokens=10_000)
    ids = scorer.tokens(text)
    total = direct_logprob(scorer, [], ids[:1], ids[1:])
    assert result["tokens"] == len(ids) - 1
    assert result["perplexity"] == pytest.approx(math.exp(-total / (len(ids) - 1)), rel=1e-3)
    assert 1 < result["perplexity"] < 1000
