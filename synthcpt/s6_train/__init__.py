"""Stage 5, train: continued pretraining on the synthetic mix (or the raw corpus, or instruction pairs).

Outputs in `run_dir/train/`: the HF model folder `model/`, `checkpoints/`, `log.jsonl`, `stats.json`.
"""
