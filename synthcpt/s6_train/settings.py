"""The train stage's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from synthcpt.plugins import GENERATORS
from synthcpt.section import Section


class LoraSettings(Section):
    """Low-rank adapters for continued pretraining (peft). Defaults follow "LoRA Learns Less and Forgets
    Less" (Biderman et al. 2024), whose continued-pretraining runs needed every linear layer and a high
    rank, and Unsloth's continued-pretraining recipe for the embeddings (trained, at a tenth of the lr)."""

    enabled: bool = Field(False, description="Train low-rank adapters instead of every weight; they are merged "
                          "into the saved model folder, which loads with plain transformers.")
    rank: int = Field(256, gt=0, description="Adapter rank r (Biderman et al.: 256 for continued pretraining).")
    alpha: float = Field(512.0, gt=0, description="Adapter scale alpha (updates are scaled by alpha / rank; 2 × rank).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapters' input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Linear layers that get adapters: 'all-linear' (attention and MLP, not the "
        "output head) or a list of module names such as [q_proj, v_proj].")
    lr: float = Field(2e-4, gt=0, description="Peak learning rate of the adapters (train.lr is for full training).")
    train_embeddings: bool = Field(True, description="Also train the input embeddings and the output head (fully, "
                                   "as new knowledge brings new token statistics).")
    embedding_lr: float = Field(2e-5, gt=0, description="Peak learning rate of the embeddings and the head "
                                "(a tenth of the adapters': Unsloth's continued-pretraining recipe).")


class DistillSettings(Section):
    """Context distillation (`train.objective: distill`): the teacher is the base model with a record's
    source in its context, the student the model being trained without it, matched on the record's
    tokens. What the student reads follows `train.data`: 'mix' is prompt distillation's setup (Kujanpää
    et al., arXiv 2412.14964: text about a passage, written by the model that read it, with the passage
    as the teacher's context; QA records on their answers), 'raw' is Deep Context Distillation's (Caccia
    et al., arXiv 2503.08727: each chunk of the corpus with the chunks before it as the teacher's
    context). The teacher never sees the text it predicts: a copying teacher teaches nothing."""

    top_k: int = Field(20, gt=0, le=1000, description="Teacher log-probabilities kept per token (the rest of "
                       "its mass is one tail bin, so the loss is an exact KL of the coarsened distributions).")
    ce_weight: float = Field(0.0, ge=0, description="Weight of next-token cross-entropy added to the KL (the "
                             "papers train on the KL alone).")
    qa_answers_only: bool = Field(True, description="QA records carry the loss on their answers only, as in "
                                  "prompt distillation; false: on the question too.")
    context_tokens: int = Field(2048, gt=0, description="Most tokens of the teacher's context: a source "
                                "document keeps its beginning, the chunks before a chunk their end.")
    teacher_batch_tokens: int = Field(8192, gt=0, description="Tokens per forward pass of the teacher over "
                                      "the records that share one context (its KV cache computed once).")


class TrainSettings(Section):
    model: str = Field("default", description="Base model: 'default' (embedded SmolLM2-135M-Instruct), an HF "
                       "folder or a hub id; any causal LM that transformers loads.")
    data: Literal["mix", "raw", "instructions"] = Field(
        "mix", description="Training data: 'mix' (generate/mix, the synthetic corpus), 'raw' (the ingested "
        "corpus alone, the raw-CPT baseline) or 'instructions' (generate/instructions pairs, loss on responses).")
    objective: Literal["next_token", "distill"] = Field(
        "next_token", description="'next_token': cross-entropy on the text; 'distill': match the base model "
        "reading each record's source (train.distill).")
    distill: DistillSettings = Field(default_factory=DistillSettings, description="Context distillation, "
                                     "with train.objective=distill.")
    generators: list[str] | None = Field(
        None, min_length=1, description="With data 'mix': train only on the mix records of these generators ('raw' is the "
        "corpus copies), e.g. [entigraph] or [wrap] to compare generators at equal tokens; null: all of them.")
    replay_path: str | None = Field(None, description="General text mixed in as replay to limit forgetting: "
                                    "a local .jsonl/.parquet with a text field, .txt/.md, or a folder of them; or "
                                    "a hub dataset id, 'name' or 'name:config', streamed; null for no replay.")
    replay_max_documents: int = Field(20_000, gt=0, description="A streamed replay dataset: documents read from "
                                      "its start (train and held-out together).")
    replay_share: float = Field(0.1, ge=0, lt=1, description="Share of training sequences taken from the "
                                "replay text (EntiGraph: 10%).")
    replay_heldout_share: float = Field(0.1, ge=0, lt=1, description="Share of replay documents kept out of "
                                        "training; evaluation measures forgetting on them.")
    earlier_rounds_replay: float = Field(
        0.5, ge=0, description="A later round (run.rounds): tokens of the earlier rounds' mix trained on again per "
        "token of the round's new text, so what the model learned before is not overwritten (0: new text alone).")
    block_size: int = Field(2048, gt=1, description="Tokens per packed training sequence.")
    batch_size: int = Field(16, gt=0, description="Sequences per optimizer step, over all GPUs.")
    micro_batch_size: int | Literal["auto"] = Field(
        2, description="Sequences per forward pass on one device; the rest of the batch is gradient "
        "accumulation. 'auto': the largest that the memory plan fits into the device (synthcpt plan train).")
    epochs: int = Field(2, gt=0, description="Passes over the training data (ignored when max_steps is set).")
    max_steps: int | None = Field(None, gt=0, description="Optimizer steps to train for, repeating the data "
                                  "as needed; null: as many as the epochs give.")
    lr: float = Field(5e-6, gt=0, description="Peak learning rate (EntiGraph, Llama 3 8B: 5e-6).")
    schedule: Literal["cosine", "constant", "wsd"] = Field(
        "cosine", description="After warm-up: cosine decay to the floor, constant, or warm-up-stable-decay "
        "(constant, then a linear decay to the floor over the last decay_share of steps).")
    warmup_share: float = Field(0.05, ge=0, lt=1, description="Share of steps of linear warm-up (re-warming "
                                "the learning rate; EntiGraph: 5%).")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Floor of the decay, times the peak learning rate.")
    decay_share: float = Field(0.2, gt=0, le=1, description="wsd schedule: share of steps of the final decay.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (matrices only, not norms/biases).")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping: largest global gradient norm.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="Compute precision: 'auto' is bf16 autocast on a GPU (fp32 weights and optimizer) "
        "and fp32 on a CPU.")
    attention: Literal["sdpa", "flash_attention_2", "eager"] = Field(
        "sdpa", description="Attention implementation (transformers' attn_implementation).")
    document_attention: bool = Field(False, description="No attention across the documents packed into one "
                                     "sequence (position ids restart at each document).")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass: "
                                         "less memory, about a third more compute.")
    checkpoint_every_k_layers: int = Field(1, gt=0, description="With gradient_checkpointing: recompute only "
                                           "every k-th decoder layer (selective checkpointing; 1 = all layers).")
    compile: bool = Field(False, description="torch.compile each decoder layer (faster on GPUs after a "
                          "warm-up); works with FSDP and gradient accumulation.")
    fused_loss: bool = Field(True, description="Compute the loss chunk by chunk fused with the output "
                             "projection, never holding all [tokens, vocab] logits (Liger's kernel on a GPU "
                             "when liger-kernel is installed); false: transformers' plain loss.")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="Low-rank adapters instead of full "
                               "training.")
    memory_limit_gb: float | None = Field(None, gt=0, description="Memory one device may use, GiB, for the "
                                          "memory plan; null: the GPU's total memory, or the available RAM.")
    checkpoint_every: int = Field(500, gt=0, description="Save a resumable checkpoint every this many steps.")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept; older ones are deleted (the "
                                  "previous one is the fallback when the latest is corrupt).")
    log_every: int = Field(1, gt=0, description="Write a line to log.jsonl every this many steps.")
    peak_tflops: float | None = Field(None, gt=0, description="Peak dense bf16 TFLOP/s of one device, for "
                                      "MFU; null: known GPUs are detected, other devices report no MFU.")

    @model_validator(mode="after")
    def _schedule_fits(self) -> TrainSettings:
        if self.schedule == "wsd" and self.warmup_share + self.decay_share > 1:
            raise ValueError("warmup_share + decay_share must not exceed 1 for the wsd schedule")
        if isinstance(self.micro_batch_size, int) and self.micro_batch_size < 1:
            raise ValueError("micro_batch_size must be a positive integer or 'auto'")
        if self.objective == "distill" and self.data == "instructions":
            raise ValueError("train.objective=distill reads mix records or the corpus (train.data mix or raw), "
                             "not instruction pairs")
        if self.generators is not None and self.data != "mix":
            raise ValueError(f"train.generators selects mix records; it does not apply to data '{self.data}'")
        return self

    @field_validator("generators")
    @classmethod
    def _canonical_selection(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - {*GENERATORS.names(), "raw"})
        if unknown:
            raise ValueError(f"unknown generators {unknown}; known: {', '.join([*GENERATORS.names(), 'raw'])}")
        return sorted(set(value))  # the same selection, the same fingerprint
