"""The GPU check (run through bench/device.sh): the train stage on one GPU with no network, in under 8 minutes.

Randomly initialised Llama 3.2 1B and Llama 3.1 8B shapes (configs in bench/train.py), random token
data (documents of random words of a word-level tokenizer built here over the model's vocabulary: no
tokenizer file, no GGUF, no hub), block 2048, bf16 autocast. Parts, most telling first:

    ours_1b            our trainer on the 1B (compiled, fused loss): tokens/s, MFU, peak memory, the plan
    hf_1b              the HF Trainer on the same model, data and settings (compiled)
    lora_8b            ours on the 8B with LoRA: tokens/s, MFU, peak memory vs the plan
    loglik_1b          log-likelihood evaluation questions/s on the 1B (4 options a question)
    fused_loss_off_1b  ours on the 1B with transformers' plain loss (full logits)
    compile_off_1b     ours on the 1B in eager mode

Each run is a process of its own (bench/train.py's run_ours and run_hf), its own peak memory and
compiled code, killed at its time limit; throughput is over the steps after the first (warm-up and
compilation). A part that fails or runs out of time records {"error": ...} and the others still run;
`comparisons` sets the parts against each other where both ran. The last stdout line is one JSON
object, also written to $OUT/device-h200.json when $OUT is set.

    bash bench/device.sh               # on the GPU machine
    bash bench/device.sh --dry-run     # every part on a CPU with tiny shapes (tests/test_bench.py)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# bench/train.py's workers and shapes; it puts the repository on sys.path.
from train import LLAMA_1B, LLAMA_8B, _round, _settings, device_name, run_hf, run_ours, save_random_model

from synthcpt.s6_train.data import Example, build_stream
from synthcpt.s6_train.memory import GIB, plan_memory, shape_from_config
from synthcpt.s6_train.runtime import start_runtime
from synthcpt.s7_eval.loglik import ChoiceRequest, LoglikScorer

BUDGET_S = 450  # the whole check, under the 8 minutes it is given
DRY_RUN_BUDGET_S = 900  # two busy CPU cores compiling
MIN_PART_S = 20  # a part with less time left is skipped, not started
SPECIAL = ("<unk>", "<eos>", "<pad>")  # the word-level tokenizer's first ids
# The H200's memory, for the dry run's plans of the GPU cases.
H200_BYTES = 141 * GIB


def gpu_cases() -> dict[str, dict]:
    common = {"block_size": 2048, "precision": "bf16", "compile": True}
    return {"1b": {"shape": "llama-3.2-1b", "config": LLAMA_1B, "batch_size": 16, "micro_batch_size": 8, "steps": 6,
                   "lora": False, **common},
            "8b": {"shape": "llama-3.1-8b", "config": LLAMA_8B, "batch_size": 8, "micro_batch_size": 2, "steps": 5,
                   "lora": True, **common}}


def tiny_cases() -> dict[str, dict]:
    """The same parts on a CPU in a few minutes: bf16 autocast and compilation as on the GPU."""
    tiny = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 1000, "max_position_embeddings": 256}
    common = {"block_size": 64, "batch_size": 4, "steps": 3, "precision": "bf16", "compile": True}
    return {"1b": {"shape": "tiny", "config": {**tiny, "tie_word_embeddings": True}, "micro_batch_size": 2,
                   "lora": False, **common},
            "8b": {"shape": "tiny-untied", "config": {**tiny, "tie_word_embeddings": False}, "micro_batch_size": 1,
                   "lora": True, **common}}


def word_tokenizer(vocab_size: int):
    """A word-level tokenizer built in code: id i is the word `w<i>` (the first ids are special), so
    random documents are random token ids and nothing is read from a tokenizer file."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {**{token: i for i, token in enumerate(SPECIAL)}, **{f"w{i}": i for i in range(len(SPECIAL), vocab_size)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL[0]))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token=SPECIAL[0], eos_token=SPECIAL[1],
                                   pad_token=SPECIAL[2])


def random_words(rng: np.random.Generator, vocab_size: int, n: int) -> str:
    return " ".join(f"w{i}" for i in rng.integers(len(SPECIAL), vocab_size, n))


def run_prepare(workdir: Path, setup: dict) -> dict:
    """The random model, its tokenizer, and random documents (100 to 3,000 words) packed for training."""
    from transformers import LlamaConfig

    vocab_size = setup["config"]["vocab_size"]
    tokenizer = word_tokenizer(vocab_size)
    save_random_model(workdir / "model", LlamaConfig(**setup["config"]), setup)
    tokenizer.save_pretrained(workdir / "model")
    rng = np.random.default_rng(0)
    needed = (setup["steps"] + 1) * setup["batch_size"] * setup["block_size"]
    lengths = rng.integers(100, 3000, needed // 100 + 1)
    lengths = lengths[:np.searchsorted(np.cumsum(lengths), needed) + 1]
    stream = build_stream(workdir / "data", (Example(random_words(rng, vocab_size, int(n))) for n in lengths),
                          tokenizer, "device", "tokenising")
    return {"data_tokens": stream.n_tokens}


def run_loglik(workdir: Path, setup: dict) -> dict:
    """Questions/s of the log-likelihood scorer: a 200-word context and 4 options of 12 words each."""
    scorer = LoglikScorer(str(workdir / "model"))
    rng = np.random.default_rng(0)
    vocab_size = scorer.model.config.vocab_size
    requests = [ChoiceRequest(random_words(rng, vocab_size, 200),
                              tuple(" " + random_words(rng, vocab_size, 12) for _ in range(4)))
                for _ in range(setup["questions"])]
    scorer.score(requests[:8], "warm-up")
    _synchronize(scorer.device)
    start = time.perf_counter()
    scores = scorer.score(requests, "scoring")
    _synchronize(scorer.device)
    seconds = time.perf_counter() - start
    if not all(len(row) == 4 and all(np.isfinite(row)) for row in scores):
        raise RuntimeError("the scorer returned a score that is not finite")
    return {"questions_per_s": len(requests) / seconds, "questions": len(requests)}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


WORKERS = {"prepare": run_prepare, "ours": run_ours, "hf": run_hf, "loglik": run_loglik}


class Deadline:
    """The check's time: each run gets what is left, and none starts with less than MIN_PART_S."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def _worker(kind: str, workdir: Path, setup: dict, deadline: Deadline) -> dict:
    """One run in a process of its own, in a session of its own so a run past its time is killed with
    whatever it started (the compiler's workers)."""
    limit = deadline.left()
    if limit < MIN_PART_S:
        raise TimeoutError(f"skipped: {limit:.0f} s left of the check's {BUDGET_S} s")
    proc = subprocess.Popen([sys.executable, __file__, "--worker", kind, "--workdir", str(workdir),
                             "--setup", json.dumps(setup)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise TimeoutError(f"{kind} ran past the {limit:.0f} s left") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed: {stderr.strip()[-1500:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def _guarded(part, *args) -> dict:
    """A part's figures and its seconds, or the error that stopped it."""
    start = time.monotonic()
    try:
        figures = part(*args)
    except Exception as e:  # noqa: BLE001 - one failed part must not lose the others' figures
        figures = {"error": f"{type(e).__name__}: {e}"[-2000:]}
    return {**figures, "seconds": round(time.monotonic() - start, 1)}


def _ours(workdir: Path, setup: dict, deadline: Deadline) -> dict:
    result = _worker("ours", workdir, setup, deadline)
    return {"tokens_per_s": round(result["tokens_per_s"], 1), "mfu": _round(result["mfu"]),
            "peak_memory_gb": round(result["peak_memory_gb"], 2),
            "planned_memory_gb": round(result["planned_memory_gb"], 2),
            "planned_over_peak": round(result["planned_memory_gb"] / result["peak_memory_gb"], 3),
            "mean_loss": round(result["mean_loss"], 4), "steps": result["steps"]}


def _hf(workdir: Path, setup: dict, deadline: Deadline) -> dict:
    result = _worker("hf", workdir, setup, deadline)
    return {"tokens_per_s": round(result["tokens_per_s"], 1), "mfu": _round(result["mfu"]),
            "peak_memory_gb": round(result["peak_memory_gb"], 2), "mean_loss": round(result["mean_loss"], 4),
            "steps": result["steps"]}


def _loglik(workdir: Path, questions: int, deadline: Deadline) -> dict:
    result = _worker("loglik", workdir, {"questions": questions}, deadline)
    return {"questions_per_s": round(result["questions_per_s"], 2), "questions": result["questions"]}


def _prepared(workdir: Path, setup: dict, deadline: Deadline) -> dict:
    """The model and data a case's parts read; a failure here fails each of them."""
    return _worker("prepare", workdir, setup, deadline)


def _needs(preparation: dict, part, *args) -> dict:
    if "error" in preparation:
        return {"error": f"not run: preparing its model failed ({preparation['error'][:300]})"}
    return _guarded(part, *args)


def _ratio(parts: dict, a: str, b: str, key: str) -> float | None:
    if any("error" in parts[p] or parts[p].get(key) is None for p in (a, b)):
        return None
    return round(parts[a][key] / parts[b][key], 3)


def comparisons(parts: dict) -> dict:
    """The parts set against each other: above 1 means the first named is faster (or, for memory,
    the second uses more)."""
    return {"ours_over_hf_tokens_per_s": _ratio(parts, "ours_1b", "hf_1b", "tokens_per_s"),
            "hf_over_ours_peak_memory": _ratio(parts, "hf_1b", "ours_1b", "peak_memory_gb"),
            "fused_over_plain_loss_tokens_per_s": _ratio(parts, "ours_1b", "fused_loss_off_1b", "tokens_per_s"),
            "plain_over_fused_loss_peak_memory": _ratio(parts, "fused_loss_off_1b", "ours_1b", "peak_memory_gb"),
            "compiled_over_eager_tokens_per_s": _ratio(parts, "ours_1b", "compile_off_1b", "tokens_per_s")}


def run_check(cases: dict[str, dict], questions: int, deadline: Deadline) -> dict:
    """Every part, in the order of what it tells, each guarded; the 8B's model lives only for its part."""
    small, large = cases["1b"], cases["8b"]
    parts: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="synthcpt-device-1b-") as tmp:
        workdir = Path(tmp)
        prepared_1b = _guarded(_prepared, workdir, small, deadline)
        parts["ours_1b"] = _needs(prepared_1b, _ours, workdir, small, deadline)
        parts["hf_1b"] = _needs(prepared_1b, _hf, workdir, small, deadline)
        with tempfile.TemporaryDirectory(prefix="synthcpt-device-8b-") as tmp_8b:
            prepared_8b = _guarded(_prepared, Path(tmp_8b), large, deadline)
            parts["lora_8b"] = _needs(prepared_8b, _ours, Path(tmp_8b), large, deadline)
        parts["loglik_1b"] = _needs(prepared_1b, _loglik, workdir, questions, deadline)
        parts["fused_loss_off_1b"] = _needs(prepared_1b, _ours, workdir, {**small, "fused_loss": False}, deadline)
        parts["compile_off_1b"] = _needs(prepared_1b, _ours, workdir, {**small, "compile": False}, deadline)
    return {"preparation_seconds": {"1b": prepared_1b["seconds"], "8b": prepared_8b["seconds"]}, "parts": parts,
            "comparisons": comparisons(parts)}


def _peak_tflops() -> float | None:
    peak = start_runtime().peak_flops(None)
    return peak / 1e12 if peak else None


def gpu_plans() -> dict:
    """The memory planner's estimate for the GPU cases on an H200, from their configs alone (the dry
    run's proof that they fit before any GPU is lent)."""
    from transformers import LlamaConfig

    plans = {}
    for case in gpu_cases().values():
        settings = _settings(Path("unused"), case)
        plan = plan_memory(settings, shape_from_config(LlamaConfig(**case["config"]), case["shape"]), 1,
                           torch.device("cuda"), H200_BYTES, "H200")
        plans[case["shape"]] = {"planned_memory_gb": round(plan.needed / GIB, 2), "fits": plan.advice is None}
    return plans


def check(dry_run: bool) -> dict:
    started = time.monotonic()
    cases = tiny_cases() if dry_run else gpu_cases()
    figures = {"device": device_name(), "torch": torch.__version__, "transformers": _version("transformers"),
               "peft": _version("peft"), "peak_tflops": _peak_tflops(),
               # What `fused_loss` runs: Liger's kernel when it is installed, else loss.py's chunks.
               "fused_loss_kernel": "liger" if importlib.util.find_spec("liger_kernel") else "chunked",
               "budget_s": DRY_RUN_BUDGET_S if dry_run else BUDGET_S,
               "cases": {name: {k: v for k, v in case.items() if k != "config"} for name, case in cases.items()}}
    figures.update(run_check(cases, 16 if dry_run else 256, Deadline(figures["budget_s"])))
    figures["seconds"] = round(time.monotonic() - started, 1)
    if dry_run:
        ran = [name for name, part in figures["parts"].items() if "error" not in part]
        figures.update(dry_run=True, gpu_plans=gpu_plans(),
                       counts={"parts": len(figures["parts"]), "parts_ran": len(ran)})
    return figures


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every part on a CPU with tiny shapes")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.workdir, json.loads(args.setup))))
        return
    figures = check(args.dry_run)
    if os.environ.get("OUT") and not args.dry_run:
        Path(os.environ["OUT"], "device-h200.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
