"""The train stage end to end on the embedded model: the loss falls, the model loads and generates,
kill and resume reproduce the uninterrupted run, bad input ends in one clear line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from synthcpt.errors import SynthcptError
from tests.fixtures.train import REPLAY_SAMPLE, TRAINED_CHARS, TRAINED_RUN, demo_texts, prepare_run
from tests.helpers import ROOT, assert_one_line_error, synthcpt

PROMPT = "The spaceship landed on the planet and the captain"


def _log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train" / "log.jsonl").read_text().splitlines()]


def _mean_loss(model_path, texts: list[str], tokenizer) -> float:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    losses = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=512).input_ids
            losses.append(model(ids, labels=ids).loss.item())
    return sum(losses) / len(losses)


def test_stage_logs_every_step_and_mixes_in_replay(trained_run):
    log = _log(trained_run)
    assert [r["step"] for r in log] == list(range(1, TRAINED_RUN["max_steps"] + 1))
    tokens_per_step = TRAINED_RUN["batch_size"] * TRAINED_RUN["block_size"]
    assert all(r["tokens"] == r["step"] * tokens_per_step for r in log)
    assert all(r["tokens_per_s"] > 0 and r["grad_norm"] > 0 and r["lr"] > 0 for r in log)
    assert max(r["lr"] for r in log) == pytest.approx(TRAINED_RUN["lr"])
    stats = json.loads((trained_run / "train" / "stats.json").read_text())
    assert stats["steps"] == TRAINED_RUN["max_steps"]
    assert 0 < stats["replay_sequences"] < stats["sequences"]
    manifest = json.loads((trained_run / "manifest.json").read_text())
    assert manifest["stages"]["train"]["status"] == "complete"


def test_loss_falls_on_the_training_text(trained_run, embedded_model, tokenizer):
    log = _log(trained_run)
    first, last = log[:3], log[-3:]
    assert sum(r["loss"] for r in last) < sum(r["loss"] for r in first)
    story = demo_texts(max_chars=TRAINED_CHARS)[:1]
    before = _mean_loss(embedded_model, story, tokenizer)
    after = _mean_loss(trained_run / "train" / "model", story, tokenizer)
    assert after < before - 0.2, (before, after)


def test_saved_model_loads_in_transformers_and_generates(trained_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = trained_run / "train" / "model"
    assert (folder / "model.safetensors").is_file()
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 8
    assert tokenizer.decode(out[0, ids.shape[1]:]).strip()


VLLM_SCRIPT = textwrap.dedent("""
    import json, sys
    from vllm import LLM, SamplingParams
    if __name__ == "__main__":
        llm = LLM(model=sys.argv[1], dtype="float32", enforce_eager=True, max_model_len=512, seed=0)
        out = llm.generate([sys.argv[2]], SamplingParams(temperature=0, max_tokens=6))
        with open(sys.argv[3], "w") as f:
            json.dump(list(out[0].outputs[0].token_ids), f)
""")


@pytest.mark.slow
def test_saved_model_loads_in_vllm_with_the_same_greedy_tokens(trained_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = trained_run / "train" / "model"
    script = tmp_path / "vllm_generate.py"
    script.write_text(VLLM_SCRIPT)
    env = dict(os.environ, VLLM_CPU_OMP_THREADS_BIND="0-1", VLLM_CPU_NUM_OF_RESERVED_CPU="0",
               VLLM_CPU_KVCACHE_SPACE="2")
    result = tmp_path / "tokens.json"
    proc = subprocess.run([sys.executable, str(script), str(folder), PROMPT, str(result)], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    vllm_tokens = json.loads(result.read_text())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    hf = AutoModelForCausalLM.from_pretrained(folder).generate(ids, max_new_tokens=6, do_sample=False)
    # Same weights, same greedy choice for the first tokens (later ones may differ on near-ties).
    assert vllm_tokens[:3] == hf[0, ids.shape[1]:ids.shape[1] + 3].tolist()


RESUME_RUN = {"block_size": 64, "batch_size": 2, "micro_batch_size": 1, "max_steps": 8, "lr": 1e-4,
              "checkpoint_every": 2, "replay_path": str(REPLAY_SAMPLE), "replay_share": 0.2}


def _same_curve(a: list[dict], b: list[dict]) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b):
        assert (x["loss"], x["grad_norm"], x["lr"]) == (y["loss"], y["grad_norm"], y["lr"]), x["step"]


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_loss_curve(tmp_path):
    texts = demo_texts(max_chars=3000)
    straight = prepare_run(tmp_path / "straight", {**RESUME_RUN, "checkpoint_every": 100}, texts)
    done = synthcpt("train", "-c", str(straight))
    assert done.returncode == 0, done.stderr[-3000:]
    reference = _log(tmp_path / "straight")
    assert len(reference) == RESUME_RUN["max_steps"]

    run_dir = tmp_path / "killed"
    killed_config = prepare_run(run_dir, RESUME_RUN, texts)
    checkpoint = run_dir / "train" / "checkpoints" / "step-00000004"
    proc = subprocess.Popen([sys.executable, "-c", "from synthcpt.cli import main; main()", "train", "-c",
                             str(killed_config)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not checkpoint.is_dir() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (run_dir / "train" / "model").exists()

    resumed = synthcpt("train", "-c", str(killed_config))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "warning" not in resumed.stderr
    _same_curve(_log(run_dir), reference)

    # A corrupt newest checkpoint: the rerun falls back to the previous one, with the same result.
    checkpoints = sorted((run_dir / "train" / "checkpoints").glob("step-*"))
    assert [p.name for p in checkpoints] == ["step-00000004", "step-00000006"]
    weights = checkpoints[-1] / "model.pt"
    with open(weights, "r+b") as f:
        f.seek(-256, os.SEEK_END)
        f.write(b"\0" * 256)
    again = synthcpt("train", "-c", str(killed_config), "--force")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "checkpoint step-00000006 cannot be loaded" in again.stderr
    _same_curve(_log(run_dir), reference)


def test_instruction_mode_trains_on_pairs(tmp_path, embedded_model):
    from synthcpt.atomic import write_records
    from synthcpt.s6_train.settings import TrainSettings
    from synthcpt.s6_train.training import train_on_files

    pairs = [{"id": str(i), "instruction": f"Summarise part {i} of the story.", "response": text[:400],
              "task_type": "summarization", "doc_id": "d"} for i, text in enumerate(demo_texts(2000) * 2)]
    files = [tmp_path / "instructions" / "part-00000.parquet"]
    write_records(files[0], pairs)
    settings = TrainSettings(data="instructions", block_size=64, batch_size=2, micro_batch_size=2, max_steps=1)
    stats = train_on_files(settings, files, tmp_path / "train", seed=0)
    assert stats.steps == 1 and stats.final_loss > 0
    assert (tmp_path / "train" / "model" / "model.safetensors").is_file()


def test_empty_training_data_is_one_clear_error(tmp_path, embedded_model):
    from synthcpt.atomic import write_records
    from synthcpt.s6_train.settings import TrainSettings
    from synthcpt.s6_train.training import train_on_files

    files = [tmp_path / "mix" / "part-00000.parquet"]
    write_records(files[0], [{"text": ""}])
    with pytest.raises(SynthcptError, match="no training text"):
        train_on_files(TrainSettings(), files, tmp_path / "train", seed=0)


def test_too_little_data_and_not_a_causal_lm_are_one_line_errors(tmp_path):
    from transformers import T5Config

    tiny = prepare_run(tmp_path / "tiny", {"block_size": 2048}, ["A single short sentence."])
    assert_one_line_error(synthcpt("train", "-c", str(tiny)), "fewer than one block", "train.block_size")

    encoder_decoder = tmp_path / "t5"
    T5Config(d_model=32, d_ff=64, num_layers=1, num_heads=2, vocab_size=100).save_pretrained(encoder_decoder)
    not_lm = prepare_run(tmp_path / "t5run", {"model": str(encoder_decoder)})
    assert_one_line_error(synthcpt("train", "-c", str(not_lm)), "not a causal language model", "t5")


def test_batch_that_does_not_split_into_micro_batches_is_rejected(tmp_path):
    config = prepare_run(tmp_path / "odd", {"batch_size": 5, "micro_batch_size": 2, "block_size": 64})
    assert_one_line_error(synthcpt("train", "-c", str(config)), "train.batch_size=5")
