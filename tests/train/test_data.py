"""Packing, replay, instruction masking and schedules: the data side of training, with the real tokenizer."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from synthcpt.errors import SynthcptError
from synthcpt.replay import read_texts, split_replay
from synthcpt.s6_train.data import (
    IGNORE_INDEX,
    Example,
    PackedData,
    build_stream,
    instruction_examples,
    sequence_order,
)
from synthcpt.s6_train.schedule import learning_rate
from tests.fixtures.train import REPLAY_SAMPLE, demo_texts


def test_packing_keeps_every_token_and_separates_documents(tmp_path, tokenizer):
    texts = [text[:1500] for text in demo_texts()]
    stream = build_stream(tmp_path / "s", (Example(t) for t in texts), tokenizer, "k", "tokenising")
    expected = [tokenizer(t)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    assert stream.n_tokens == sum(map(len, expected))
    assert np.array_equal(np.asarray(stream.tokens), np.concatenate(expected))
    assert stream.doc_starts.tolist() == np.cumsum([0] + [len(e) for e in expected[:-1]]).tolist()
    data = PackedData(stream, None, block_size=100, document_attention=True)
    assert data.n_main == stream.n_tokens // 100
    blocks = data.batch(np.arange(data.n_main))
    assert blocks["input_ids"].shape == (data.n_main, 100)
    # Blocks are consecutive slices of the stream; the tail shorter than a block is dropped.
    assert np.array_equal(blocks["input_ids"].reshape(-1), np.asarray(stream.tokens)[:data.n_main * 100])
    assert np.array_equal(blocks["labels"], blocks["input_ids"])
    # Document-aware positions restart at each document start and at each block start.
    positions = blocks["position_ids"].reshape(-1)
    restarts = set(np.flatnonzero(positions == 0).tolist())
    boundaries = {s for s in stream.doc_starts.tolist() if s < data.n_main * 100} | set(range(0, data.n_main * 100, 100))
    assert restarts == boundaries


def test_stream_is_reused_for_the_same_key_and_rebuilt_for_another(tmp_path, tokenizer):
    first = build_stream(tmp_path / "s", [Example("one two three")], tokenizer, "a", "t")
    again = build_stream(tmp_path / "s", [Example("completely different text here")], tokenizer, "a", "t")
    assert again.n_tokens == first.n_tokens
    rebuilt = build_stream(tmp_path / "s", [Example("completely different text here")], tokenizer, "b", "t")
    assert rebuilt.n_tokens != first.n_tokens


def test_replay_is_the_configured_share_of_sequences_and_every_block_is_seen():
    n_main, n_replay, share = 90, 25, 0.1
    order = sequence_order(n_main, n_replay, share, n_sequences=300, seed=3)
    per_epoch = n_main + round(n_main * share / (1 - share))
    assert per_epoch == 100
    for epoch in range(3):
        chunk = order[epoch * per_epoch:(epoch + 1) * per_epoch]
        assert sorted(chunk[chunk >= 0].tolist()) == list(range(n_main))
        assert (chunk < 0).mean() == pytest.approx(share)
    replay = (-1 - order[order < 0]).tolist()
    # Drawn without repetition until every replay block was used once: 10 per epoch from 25 blocks.
    assert len(set(replay[:20])) == 20
    assert set(replay[:30]) == set(range(n_replay))
    assert np.array_equal(order, sequence_order(n_main, n_replay, share, 300, seed=3))
    assert not np.array_equal(order, sequence_order(n_main, n_replay, share, 300, seed=4))
    assert (sequence_order(n_main, 0, share, 300, seed=3) >= 0).all()


def test_instruction_mode_puts_the_loss_on_responses_only(tmp_path, tokenizer):
    pairs = [("What colour is the ship in the story?", "The ship is painted a deep red."),
             ("Who is the captain?", "Captain Mara Voss leads the crew.")]
    stream = build_stream(tmp_path / "i", instruction_examples(pairs, tokenizer), tokenizer, "k", "t")
    data = PackedData(stream, None, block_size=stream.n_tokens, document_attention=False)
    labels = data.batch(np.array([0]))["labels"][0]
    tokens = data.batch(np.array([0]))["input_ids"][0]
    trained = tokenizer.decode(tokens[labels != IGNORE_INDEX])
    for instruction, response in pairs:
        assert response in trained
        assert instruction not in trained
        assert instruction in tokenizer.decode(tokens)
    assert trained.count(tokenizer.eos_token) == len(pairs)
    # The masked tokens are exactly the rendered prompts.
    assert data.n_target_tokens(np.array([0])) == int((labels[1:] != IGNORE_INDEX).sum())
    assert (labels == IGNORE_INDEX).sum() > 0


def test_split_replay_is_deterministic_disjoint_and_complete():
    train, heldout = split_replay(REPLAY_SAMPLE, 0.25, seed=0)
    n_documents = len(read_texts(REPLAY_SAMPLE))
    assert len(heldout) == max(1, round(0.25 * n_documents)) and len(train) + len(heldout) == n_documents
    assert not set(train) & set(heldout)
    assert split_replay(REPLAY_SAMPLE, 0.25, seed=0) == (train, heldout)
    assert split_replay(REPLAY_SAMPLE, 0.25, seed=1)[1] != heldout
    assert sorted(train + heldout) == sorted(read_texts(REPLAY_SAMPLE))
    assert split_replay(REPLAY_SAMPLE, 0.0, seed=0) == (read_texts(REPLAY_SAMPLE), [])


def test_split_replay_rejects_missing_or_empty_data(tmp_path):
    with pytest.raises(SynthcptError, match="not found"):
        split_replay(tmp_path / "nothing.jsonl", 0.1, 0)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(SynthcptError, match="no text"):
        split_replay(tmp_path / "empty.jsonl", 0.1, 0)


def test_a_hub_dataset_is_streamed_and_only_its_first_documents_read(tmp_path, monkeypatch):
    """The hub path, on a local folder laid out as a dataset repository (no hub access here)."""
    from synthcpt.atomic import write_records
    from synthcpt.replay import is_local, streamed_texts

    repo = tmp_path / "general-text"
    write_records(repo / "data" / "train-00000-of-00001.parquet",
                  [{"text": f"General document number {i} about the weather."} for i in range(50)])
    texts = streamed_texts(str(repo), max_documents=7)
    assert texts == [f"General document number {i} about the weather." for i in range(7)]
    assert not is_local("HuggingFaceFW/fineweb-edu:sample-10BT") and is_local(tmp_path / "nothing.jsonl")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SynthcptError, match="replay dataset 'nobody/no-such-dataset' cannot be streamed"):
        split_replay("nobody/no-such-dataset", 0.1, 0)


@pytest.mark.parametrize("schedule", ["cosine", "constant", "wsd"])
def test_schedules_warm_up_then_follow_their_shape(schedule):
    total, peak = 100, 1e-3
    lrs = [learning_rate(s, total, peak, schedule, 0.05, 0.1, 0.2) for s in range(total)]
    assert lrs[:5] == pytest.approx([peak * (i + 1) / 5 for i in range(5)])
    assert max(lrs) == pytest.approx(peak)
    if schedule == "cosine":
        assert lrs[-1] == pytest.approx(0.1 * peak)
        assert all(a >= b for a, b in itertools.pairwise(lrs[5:]))
    elif schedule == "constant":
        assert lrs[5:] == pytest.approx([peak] * 95)
    else:
        assert lrs[5:80] == pytest.approx([peak] * 75)
        assert lrs[-1] == pytest.approx(0.1 * peak)
        assert all(a > b for a, b in itertools.pairwise(lrs[79:]))


def test_generator_selection_trains_on_those_mix_records_only(tmp_path, tokenizer):
    from synthcpt.atomic import write_records
    from synthcpt.config import load_config
    from synthcpt.s6_train.training import _examples

    mix = [{"text": f"{name} text {i}", "generator": name} for i in range(3) for name in ("entigraph", "wrap", "raw")]
    write_records(tmp_path / "part-00000.parquet", mix)
    settings = load_config(None, ["train.generators=[entigraph, raw]"]).train
    texts = [e.text for e in _examples(settings, [tmp_path / "part-00000.parquet"], tokenizer, None)]
    assert texts == [r["text"] for r in mix if r["generator"] != "wrap"]
    everything = load_config(None, []).train
    assert len(list(_examples(everything, [tmp_path / "part-00000.parquet"], tokenizer, None))) == len(mix)
    with pytest.raises(SynthcptError, match="train.generators selects mix records"):
        load_config(None, ["train.data=raw", "train.generators=[wrap]"])
