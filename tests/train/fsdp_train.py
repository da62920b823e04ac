"""Trains a model folder on a parquet file, alone or under `torchrun` (argv: model, parquet, output
folder, optional JSON of settings that replace the defaults below)."""

import json
import os
import sys
from pathlib import Path

from synthcpt.s6_train.settings import TrainSettings
from synthcpt.s6_train.training import train_on_files

if __name__ == "__main__":
    overrides = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    settings = TrainSettings(**{"model": sys.argv[1], "block_size": 64, "batch_size": 4, "micro_batch_size": 1,
                                "max_steps": 6, "lr": 1e-3, "checkpoint_every": 3, **overrides})
    stats = train_on_files(settings, [Path(sys.argv[2])], Path(sys.argv[3]), seed=0)
    # Every rank reports on the one stdout torchrun hands its workers: one os.write of a line shorter
    # than PIPE_BUF is atomic, where print's buffered writes of two ranks can interleave on one line.
    os.write(1, (stats.model_dump_json() + "\n").encode())
