"""Stage 6, eval: closed-book QA of the base and the trained model on the corpus' questions.

Outputs in `run_dir/eval/`: `results.json` (scores with bootstrap intervals, paired differences to the
base model, per-document accuracy, perplexity on held-out general text) and `questions.parquet`
(one row per model, method and question).
"""
