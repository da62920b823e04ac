"""Stage 6, eval: closed-book QA of the base and the trained model on the corpus' questions.

Outputs in `run_dir/eval/`: `results.json` (scores with bootstrap intervals, paired differences to the
base model, per-document accuracy, perplexity on held-out general text) and `questions.parquet`
(one row per model, method and question).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from synthcpt.pipeline import Stage, files_fingerprint
from synthcpt.section import Section


class EvalSettings(Section):
    methods: list[Literal["loglik", "open_book", "generative"]] = Field(
        ["loglik"], min_length=1,
        description="'loglik': options scored by log-likelihood (acc, acc_norm); 'open_book': the same with the "
                    "document in the prompt, the reference to compare to (minutes per model on a CPU); "
                    "'generative': few-shot chain-of-thought through the engine (the EntiGraph protocol).")
    qa_files: list[Path] = Field(
        default_factory=list,
        description="More question files (L-Eval, original QuALITY or simple JSONL: question, options, answer or "
                    "answers, doc_id), evaluated with the questions the ingest stage kept aside.")
    source_line: bool = Field(True, description="Prefix each question with a line naming its document: title, "
                              "author and year (EntiGraph protocol).")
    batch_tokens: int = Field(2048, gt=0, description="Log-likelihood: tokens per forward pass (rows x longest row).")
    row_tokens: int = Field(512, gt=0, description="Log-likelihood: questions and their options are packed into "
                            "rows of at most this many tokens.")
    cot_shots: int = Field(5, ge=0, le=5, description="Generative: worked examples in the prompt (EntiGraph: 5).")
    samples: int = Field(1, ge=1, description="Generative: answers sampled per question (accuracy is their mean).")
    temperature: float = Field(0.0, ge=0, description="Generative: sampling temperature (0: greedy; set it "
                               "above 0 when samples > 1).")
    max_tokens: int = Field(384, gt=0, description="Generative: tokens of reasoning and answer per sample.")
    bootstrap_resamples: int = Field(1000, ge=100, description="Bootstrap resamples of the questions for the "
                                     "confidence intervals.")
    confidence: float = Field(0.95, gt=0, lt=1, description="Level of the bootstrap confidence intervals.")
    perplexity_window: int = Field(1024, gt=1, description="Forgetting check: tokens per perplexity window.")
    perplexity_max_tokens: int = Field(50_000, gt=0, description="Forgetting check: at most this many tokens "
                                       "of held-out general text.")

    @model_validator(mode="after")
    def _sampling_varies(self) -> EvalSettings:
        if self.samples > 1 and self.temperature == 0:
            raise ValueError("samples > 1 needs temperature > 0 (greedy samples are all the same)")
        return self


def _input_fingerprint(config) -> str:
    """The extra question files: paths, sizes and modification times."""
    return files_fingerprint(config.eval.qa_files)


STAGE = Stage(
    name="eval",
    help="closed-book QA of the base and trained models: log-likelihood, open-book reference, chain-of-thought",
    settings=EvalSettings,
    run="synthcpt.s6_eval.stage:run",
    uses=("engine",),
    external_inputs=_input_fingerprint,
    show="synthcpt.s6_eval.stage:show",
)
