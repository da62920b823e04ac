"""Measures the peak memory of a short training run against the memory plan (argv: model folder, data
folder, output folder, settings as JSON). Prints one JSON line: measured and planned bytes.

The measure is the process's peak resident memory (VmHWM, reset through /proc/self/clear_refs just
before the trainer is built) minus its resident memory at that point: what the weights, gradients,
optimizer state and step buffers added."""

import gc
import json
import sys
from pathlib import Path

import psutil
import torch

from synthcpt.s6_train.data import PackedData, TokenStream
from synthcpt.s6_train.memory import Setup, estimate, model_shape, total
from synthcpt.s6_train.runtime import start_runtime
from synthcpt.s6_train.settings import TrainSettings
from synthcpt.s6_train.trainer import Trainer


def _peak_rss() -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) * 1024


if __name__ == "__main__":
    model, data_folder, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    settings = TrainSettings(model=model, checkpoint_every=10**9, **json.loads(sys.argv[4]))
    torch.set_num_threads(1)
    runtime = start_runtime()
    data = PackedData(TokenStream.open(data_folder), None, settings.block_size, False)
    planned = total(estimate(model_shape(model), Setup.of(settings, settings.micro_batch_size, 1, False)))
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # the peak restarts from the current resident memory
    before = psutil.Process().memory_info().rss
    trainer = Trainer(settings, data, model, out, 0, runtime)
    trainer.save_model = lambda target: None
    trainer.train()
    peak = _peak_rss()
    print(json.dumps({"measured": peak - before, "planned": planned}))
