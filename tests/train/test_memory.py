"""The memory plan, from the config alone: close to the measured peak of a real run, the largest
micro-batch that fits for 'auto', and one clear line when nothing asked for fits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from synthcpt.s6_train.memory import GIB, plan_memory, plan_rows, shape_from_config
from synthcpt.s6_train.settings import TrainSettings
from tests.fixtures.train import prepare_run
from tests.helpers import ROOT, assert_one_line_error, synthcpt

PROBE = Path(__file__).with_name("memory_probe.py")
LLAMA_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256, "tie_word_embeddings": False}


@pytest.fixture(scope="module")
def probe_model(tmp_path_factory, tokenizer) -> tuple[Path, Path]:
    """A four-layer Llama large enough that its training memory dwarfs the allocator's noise, and its data."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from synthcpt.s6_train.data import Example, build_stream
    from tests.fixtures.train import demo_texts

    folder = tmp_path_factory.mktemp("probe")
    config = LlamaConfig(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), tie_word_embeddings=True)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    build_stream(folder / "data", (Example(t) for t in demo_texts(20000)), tokenizer, "probe", "tokenising")
    return folder / "model", folder / "data"


@pytest.mark.parametrize("settings", [{}, {"lora": {"enabled": True, "rank": 16, "alpha": 32.0}},
                                      {"gradient_checkpointing": True, "fused_loss": False},
                                      # bf16 autocast on a CPU as on one GPU: fp32 residual stream, the fused
                                      # loss's bf16 matrix and products
                                      {"precision": "bf16"}],
                         ids=["full", "lora", "checkpointed-plain-loss", "bf16-autocast"])
def test_plan_is_within_a_quarter_of_the_measured_peak(tmp_path, probe_model, settings):
    model, data = probe_model
    run = {"block_size": 256, "batch_size": 4, "micro_batch_size": 4, "max_steps": 2, **settings}
    proc = subprocess.run([sys.executable, str(PROBE), str(model), str(data), str(tmp_path / "out"), json.dumps(run)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["measured"] > 200 * 2**20  # the run allocated what the plan is about
    assert result["planned"] == pytest.approx(result["measured"], rel=0.25), result


def _llama_8b():
    from transformers import LlamaConfig

    return shape_from_config(LlamaConfig(**LLAMA_8B), "llama-3.1-8b")


def test_8b_full_training_does_not_fit_80_gib_and_the_line_says_what_would():
    shape = _llama_8b()
    assert shape.n_params == pytest.approx(8.03e9, rel=0.01)
    plan = plan_memory(TrainSettings(micro_batch_size=1), shape, 1, torch.device("cuda"), 80 * GIB, "H100 80GB")
    assert plan.advice is not None and "\n" not in plan.advice
    assert "needs" in plan.advice and "> 72.0 GiB usable of 80.0 GiB (H100 80GB)" in plan.advice
    assert "use train.gradient_checkpointing=true" not in plan.advice  # it would not be enough
    assert "train.lora.enabled=true" in plan.advice
    lora = plan_memory(TrainSettings(micro_batch_size=1, lora={"enabled": True}), shape, 1,
                       torch.device("cuda"), 80 * GIB, "H100 80GB")
    assert lora.advice is None and lora.needed < plan.needed / 2
    # Eight GPUs under FSDP divide the weights, gradients and optimizer state.
    sharded = plan_memory(TrainSettings(micro_batch_size=1), shape, 8, torch.device("cuda"), 80 * GIB, "H100")
    assert sharded.advice is None


def test_auto_micro_batch_is_the_largest_that_fits():
    shape = _llama_8b()
    settings = TrainSettings(micro_batch_size="auto", batch_size=16, lora={"enabled": True},
                             gradient_checkpointing=True)
    sizes = {}
    for limit in (60, 80, 141):
        plan = plan_memory(settings, shape, 1, torch.device("cuda"), limit * GIB, "test")
        assert plan.advice is None
        sizes[limit] = plan.micro_batch
        # The next larger divisor of 16 would not fit.
        if plan.micro_batch < 16:
            bigger = settings.model_copy(update={"micro_batch_size": plan.micro_batch * 2})
            assert plan_memory(bigger, shape, 1, torch.device("cuda"), limit * GIB, "test").advice is not None
    assert sizes[60] < sizes[80] < sizes[141]


def test_plan_rows_describe_the_configured_training():
    from synthcpt.config import load_config

    rows = dict(plan_rows(load_config(None, ["train.micro_batch_size=auto", "train.memory_limit_gb=64"])))
    assert rows["verdict"] == "fits"
    assert rows["device memory"].startswith("64.00 GiB (train.memory_limit_gb")
    assert int(rows["micro_batch_size"]) >= 1 and rows["total"].endswith("GiB")
    assert {"weights", "gradients", "optimizer state (AdamW)", "loss and output projection"} <= set(rows)


def test_training_that_cannot_fit_is_one_clear_line_before_training(tmp_path):
    config = prepare_run(tmp_path / "small", {"memory_limit_gb": 0.5, "block_size": 64})
    assert_one_line_error(synthcpt("train", "-c", str(config)), "needs", "0.5 GiB (train.memory_limit_gb)", "use ")
    assert not (tmp_path / "small" / "train" / "log.jsonl").exists()  # stopped before training


def test_plan_train_prints_the_memory_plan(tmp_path):
    from tests.helpers import synthcpt

    proc = synthcpt("plan", "train", "--set", f"run.dir={tmp_path}", "--set", "train.block_size=256",
                    "--set", "train.micro_batch_size=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resources, estimated before loading anything" in proc.stdout
    assert "weights" in proc.stdout and "optimizer" in proc.stdout and "fits" in proc.stdout
