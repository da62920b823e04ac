"""Benchmark of the log-likelihood multiple-choice scorer (synthcpt eval, method loglik).

The same requests (question context, options as continuations) are scored three ways with the
embedded model, in this run:
- synthcpt's packed scorer (a question and its options in one forward, rows batched);
- a naive per-option forward pass (one `context + option` sequence at a time);
- lm-eval-harness's HF backend (`HFLM.loglikelihood`), when `lm_eval` is installed (a bench-only
  dependency: pip install lm_eval); it runs offline on the local model folder.
Accuracy must be identical across them. Prints questions per second and the ratios; the last stdout
line is one JSON object.

    python bench/eval.py --quick     # the demo's 50 questions
    python bench/eval.py             # QuALITY from ../shared/data/leval (202 questions) when present
    python bench/eval.py --dry-run   # the questions, requests and model folder, no model loaded
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# Imported here, not where they are called, so that a rename breaks `--dry-run` too.
from synthcpt.models import prepare
from synthcpt.questions import load_qa_file, multi_answer_sets
from synthcpt.s7_eval.loglik import LoglikScorer
from synthcpt.s7_eval.methods.loglik import choice_requests
from synthcpt.s7_eval.prompts import EvalPrompts
from synthcpt.s7_eval.records import choice_records

DEMO = ROOT / "examples" / "quality" / "quality-demo.jsonl"
SHARED_QUALITY = ROOT.parent / "shared" / "data" / "leval" / "quality.jsonl"


def naive_scores(scorer, requests) -> list[list[float]]:
    """One forward pass per option, no batching, no sharing: what a first implementation does."""
    import torch

    results = []
    with torch.inference_mode():
        for request in requests:
            encoded = scorer.encode(request)
            row = []
            for option in encoded.continuations:
                ids = torch.tensor([encoded.context + option])
                logprobs = scorer.model(ids).logits[0].float().log_softmax(-1)
                start = len(encoded.context)
                row.append(sum(logprobs[start - 1 + k, t].item() for k, t in enumerate(option)))
            results.append(row)
    return results


def lm_eval_model(model_path: str, batch_size: int):
    """lm-eval-harness's HF backend on the local folder, or None when lm_eval is not installed."""
    try:
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        return None
    return HFLM(pretrained=model_path, device="cpu", dtype="float32", batch_size=batch_size)


def lm_eval_scores(lm, requests) -> list[list[float]]:
    from lm_eval.api.instance import Instance

    instances, shape = [], []
    for request in requests:
        shape.append(len(request.continuations))
        instances += [Instance(request_type="loglikelihood", doc={}, arguments=(request.context, option),
                               idx=len(instances)) for option in request.continuations]
    flat = [ll for ll, _ in lm.loglikelihood(instances, disable_tqdm=True)]
    results, at = [], 0
    for n in shape:
        results.append(flat[at:at + n])
        at += n
    return results


def accuracy(items, scores) -> tuple[float, float, list[str]]:
    records = choice_records("bench", "loglik", items, scores, multi_answer_sets(items))
    n = len(records)
    return (sum(r["acc"] for r in records) / n, sum(r["acc_norm"] or 0 for r in records) / n,
            [r["predicted"] for r in records])


def timed(repeats: int, function, *args):
    """The result and the fastest of `repeats` runs (the machine may be shared: the minimum is the
    least disturbed measurement)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
    return result, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the demo's 50 questions")
    parser.add_argument("--batch-size", type=int, default=16, help="lm-eval-harness HF batch size")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs of each scorer, fastest kept "
                        "(default: 2 with --quick, else 3)")
    parser.add_argument("--dry-run", action="store_true", help="build the questions' requests and find the model "
                        "folder, then stop before loading the model")
    args = parser.parse_args()

    source = DEMO if args.quick or not SHARED_QUALITY.is_file() else SHARED_QUALITY
    items = load_qa_file(source)
    requests = choice_requests(items, EvalPrompts(), with_source=True)
    options = sum(len(r.continuations) for r in requests)
    model_path = str(prepare())
    if args.dry_run:
        print(json.dumps({"bench": "eval", "dry_run": True, "source": source.name, "model": model_path,
                          "lm_eval_installed": importlib.util.find_spec("lm_eval") is not None,
                          "counts": {"questions": len(items), "options": options}}))
        return
    scorer = LoglikScorer(model_path)
    scorer.score(requests[:2])  # warm-up: first-call allocations are not what we measure

    repeats = args.repeats or (2 if args.quick else 3)
    ours, ours_s = timed(repeats, scorer.score, requests)
    naive, naive_s = timed(repeats, naive_scores, scorer, requests)
    del scorer
    harness_model = lm_eval_model(model_path, args.batch_size)
    harness, harness_s = (timed(repeats, lm_eval_scores, harness_model, requests) if harness_model is not None
                          else (None, 0.0))

    figures: dict = {"questions": len(items), "options": options,
                     "source": source.name, "repeats": repeats, "ours_s": round(ours_s, 2), "naive_s": round(naive_s, 2),
                     "ours_questions_per_s": round(len(items) / ours_s, 2),
                     "naive_questions_per_s": round(len(items) / naive_s, 2),
                     "speedup_vs_naive": round(naive_s / ours_s, 2)}
    acc, acc_norm, predicted = accuracy(items, ours)
    naive_acc, naive_acc_norm, naive_predicted = accuracy(items, naive)
    figures.update(acc=round(acc, 4), acc_norm=round(acc_norm, 4),
                   max_abs_logprob_diff_vs_naive=max(abs(a - b) for x, y in zip(ours, naive) for a, b in zip(x, y)))
    identical = (acc, acc_norm, predicted) == (naive_acc, naive_acc_norm, naive_predicted)
    if harness is None:
        figures["lm_eval"] = "not installed (pip install lm_eval)"
    else:
        harness_acc, harness_acc_norm, harness_predicted = accuracy(items, harness)
        identical &= (acc, acc_norm, predicted) == (harness_acc, harness_acc_norm, harness_predicted)
        figures.update(lm_eval_s=round(harness_s, 2), lm_eval_questions_per_s=round(len(items) / harness_s, 2),
                       speedup_vs_lm_eval=round(harness_s / ours_s, 2), lm_eval_batch_size=args.batch_size,
                       max_abs_logprob_diff_vs_lm_eval=max(abs(a - b) for x, y in zip(ours, harness)
                                                           for a, b in zip(x, y)))
    figures["identical_accuracy"] = identical
    print(f"synthcpt packed scorer: {figures['ours_questions_per_s']} questions/s; naive per-option: "
          f"{figures['naive_questions_per_s']}; lm-eval-harness HF: {figures.get('lm_eval_questions_per_s', '-')}")
    print(json.dumps(figures))
    if not identical:
        sys.exit("accuracy differs between the scorers")


if __name__ == "__main__":
    main()
