"""Scale-out: the same code path under `torchrun` with FSDP (two CPU processes, gloo) trains like one
process, writes a loadable model and resumes from its checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.fixtures.train import demo_texts
from tests.helpers import ROOT

SCRIPT = Path(__file__).with_name("fsdp_train.py")


@pytest.fixture(scope="module")
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


def _train(command: list[str], out: Path) -> dict:
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]


def test_two_fsdp_processes_train_like_one_and_resume(tmp_path, tiny_llama):
    from safetensors.torch import load_file

    from synthcpt.atomic import write_records

    data = tmp_path / "mix.parquet"
    write_records(data, [{"text": text} for text in demo_texts(max_chars=4000)])
    single = _train([sys.executable, str(SCRIPT), str(tiny_llama), str(data), str(tmp_path / "one")], tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(SCRIPT),
                str(tiny_llama), str(data), str(tmp_path / "two")]
    sharded = _train(torchrun, tmp_path)
    assert sharded["processes"] == 2 and single["processes"] == 1
    # Same batches, same math: only the order of floating-point sums differs.
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-4)
    one = load_file(tmp_path / "one" / "model" / "model.safetensors")
    two = load_file(tmp_path / "two" / "model" / "model.safetensors")
    assert one.keys() == two.keys()
    # Adam turns tiny gradient differences into updates of up to lr (1e-3) where gradients are near
    # zero; a wrongly gathered shard would differ by the scale of the weights (0.02).
    assert all(torch.allclose(one[k], two[k], atol=3e-3) for k in one)
    config = json.loads((tmp_path / "two" / "model" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]

    resumed = _train(torchrun, tmp_path)
    assert resumed["resumed_from_step"] == 3
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-4)
