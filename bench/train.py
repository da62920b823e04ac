"""Training benchmark: the synthcpt trainer vs the Hugging Face `Trainer`, same model, data and settings.

Both train the same randomly initialised model (real shapes from configs written here, no hub) on
the same packed blocks of general text, with the same batch, micro-batch, learning rate, schedule,
weight decay, clipping and precision (fp32 on a CPU, bf16 autocast on a GPU). Each run is its own
process; throughput is over the steps after the first (warm-up, compilation); peak memory is the
process's peak RSS on a CPU and the peak of torch's allocations on a GPU, next to the memory
planner's estimate (synthcpt.s6_train.memory, from the config alone). speedup = our tokens/s / HF's.

Context distillation (train.objective=distill), on the same model: the teacher pass over texts that each
follow a context (the second half of each general text after its first half), in tokens read per second
by our forward pass (its model's load included) and by vLLM's prompt log-probabilities (prefix-cached,
the engine's start not timed; where vLLM is installed),
with how often the two teachers' top tokens agree; then distillation training on the teacher's rows,
whose tokens/s over next-token training's is `distill_over_next_token`.

    python bench/train.py --quick           # CPU: SmolLM2-135M shape, a few minutes on 2 cores
    python bench/train.py                   # on a GPU: the Llama 3.2 1B shape, block 2048, bf16, compiled
    python bench/train.py --dry-run         # the setup's data, settings, memory plan and batches; no
                                            # weights made, nothing trained

The last stdout line is one JSON object with every figure. The GPU check of a machine without network
(bench/device.sh, bench/device.py) runs `run_ours` and `run_hf` from here on random token data.
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

import numpy as np
import torch

# Imported here, not where they are called, so that a rename breaks `--dry-run` too.
from synthcpt.models import prepare
from synthcpt.progress import console
from synthcpt.replay import read_texts
from synthcpt.s6_train.data import Example, PackedData, TokenStream, build_stream
from synthcpt.s6_train.memory import CUDA_OVERHEAD, model_shape, plan_memory
from synthcpt.s6_train.runtime import start_runtime
from synthcpt.s6_train.settings import DistillSettings, TrainSettings
from synthcpt.s6_train.teacher import (
    context_ids,
    document_bounds,
    open_rows,
    teacher_key,
    teacher_rows,
    teacher_view,
)
from synthcpt.s6_train.trainer import Trainer, flops_per_token, make_plan

REPLAY = ROOT / "examples" / "replay" / "general-sample.jsonl"
# Model shapes (the published configs), randomly initialised.
LLAMA_1B = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
            "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256, "max_position_embeddings": 8192,
            "rope_theta": 500000.0, "tie_word_embeddings": True, "rms_norm_eps": 1e-5}
LLAMA_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 128256, "max_position_embeddings": 8192,
            "rope_theta": 500000.0, "tie_word_embeddings": False, "rms_norm_eps": 1e-5}


def _cpu_setup(quick: bool) -> dict:
    return {"shape": "smollm2-135m", "config": None, "block_size": 256, "batch_size": 4, "micro_batch_size": 2,
            "steps": 5 if quick else 12, "precision": "fp32", "compile": False, "lora": False}


def gpu_setup() -> dict:
    """The 1B shape against HF, as the gpu-local preset trains it (batch 16, micro-batch 8)."""
    return {"shape": "llama-3.2-1b", "config": LLAMA_1B, "block_size": 2048, "batch_size": 16,
            "micro_batch_size": 8, "steps": 8, "precision": "bf16", "compile": True, "lora": False}


def _prepare(workdir: Path, setup: dict, weights: bool = True) -> None:
    """A randomly initialised model of the chosen shape, and the packed data both trainers read.
    Without `weights` (the dry run) only the model's config is saved, which the memory planner reads."""
    from transformers import AutoConfig, AutoTokenizer, LlamaConfig

    embedded = prepare()
    tokenizer = AutoTokenizer.from_pretrained(embedded)
    if setup["config"] is None:
        config = AutoConfig.from_pretrained(embedded)
    else:
        config = LlamaConfig(**{"vocab_size": len(tokenizer), **setup["config"]})
    save_random_model(workdir / "model", config, setup, weights)
    tokenizer.save_pretrained(workdir / "model")
    texts = read_texts(REPLAY)
    needed = setup["steps"] * setup["batch_size"] * setup["block_size"]
    repeats = 1 + needed // sum(len(t) // 4 for t in texts)
    build_stream(workdir / "data", (Example(t) for _ in range(repeats) for t in texts), tokenizer, "bench",
                 "tokenising")
    build_stream(workdir / "distill-data", distill_examples(texts, repeats), tokenizer, "bench-distill", "tokenising")


def distill_examples(texts: list[str], repeats: int):
    """Each text's second half after its first half as the teacher's context (the continuation setup),
    repeated as the next-token data is."""
    for _ in range(repeats):
        for text in texts:
            half = text.rfind(" ", 0, len(text) // 2)
            if half > 0:
                yield Example(text[half:], context=text[:half], context_keeps_end=True)


def save_random_model(folder: Path, config, setup: dict, weights: bool = True) -> None:
    """A randomly initialised model of `config` in `folder`. A LoRA base is saved in bf16 (the dtype it
    trains in); full training loads fp32 master weights. Without `weights`, the config alone."""
    from transformers import AutoModelForCausalLM

    if not weights:
        config.save_pretrained(folder)
        return
    dtype = torch.bfloat16 if setup["lora"] and setup["precision"] == "bf16" else torch.float32
    torch.manual_seed(0)
    # Initialised on the GPU when there is one: an 8B model initialises in seconds there.
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(folder)


def _settings(workdir: Path, setup: dict):
    lora = {"enabled": True, "rank": 64, "alpha": 128.0} if setup["lora"] else {"enabled": False}
    return TrainSettings(model=str(workdir / "model"), block_size=setup["block_size"],
                         batch_size=setup["batch_size"], micro_batch_size=setup["micro_batch_size"],
                         max_steps=setup["steps"], lr=3e-4, precision=setup["precision"],
                         compile=setup["compile"], fused_loss=setup.get("fused_loss", True),
                         checkpoint_every=10 ** 9, lora=lora)


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _steady_tokens_per_s(step_seconds: list[float], tokens_per_step: int) -> float:
    steady = step_seconds[1:] or step_seconds
    return tokens_per_step * len(steady) / sum(steady)


def _planned_memory(settings, device: torch.device) -> int:
    """The memory planner's estimate (bytes) from the model's config, as the measured peak counts it:
    torch's allocations exclude the CUDA context; a CPU's RSS includes the libraries (~1 GB)."""
    plan = plan_memory(settings, model_shape(settings.model), 1, device)
    return plan.needed - (CUDA_OVERHEAD if device.type == "cuda" else 0)


def _data(workdir: Path, settings) -> PackedData:
    """The packed blocks both trainers read (no replay: the same data for both)."""
    return PackedData(TokenStream.open(workdir / "data"), None, settings.block_size, False)


def run_ours(workdir: Path, setup: dict) -> dict:
    settings = _settings(workdir, setup)
    runtime = start_runtime()
    planned = _planned_memory(settings, runtime.device)
    data = _data(workdir, settings)
    trainer = Trainer(settings, data, settings.model, workdir / "ours", 0, runtime)
    trainer.save_model = lambda target: None  # the HF side saves nothing either
    stats = trainer.train()
    log = [json.loads(line) for line in (workdir / "ours" / "log.jsonl").read_text().splitlines()]
    tokens_per_step = settings.batch_size * settings.block_size
    tps = _steady_tokens_per_s([tokens_per_step / r["tokens_per_s"] for r in log], tokens_per_step)
    peak = runtime.peak_flops(None)
    return {"tokens_per_s": tps, "peak_memory_gb": _peak_memory_gb(runtime.device),
            "mfu": tps * trainer.flops_per_token / peak if peak else None,
            "mean_loss": sum(r["loss"] for r in log) / len(log), "steps": stats["steps"],
            "planned_memory_gb": planned / 2**30}


def run_hf(workdir: Path, setup: dict) -> dict:
    from transformers import AutoModelForCausalLM, TrainerCallback, TrainingArguments
    from transformers import Trainer as HFTrainer

    settings = _settings(workdir, setup)
    runtime = start_runtime()
    data = _data(workdir, settings)
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
    trainer = HFTrainer(model=model, args=args, train_dataset=Blocks(), callbacks=[timer])
    result = trainer.train()
    tps = _steady_tokens_per_s(timer.seconds, settings.batch_size * settings.block_size)
    peak = runtime.peak_flops(None)
    fpt = flops_per_token(model, settings.block_size)
    return {"tokens_per_s": tps, "peak_memory_gb": _peak_memory_gb(runtime.device),
            "mfu": tps * fpt / peak if peak else None, "mean_loss": result.training_loss,
            "steps": result.global_step}


def _distill_settings(setup: dict) -> DistillSettings:
    return DistillSettings(top_k=20, context_tokens=setup["block_size"])


def run_teacher(workdir: Path, setup: dict) -> dict:
    """Our teacher pass over the distillation stream: tokens read (contexts once, texts) per second."""
    from transformers import AutoTokenizer

    stream, settings = TokenStream.open(workdir / "distill-data"), _distill_settings(setup)
    tokenizer = AutoTokenizer.from_pretrained(workdir / "model")
    started = time.perf_counter()
    teacher_rows(str(workdir / "model"), tokenizer, stream, settings, workdir / "teacher", start_runtime())
    seconds = time.perf_counter() - started
    meta = json.loads((workdir / "teacher" / "meta.json").read_text())
    return {"tokens_read": meta["tokens_read"], "seconds": seconds, "tokens_per_s": meta["tokens_read"] / seconds,
            "rows": meta["n_rows"]}


def run_vllm_teacher(workdir: Path, setup: dict) -> dict:
    """vLLM's prompt log-probabilities of the same contexts and texts (the engine's start not timed), and
    the share of rows whose top token is ours."""
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from synthcpt.config import load_config
    from synthcpt.engine.backends.vllm import is_cpu_build, llm_arguments, set_cpu_environment

    stream, settings = TokenStream.open(workdir / "distill-data"), _distill_settings(setup)
    tokenizer = AutoTokenizer.from_pretrained(workdir / "model")
    rows = open_rows(workdir / "teacher", teacher_key(stream, str(workdir / "model"), settings))
    contexts, index = stream.contexts()
    bounds = document_bounds(stream)
    prompts, views = [], []
    for doc in range(len(stream.doc_starts)):
        context = context_ids(tokenizer, contexts[index[doc]], settings.context_tokens) if index[doc] >= 0 else []
        tokens, dropped = teacher_view(stream, bounds, doc, bool(context), tokenizer.bos_token_id)
        prompts.append(TokensPrompt(prompt_token_ids=context + tokens.tolist()))
        views.append((doc, len(context), dropped))
    if is_cpu_build():
        set_cpu_environment()
    engine = load_config(None, []).engine  # the engine's defaults, with the vllm backend's section
    llm = LLM(**llm_arguments(engine, str(workdir / "model")), max_logprobs=settings.top_k)
    started = time.perf_counter()
    outputs = llm.generate(prompts, SamplingParams(max_tokens=1, prompt_logprobs=settings.top_k), use_tqdm=False)
    seconds = time.perf_counter() - started
    agree = total = 0
    for output, (doc, n_context, dropped) in zip(outputs, views):
        doc_rows = np.asarray(rows.row_of_token[bounds[doc]:bounds[doc + 1]])
        for position in np.nonzero(doc_rows >= 0)[0]:
            theirs = output.prompt_logprobs[n_context + position - dropped]
            top = min(theirs.items(), key=lambda item: item[1].rank)[0]
            agree += int(top == rows.ids[doc_rows[position], 0])
            total += 1
    return {"seconds": seconds, "top1_agreement": agree / max(1, total)}


def run_distill(workdir: Path, setup: dict) -> dict:
    """Distillation training on the teacher's rows (run_teacher first), as `run_ours` trains."""
    settings = _settings(workdir, setup).model_copy(update={"objective": "distill",
                                                            "distill": _distill_settings(setup)})
    runtime = start_runtime()
    stream = TokenStream.open(workdir / "distill-data")
    rows = open_rows(workdir / "teacher", teacher_key(stream, settings.model, settings.distill))
    data = PackedData(stream, None, settings.block_size, False, rows)
    trainer = Trainer(settings, data, settings.model, workdir / "distill", 0, runtime)
    trainer.save_model = lambda target: None
    trainer.train()
    log = [json.loads(line) for line in (workdir / "distill" / "log.jsonl").read_text().splitlines()]
    tokens_per_step = settings.batch_size * settings.block_size
    return {"tokens_per_s": _steady_tokens_per_s([tokens_per_step / r["tokens_per_s"] for r in log], tokens_per_step),
            "mean_loss": sum(r["loss"] for r in log) / len(log)}


def run_prepare(workdir: Path, setup: dict) -> dict:
    _prepare(workdir, setup)
    return {}


WORKERS = {"ours": run_ours, "hf": run_hf, "prepare": run_prepare, "teacher": run_teacher,
           "vllm_teacher": run_vllm_teacher, "distill": run_distill}


def _worker(kind: str, workdir: Path, setup: dict) -> dict:
    """Each run in a process of its own: its own peak memory, no compiled code or CUDA cache shared."""
    env = dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, "--workdir", str(workdir),
                           "--setup", json.dumps(setup)], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _round(value, digits: int = 4):
    return None if value is None else round(value, digits)


def compare(workdir: Path, setup: dict, vs_hf: bool) -> dict:
    """Ours (and the HF Trainer) on the prepared model: throughput, MFU, peak vs planned memory."""
    results = {"ours": _worker("ours", workdir, setup)}
    if vs_hf:
        results["hf"] = _worker("hf", workdir, setup)
    for kind, result in results.items():
        console.print(f"{setup.get('name', setup['shape'])} {kind}: {result['tokens_per_s']:,.0f} tok/s, "
                      f"peak {result['peak_memory_gb']:.2f} GB")
    ours = results["ours"]
    figures = {**{k: v for k, v in setup.items() if k != "config"},
               "ours_tokens_per_s": round(ours["tokens_per_s"], 1), "ours_mfu": _round(ours["mfu"]),
               "ours_peak_memory_gb": round(ours["peak_memory_gb"], 2),
               "planned_memory_gb": round(ours["planned_memory_gb"], 2),
               "planned_over_peak": round(ours["planned_memory_gb"] / ours["peak_memory_gb"], 3),
               "ours_mean_loss": round(ours["mean_loss"], 4)}
    if vs_hf:
        hf = results["hf"]
        figures.update(hf_tokens_per_s=round(hf["tokens_per_s"], 1), hf_mfu=_round(hf["mfu"]),
                       speedup=round(ours["tokens_per_s"] / hf["tokens_per_s"], 3),
                       hf_peak_memory_gb=round(hf["peak_memory_gb"], 2),
                       memory_ratio=round(hf["peak_memory_gb"] / ours["peak_memory_gb"], 3),
                       # Same data, model and settings: the two mean losses agree closely.
                       hf_mean_loss=round(hf["mean_loss"], 4))
    return figures


def compare_distill(workdir: Path, setup: dict, ours_tokens_per_s: float) -> dict:
    """The teacher pass (ours, and vLLM's where it is installed) and distillation training's throughput."""
    import importlib.util

    teacher = _worker("teacher", workdir, setup)
    figures = {"teacher_tokens_per_s": round(teacher["tokens_per_s"], 1), "teacher_rows": teacher["rows"]}
    if importlib.util.find_spec("vllm") is not None:
        vllm = _worker("vllm_teacher", workdir, setup)
        # The same work (each context once, then its texts; vLLM's prefix cache reads a context once too).
        figures.update(vllm_teacher_tokens_per_s=round(teacher["tokens_read"] / vllm["seconds"], 1),
                       vllm_over_forward_pass=round(teacher["seconds"] / vllm["seconds"], 3),
                       teacher_top1_agreement=round(vllm["top1_agreement"], 4))
    distill = _worker("distill", workdir, setup)
    figures.update(distill_tokens_per_s=round(distill["tokens_per_s"], 1),
                   distill_over_next_token=round(distill["tokens_per_s"] / ours_tokens_per_s, 3),
                   distill_mean_loss=round(distill["mean_loss"], 4))
    console.print(f"teacher pass {figures['teacher_tokens_per_s']:,.0f} tok/s"
                  + (f" (vLLM {figures['vllm_teacher_tokens_per_s']:,.0f})" if "vllm_teacher_tokens_per_s" in figures
                     else "") + f"; distillation {figures['distill_tokens_per_s']:,.0f} tok/s")
    return figures


def device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"


def dry_run(setups: list[dict]) -> dict:
    """Each setup as its run prepares it, less the weights: the packed data, the settings both trainers
    get, the memory planner's estimate from the model's config, and the sequences the HF side's order
    feeds (ours plans the same)."""
    device = start_runtime().device
    cases = []
    for setup in setups:
        with tempfile.TemporaryDirectory(prefix="synthcpt-bench-train-dry-run-") as tmp:
            workdir = Path(tmp)
            _prepare(workdir, setup, weights=False)
            settings = _settings(workdir, setup)
            data = _data(workdir, settings)
            distill = TokenStream.open(workdir / "distill-data")
            cases.append({**{k: v for k, v in setup.items() if k != "config"}, "data_tokens": data.main.n_tokens,
                          "distill_data_tokens": distill.n_tokens, "distill_contexts": len(distill.contexts()[0]),
                          "sequences": len(make_plan(settings, data, 0, 1).order),
                          "planned_memory_gb": round(_planned_memory(settings, device) / 2**30, 2)})
    return {"device": device_name(), "dry_run": True, "cases": cases,
            "counts": {"cases": len(cases), "sequences": sum(c["sequences"] for c in cases),
                       "data_tokens": sum(c["data_tokens"] for c in cases)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps: a few minutes on a CPU")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    parser.add_argument("--dry-run", action="store_true", help="prepare each setup's data, settings and memory "
                        "plan (the model's config, no weights), then stop before training")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.workdir, json.loads(args.setup))))
        return
    # The 1B shape against HF on a GPU, SmolLM2-135M's on a CPU.
    setup = gpu_setup() if torch.cuda.is_available() else _cpu_setup(args.quick)
    if args.dry_run:
        print(json.dumps(dry_run([setup])))
        return
    with tempfile.TemporaryDirectory(prefix="synthcpt-bench-train-") as tmp:
        workdir = Path(tmp)
        with console.status(f"preparing a random {setup['shape']} and the data"):
            _prepare(workdir, setup)
        figures = {"device": device_name(), **compare(workdir, setup, vs_hf=True)}
        figures.update(compare_distill(workdir, setup, figures["ours_tokens_per_s"]))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
