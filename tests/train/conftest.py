"""A tiny randomly initialised Llama, shared by the training tests that need a model but not its knowledge."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, tokenizer) -> Path:
    """A randomly initialised two-layer Llama with the embedded model's tokenizer."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    folder = tmp_path_factory.mktemp("tiny") / "llama"
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), tie_word_embeddings=True)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A parquet file of the demo stories, for train_on_files."""
    from synthcpt.atomic import write_records
    from tests.fixtures.train import demo_texts

    path = tmp_path_factory.mktemp("data") / "mix.parquet"
    write_records(path, [{"text": text} for text in demo_texts(max_chars=4000)])
    return path
