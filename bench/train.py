"""Training benchmark: the synthcpt trainer vs the Hugging Face `Trainer`, same model, data and settings.

Both train the same randomly initialised model (real shapes: SmolLM2-135M on a CPU, Llama 3.2 1B on
a GPU) on the same packed blocks of general text, with the same batch, micro-batch, learning rate,
schedule, weight decay, clipping and precision (fp32 on a CPU, bf16 autocast on a GPU). Each runs
in its own process; throughput is over the steps after the first (warm-up), peak memory is the
process's peak RSS on a CPU and peak allocated GPU memory on a GPU. Figures are ratios of the two
runs made here: speedup = our tokens/s / HF tokens/s.

    python bench/train.py --quick    # a few minutes on 2 CPU cores
    python bench/train.py            # more steps
    torch.cuda available: the 1B Llama shape in bf16, MFU reported (dense bf16 peak of the GPU)

The last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch

from synthcpt.progress import console

REPLAY = ROOT / "examples" / "replay" / "general-sample.jsonl"
# Llama 3.2 1B.
LLAMA_1B = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
                "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256, "max_position_embeddings": 8192,
                "rope_theta": 500000.0, "tie_word_embeddings": True, "rms_norm_eps": 1e-5}


def _setup(gpu: bool, quick: bool) -> dict:
    steps = (12 if quick else 40) if gpu else (5 if quick else 12)
    if gpu:
        return {"shape": "llama-3.2-1b", "block_size": 2048, "batch_size": 16, "micro_batch_size": 4, "steps": steps,
                    "precision": "bf16", "compile": True}
    return {"shape": "smollm2-135m", "block_size": 256, "batch_size": 4, "micro_batch_size": 2, "steps": steps,
                "precision": "fp32", "compile": False}


def _prepare(workdir: Path, setup: dict) -> None:
    """A randomly initialised model of the chosen shape, and the packed data both trainers read."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from synthcpt.models import prepare
    from synthcpt.s5_train.data import Example, build_stream
    from synthcpt.s5_train.replay import read_texts

    embedded = prepare()
    tokenizer = AutoTokenizer.from_pretrained(embedded)
    if setup["shape"] == "llama-3.2-1b":
        config = LlamaConfig(**LLAMA_1B)
    else:
        config = AutoConfig.from_pretrained(embedded)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(workdir / "model")
    tokenizer.save_pretrained(workdir / "model")
    texts = read_texts(REPLAY)
    needed = setup["steps"] * setup["batch_size"] * setup["block_size"]
    repeats = 1 + needed // sum(len(t) // 4 for t in texts)
    build_stream(workdir / "data", (Example(t) for _ in range(repeats) for t in texts), tokenizer, "bench",
                 "tokenising")


def _settings(workdir: Path, setup: dict):
    from synthcpt.s5_train import TrainSettings

    return TrainSettings(model=str(workdir / "model"), block_size=setup["block_size"],
                         batch_size=setup["batch_size"], micro_batch_size=setup["micro_batch_size"],
                         max_steps=setup["steps"], lr=3e-4, precision=setup["precision"],
                         compile=setup["compile"], checkpoint_every=10 ** 9)


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _steady_tokens_per_s(step_seconds: list[float], tokens_per_step: int) -> float:
    steady = step_seconds[1:] or step_seconds
    return tokens_per_step * len(steady) / sum(steady)


def run_ours(workdir: Path, setup: dict) -> dict:
    from synthcpt.s5_train.data import PackedData, TokenStream
    from synthcpt.s5_train.runtime import start_runtime
    from synthcpt.s5_train.trainer import Trainer

    settings = _settings(workdir, setup)
    runtime = start_runtime()
    data = PackedData(TokenStream.open(workdir / "data"), None, settings.block_size, False)
    trainer = Trainer(settings, data, settings.model, workdir / "ours", 0, runtime)
    trainer.save_model = lambda target: None  # the HF side saves nothing either
    stats = trainer.train()
    log = [json.loads(line) for line in (workdir / "ours" / "log.jsonl").read_text().splitlines()]
    tokens_per_step = settings.batch_size * settings.block_size
    tps = _steady_tokens_per_s([tokens_per_step / r["tokens_per_s"] for r in log], tokens_per_step)
    peak = runtime.peak_flops(None)
    return {"tokens_per_s": tps, "peak_memory_gb": _peak_memory_gb(runtime.device),
            "mfu": tps * trainer.flops_per_token / peak if peak else None,
            "mean_loss": sum(r["loss"] for r in log) / len(log), "steps": stats["steps"]}


def run_hf(workdir: Path, setup: dict) -> dict:
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    from synthcpt.s5_train.data import PackedData, TokenStream
    from synthcpt.s5_train.runtime import start_runtime
    from synthcpt.s5_train.trainer import flops_per_token, make_plan

    settings = _settings(workdir, setup)
    runtime = start_runtime()
    data = PackedData(TokenStream.open(workdir / "data"), None, settings.block_size, False)
    order = make_plan(settings, data, 0, 1).order

    class Blocks(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(order)

        def __getitem__(self, i: int) -> dict:
            return {k: torch.from_numpy(v[0]) for k, v in data.batch(order[i:i + 1]).items()}

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.seconds: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if runtime.device.type == "cuda":
                torch.cuda.synchronize()
            self.seconds.append(time.perf_counter() - self.start)

    model = AutoModelForCausalLM.from_pretrained(settings.model, dtype=torch.float32, attn_implementation="sdpa")
    model.config.use_cache = False
    timer = StepTimer()
    args = TrainingArguments(
        output_dir=str(workdir / "hf"), per_device_train_batch_size=settings.micro_batch_size,
        gradient_accumulation_steps=settings.batch_size // settings.micro_batch_size, max_steps=settings.max_steps,
        learning_rate=settings.lr, weight_decay=settings.weight_decay, adam_beta1=settings.betas[0],
        adam_beta2=settings.betas[1], max_grad_norm=settings.max_grad_norm, lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": settings.min_lr_ratio}, warmup_steps=settings.warmup_share,
        bf16=settings.precision == "bf16", torch_compile=settings.compile, logging_steps=1, save_strategy="no",
        report_to=[], dataloader_num_workers=0, use_cpu=runtime.device.type == "cpu", seed=0,
        disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=Blocks(), callbacks=[timer])
    result = trainer.train()
    tps = _steady_tokens_per_s(timer.seconds, settings.batch_size * settings.block_size)
    peak = runtime.peak_flops(None)
    fpt = flops_per_token(model, settings.block_size)
    return {"tokens_per_s": tps, "peak_memory_gb": _peak_memory_gb(runtime.device),
            "mfu": tps * fpt / peak if peak else None, "mean_loss": result.training_loss,
            "steps": result.global_step}


def _worker(kind: str, workdir: Path, setup: dict) -> dict:
    env = dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, "--workdir", str(workdir),
                           "--setup", json.dumps(setup)], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} trainer failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps: a few minutes on a CPU")
    parser.add_argument("--worker", choices=["ours", "hf"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run = run_ours if args.worker == "ours" else run_hf
        print(json.dumps(run(args.workdir, json.loads(args.setup))))
        return

    gpu = torch.cuda.is_available()
    setup = _setup(gpu, args.quick)
    with tempfile.TemporaryDirectory(prefix="synthcpt-bench-train-") as tmp:
        workdir = Path(tmp)
        with console.status(f"preparing a random {setup['shape']} and the data"):
            _prepare(workdir, setup)
        results = {}
        for kind in ("hf", "ours"):
            with console.status(f"training with {'the HF Trainer' if kind == 'hf' else 'synthcpt'}"):
                results[kind] = _worker(kind, workdir, setup)
            console.print(f"{kind}: {results[kind]['tokens_per_s']:,.0f} tok/s, "
                          f"peak {results[kind]['peak_memory_gb']:.2f} GB")
    ours, hf = results["ours"], results["hf"]
    figures = {
        "device": torch.cuda.get_device_name(0) if gpu else f"cpu ({os.cpu_count()} cores)",
        **setup,
        "ours_tokens_per_s": round(ours["tokens_per_s"], 1), "hf_tokens_per_s": round(hf["tokens_per_s"], 1),
        "speedup": round(ours["tokens_per_s"] / hf["tokens_per_s"], 3),
        "ours_peak_memory_gb": round(ours["peak_memory_gb"], 2), "hf_peak_memory_gb": round(hf["peak_memory_gb"], 2),
        "memory_ratio": round(hf["peak_memory_gb"] / ours["peak_memory_gb"], 3),
        "ours_mfu": ours["mfu"] and round(ours["mfu"], 4), "hf_mfu": hf["mfu"] and round(hf["mfu"], 4),
        # Same data, model and settings: the two mean losses agree closely.
        "ours_mean_loss": round(ours["mean_loss"], 4), "hf_mean_loss": round(hf["mean_loss"], 4),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
