"""LoRA continued pretraining: low-rank updates merged into a plain model folder, embeddings trained,
and the exact resume of full training (kill -9, rerun, same final weights)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT

SCRIPT = Path(__file__).with_name("fsdp_train.py")
LORA = {"lora": {"enabled": True, "rank": 4, "alpha": 8.0, "dropout": 0.1, "lr": 1e-2, "embedding_lr": 1e-3}}


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_lora_saves_a_merged_plain_model_with_low_rank_updates(tmp_path, tiny_llama, tiny_data):
    from transformers import AutoModelForCausalLM

    from synthcpt.s6_train.settings import TrainSettings
    from synthcpt.s6_train.training import train_on_files

    settings = TrainSettings(model=str(tiny_llama), block_size=64, batch_size=4, micro_batch_size=2, max_steps=4,
                             lr=1e-3, **LORA)
    stats = train_on_files(settings, [tiny_data], tmp_path / "train", seed=0)
    assert stats.final_loss < stats.first_loss
    before, after = _weights(tiny_llama), _weights(tmp_path / "train" / "model")
    assert after.keys() == before.keys()  # no adapter or base_layer names: a plain Llama
    for name in (k for k in before if k.endswith(("q_proj.weight", "down_proj.weight"))):
        delta = (after[name] - before[name]).double()
        assert 0 < torch.linalg.matrix_rank(delta, rtol=1e-6) <= 4, name
    assert not torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])
    assert torch.equal(after["model.norm.weight"], before["model.norm.weight"])  # frozen
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "train" / "model")
    assert type(model).__name__ == "LlamaForCausalLM"
    # The adapters alone, beside it: peft loads them onto the base and rebuilds the merged model.
    from peft import PeftModel

    rebuilt = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama),
                                        tmp_path / "train" / "adapter").merge_and_unload().state_dict()
    merged = model.state_dict()
    assert rebuilt.keys() == merged.keys()
    for name, weight in merged.items():
        assert torch.allclose(rebuilt[name], weight, atol=1e-5), name


def _run(out: Path, model: Path, data: Path, settings: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), str(model), str(data), str(out), json.dumps(settings)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_lora_kill_and_resume_gives_the_uninterrupted_weights(tmp_path, tiny_llama, tiny_data):
    settings = {**LORA, "max_steps": 16, "checkpoint_every": 4}
    straight = _run(tmp_path / "straight", tiny_llama, tiny_data, {**settings, "checkpoint_every": 1000})
    assert straight.wait(timeout=600) == 0, straight.stderr.read()[-3000:]

    proc = _run(tmp_path / "killed", tiny_llama, tiny_data, settings)
    checkpoint = tmp_path / "killed" / "checkpoints" / "step-00000008"
    while not checkpoint.is_dir() and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "killed" / "model").exists()
    # A LoRA checkpoint holds what trains (adapters, embeddings), not the frozen base.
    saved = torch.load(checkpoint / "model.pt", weights_only=True)
    assert saved and all("lora_" in k or k in {"model.embed_tokens.weight", "lm_head.weight"} for k in saved)

    resumed = _run(tmp_path / "killed", tiny_llama, tiny_data, settings)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()[-3000:]
    stats = json.loads((tmp_path / "killed" / "stats.json").read_text())
    assert stats["resumed_from_step"] >= 8
    expected, got = _weights(tmp_path / "straight" / "model"), _weights(tmp_path / "killed" / "model")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    log = [json.loads(line)["loss"] for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    reference = [json.loads(line)["loss"] for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert log == reference


def test_lora_target_modules_that_match_nothing_are_one_clear_error(tmp_path, tiny_llama, tiny_data):
    from synthcpt.errors import SynthcptError
    from synthcpt.s6_train.settings import TrainSettings
    from synthcpt.s6_train.training import train_on_files

    settings = TrainSettings(model=str(tiny_llama), block_size=64, batch_size=4, max_steps=1,
                             lora={"enabled": True, "target_modules": ["no_such_proj"]})
    with pytest.raises(SynthcptError, match="train.lora.target_modules") as error:
        train_on_files(settings, [tiny_data], tmp_path / "train", seed=0)
    assert "\n" not in str(error.value)


def test_push_shares_a_lora_runs_merged_model_and_its_adapters_alone(tmp_path, tiny_llama, tiny_data):
    from huggingface_hub import ModelCard

    from synthcpt.config import load_config
    from synthcpt.run_folder import RunFolder
    from synthcpt.s6_train.settings import TrainSettings
    from synthcpt.s6_train.training import train_on_files
    from tests.helpers import synthcpt

    settings = TrainSettings(model=str(tiny_llama), block_size=64, batch_size=4, micro_batch_size=2, max_steps=2,
                             lr=1e-3, **LORA)
    run = RunFolder(tmp_path / "run")
    train_on_files(settings, [tiny_data], run.folder("train"), seed=0)
    run.write_config(load_config(None, [f"train.model={tiny_llama}", "train.lora.enabled=true", "train.lora.rank=4",
                                        "train.lora.alpha=8"]))
    run.save()
    proc = synthcpt("push", str(run.dir), "--to", str(tmp_path / "shared"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["adapter", "model"]  # no mix in this run
    assert (tmp_path / "shared" / "adapter" / "adapter_model.safetensors").is_file()
    adapter, model = (ModelCard.load(tmp_path / "shared" / name / "README.md") for name in ("adapter", "model"))
    assert (adapter.data.library_name, model.data.library_name) == ("peft", "transformers")
    assert "LoRA (rank 4, alpha 8" in model.text and "merged into these weights" in model.text
