"""The training loop: AdamW, warm-up then decay, clipping, accumulation, bf16 autocast, FSDP,
checkpoints with exact resume, JSONL log, and the final HF model folder.

The loss of a step is the mean over every target token of the whole batch (all micro-batches and
processes), as if the batch went through in one pass: each micro-batch's summed token loss is
divided by the batch's token count (transformers' `num_items_in_batch`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthcpt.atomic import write_json, write_text
from synthcpt.errors import SynthcptError
from synthcpt.progress import progress
from synthcpt.run_folder import ADAPTER_FOLDER, MODEL_FOLDER, TRAINING_LOG_FILE
from synthcpt.s6_train.checkpoint import full_model_state, resume, save_checkpoint
from synthcpt.s6_train.data import PackedData, sequence_order, stream_key
from synthcpt.s6_train.loss import distill_loss, fuse_loss
from synthcpt.s6_train.runtime import Runtime, decoder_layers, shard
from synthcpt.s6_train.schedule import learning_rate
from synthcpt.s6_train.settings import TrainSettings

TEACHER_KEYS = ("teacher_ids", "teacher_logprobs", "teacher_mask", "replay")
# Settings that change neither the data, the model nor the numbers: a checkpoint stays valid across them.
RESULT_NEUTRAL = {"checkpoint_every", "keep_checkpoints", "log_every", "peak_tflops", "memory_limit_gb"}


@dataclass(frozen=True)
class Plan:
    total_steps: int
    order: np.ndarray
    accumulation: int

    @property
    def replay_sequences(self) -> int:
        return int((self.order < 0).sum())


def make_plan(settings: TrainSettings, data: PackedData, seed: int, world_size: int) -> Plan:
    per_step = settings.micro_batch_size * world_size
    if settings.batch_size % per_step:
        raise SynthcptError(f"train.batch_size={settings.batch_size} is not a multiple of micro_batch_size × "
                            f"processes = {settings.micro_batch_size} × {world_size}")
    if settings.max_steps:
        total_steps = settings.max_steps
    else:
        replay = round(data.n_main * settings.replay_share / (1 - settings.replay_share)) if data.n_replay else 0
        total_steps = settings.epochs * (data.n_main + replay) // settings.batch_size
        if total_steps == 0:
            raise SynthcptError(f"{settings.epochs} epoch(s) of {data.n_main + replay} sequences make less than "
                                f"one batch of {settings.batch_size}: lower train.batch_size or set train.max_steps")
    order = sequence_order(data.n_main, data.n_replay, settings.replay_share, total_steps * settings.batch_size, seed)
    return Plan(total_steps=total_steps, order=order, accumulation=settings.batch_size // per_step)


def compute_dtype(settings: TrainSettings, runtime: Runtime) -> torch.dtype:
    if settings.precision == "bf16" or (settings.precision == "auto" and runtime.device.type == "cuda"):
        return torch.bfloat16
    return torch.float32


def load_model(path: str, settings: TrainSettings, runtime: Runtime, dtype: torch.dtype):
    """The causal LM on the training device: fp32 master weights for full training; under LoRA a
    frozen base in the compute dtype with fp32 adapters (and embeddings, when trained). The third
    value is the holder of the teacher's rows when the objective is distillation."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype if settings.lora.enabled else torch.float32,
                                                     attn_implementation=settings.attention)
    except ValueError as e:
        message = str(e).splitlines()[0]
        if "Unrecognized configuration class" in message or "does not appear to have" in message:
            raise SynthcptError(f"{path} is not a causal language model ({message[:160]})") from None
        raise SynthcptError(f"cannot load the model {path}: {message[:200]}") from None
    except (OSError, ImportError) as e:
        raise SynthcptError(f"cannot load the model {path}: {str(e).splitlines()[0][:200]}") from None
    model.config.use_cache = False
    if settings.gradient_checkpointing:
        enable_checkpointing(model, settings.checkpoint_every_k_layers)
    if settings.lora.enabled:
        add_lora(model, settings.lora)
    distill = None
    if settings.objective == "distill":
        distill = distill_loss(model, settings.distill.ce_weight, use_liger=runtime.device.type == "cuda")
    elif settings.fused_loss:
        fuse_loss(model, use_liger=runtime.device.type == "cuda")
    model.to(runtime.device)
    return model, config, distill


def enable_checkpointing(model, every_k: int) -> None:
    """Recompute the activations of every k-th decoder layer (0, k, 2k, ...) in the backward pass:
    k = 1 is full checkpointing; a larger k trades memory back for speed."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    for index, layer in enumerate(decoder_layers(model)):
        layer.gradient_checkpointing = index % every_k == 0


def add_lora(model, lora) -> None:
    """peft's LoRA layers injected in place (the model keeps its class and its state-dict names, plus
    `.base_layer` and the `lora_A/B` matrices); only adapters (and embeddings, if set) train, in fp32."""
    from peft import LoraConfig, inject_adapter_in_model

    try:
        inject_adapter_in_model(LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                           target_modules=lora.target_modules, bias="none"), model)
    except ValueError as e:
        raise SynthcptError(f"train.lora.target_modules={lora.target_modules}: {str(e).splitlines()[0][:200]}") from None
    embeddings = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    for name, param in model.named_parameters():
        param.requires_grad = "lora_" in name or (lora.train_embeddings and id(param) in embeddings)
        if param.requires_grad:
            param.data = param.data.float()


def merge_lora(state: dict[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """A state dict with LoRA layers as the plain model's: W + scaling · B A under the original name."""
    merged = {}
    for key, value in state.items():
        if ".lora_" in key:
            continue
        if ".base_layer." in key:
            prefix, _, leaf = key.rpartition(".base_layer.")
            if leaf == "weight":
                a, b = state[f"{prefix}.lora_A.default.weight"], state[f"{prefix}.lora_B.default.weight"]
                value = (value.float() + scaling * (b.float() @ a.float())).to(value.dtype)
            key = f"{prefix}.{leaf}"
        merged[key] = value
    return merged


def save_adapter(state: dict[str, torch.Tensor], model, lora, base_model: str, target: Path) -> None:
    """The adapters alone, as peft saves them (adapter_config.json, adapter_model.safetensors), so
    `PeftModel.from_pretrained(base, target)` rebuilds the trained model; trained embeddings go in as
    `modules_to_save` (both the input embedding and the head, which stay equal where they are tied)."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    tensors = {f"base_model.model.{key.replace('.default.', '.')}": value
               for key, value in state.items() if ".lora_" in key}
    modules_to_save = None
    if lora.train_embeddings:
        names = {id(module): name for name, module in model.named_modules()}
        embedding = names[id(model.get_input_embeddings())]
        modules_to_save = []
        for module in (model.get_input_embeddings(), model.get_output_embeddings()):
            name = names[id(module)]
            # A tied head is left out of the state dict; its weight is the input embedding's.
            tensors[f"base_model.model.{name}.weight"] = state.get(f"{name}.weight", state[f"{embedding}.weight"])
            modules_to_save.append(name.rpartition(".")[2])
    staging = target.parent / f".{target.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
               bias="none", modules_to_save=modules_to_save, task_type="CAUSAL_LM",
               base_model_name_or_path=base_model).save_pretrained(staging)
    # Copies: a tied head and embedding are one tensor, which safetensors refuses to store twice.
    save_file({key: value.detach().float().clone() for key, value in tensors.items()},
              staging / "adapter_model.safetensors")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


def flops_per_token(model, block_size: int) -> float:
    """Training FLOPs per token: 6 N for the matmuls (N excludes an untied embedding lookup) plus
    attention, 12 · layers · width · sequence length (PaLM, appendix B)."""
    config = model.config
    n_params = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight
    if not config.tie_word_embeddings:
        n_params -= embedding.numel()
    layers = getattr(config, "num_hidden_layers", 0)
    width = getattr(config, "num_attention_heads", 0) * (getattr(config, "head_dim", None)
                                                          or config.hidden_size // max(1, config.num_attention_heads))
    return 6 * n_params + 12 * layers * width * block_size


def build_optimizer(model, settings: TrainSettings, runtime: Runtime) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (not on norms and biases); fused kernels. Each group's
    `lr_scale` is its peak over train.lr: under LoRA the adapters train at lora.lr, the embeddings
    and head at lora.embedding_lr."""
    embeddings = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    peaks = {"main": settings.lora.lr if settings.lora.enabled else settings.lr,
             "embedding": settings.lora.embedding_lr if settings.lora.enabled else settings.lr}
    groups: dict[tuple[str, bool], list] = {}
    for param in model.parameters():
        if param.requires_grad:
            kind = "embedding" if id(param) in embeddings else "main"
            groups.setdefault((kind, param.ndim >= 2), []).append(param)
    param_groups = [{"params": params, "weight_decay": settings.weight_decay if matrix else 0.0,
                     "lr_scale": peaks[kind] / settings.lr, "lr": peaks[kind]}
                    for (kind, matrix), params in sorted(groups.items(), key=lambda kv: (kv[0][0] != "main", not kv[0][1]))]
    return torch.optim.AdamW(param_groups, lr=settings.lr, betas=settings.betas, fused=True)


def training_key(settings: TrainSettings, data: PackedData, seed: int, model_path: str) -> str:
    described = {k: v for k, v in settings.model_dump(mode="json").items() if k not in RESULT_NEUTRAL}
    return stream_key({"settings": described, "seed": seed, "model": model_path,
                       "main": data.main.meta["key"], "replay": data.replay.meta["key"] if data.replay else None})


def _truncate_log(log_path: Path, step: int) -> None:
    """Keep the log lines up to the resumed step, so the log reads as one uninterrupted run."""
    kept = []
    if log_path.is_file():
        for line in log_path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (ValueError, KeyError):
                break
    write_text(log_path, "".join(line + "\n" for line in kept))


def _tied_output_keys(model) -> set[str]:
    """The output embedding's key when it is tied to the input embedding (a gathered FSDP state
    dict holds it as a separate copy, which would double the embedding in the saved folder)."""
    if not getattr(model.config, "tie_word_embeddings", False):
        return set()
    head = model.get_output_embeddings()
    return {f"{name}.weight" for name, module in model.named_modules() if module is head and name}


def _out_of_memory(settings: TrainSettings) -> SynthcptError:
    advice = "lower train.micro_batch_size" + ("" if settings.gradient_checkpointing
                                                else " or set train.gradient_checkpointing=true")
    return SynthcptError(f"out of memory at train.micro_batch_size={settings.micro_batch_size}, "
                         f"block_size={settings.block_size}: {advice}")


class Trainer:
    def __init__(self, settings: TrainSettings, data: PackedData, model_path: str, out: Path, seed: int, runtime: Runtime):
        self.settings, self.data, self.out, self.seed, self.runtime = settings, data, out, seed, runtime
        self.model_path = model_path
        self.plan = make_plan(settings, data, seed, runtime.world_size)
        self.dtype = compute_dtype(settings, runtime)
        torch.manual_seed(seed)
        self.model, self.base_config, self.distill = load_model(model_path, settings, runtime, self.dtype)
        self.flops_per_token = flops_per_token(self.model, settings.block_size)
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.n_trained = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        if settings.compile:
            for layer in decoder_layers(self.model):
                layer.compile()
        shard(self.model, runtime, self.dtype if self.dtype != torch.float32 else None)
        self.optimizer = build_optimizer(self.model, settings, runtime)
        self.key = training_key(settings, data, seed, model_path)
        self.log_path = out / TRAINING_LOG_FILE

    def _lr(self, step: int) -> float:
        s = self.settings
        return learning_rate(step, self.plan.total_steps, s.lr, s.schedule, s.warmup_share, s.min_lr_ratio,
                             s.decay_share)

    def _autocast(self):
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.runtime.device.type, dtype=self.dtype)

    def _step(self, step: int) -> tuple[float, float]:
        """One optimizer step over the batch of `step`; returns (mean token loss, gradient norm)."""
        s, runtime = self.settings, self.runtime
        ids = self.plan.order[step * s.batch_size:(step + 1) * s.batch_size]
        n_targets = torch.tensor(max(1, self.data.n_target_tokens(ids)), device=runtime.device)
        local = ids[runtime.rank::runtime.world_size]
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(step) * group["lr_scale"]
        loss_sum = torch.zeros((), device=runtime.device)
        for start in range(0, len(local), s.micro_batch_size):
            batch = {k: torch.from_numpy(v).to(runtime.device)
                     for k, v in self.data.batch(local[start:start + s.micro_batch_size]).items()}
            if self.distill is not None:
                self.distill.set(*(batch.pop(k) for k in TEACHER_KEYS))
            with self._autocast():
                loss = self.model(**batch, num_items_in_batch=n_targets).loss
            # FSDP averages gradients over processes; each process's loss is its share of the sum.
            (loss * runtime.world_size).backward()
            loss_sum += loss.detach()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.max_grad_norm)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return runtime.sum(loss_sum).item(), grad_norm.item()

    def _guarded_step(self, step: int) -> tuple[float, float]:
        try:
            loss, grad_norm = self._step(step)
        except torch.OutOfMemoryError:
            raise _out_of_memory(self.settings) from None
        except RuntimeError as e:
            if "can't allocate memory" in str(e) or "out of memory" in str(e):
                raise _out_of_memory(self.settings) from None
            raise
        if not math.isfinite(loss):
            raise SynthcptError(f"the loss is {loss} at step {step + 1}: lower train.lr or check the data")
        return loss, grad_norm

    def _first_logged_loss(self) -> float | None:
        """The loss of the first step, from the log (a resumed run did not compute it)."""
        if not self.log_path.is_file():
            return None
        with open(self.log_path) as log:
            first = log.readline()
        return json.loads(first)["loss"] if first else None

    def _mfu(self, tokens_per_s: float, peak: float | None) -> float | None:
        return tokens_per_s * self.flops_per_token / (peak * self.runtime.world_size) if peak else None

    def train(self) -> dict[str, Any]:
        s, runtime, plan = self.settings, self.runtime, self.plan
        checkpoint_dir = self.out / "checkpoints"
        state = resume(checkpoint_dir, self.model, self.optimizer, self.key, runtime)
        start_step = state["step"] if state else 0
        if runtime.is_main:
            _truncate_log(self.log_path, start_step)
        tokens_per_step = s.batch_size * s.block_size
        peak = runtime.peak_flops(s.peak_tflops)
        losses: list[float] = []
        throughput: list[float] = []
        started = window_start = time.perf_counter()
        window_steps = 0
        # Only the main process logs and shows progress.
        with (open(self.log_path, "a") if runtime.is_main else nullcontext()) as log, \
                (progress() if runtime.is_main else nullcontext()) as bar:
            task = None if bar is None else bar.add_task("training", total=plan.total_steps, completed=start_step)
            for step in range(start_step, plan.total_steps):
                loss, grad_norm = self._guarded_step(step)
                losses.append(loss)
                window_steps += 1
                done = step + 1
                if done % s.log_every == 0 or done == plan.total_steps:
                    tokens_per_s = window_steps * tokens_per_step / (time.perf_counter() - window_start)
                    throughput.append(tokens_per_s)
                    mfu = self._mfu(tokens_per_s, peak)
                    record = {"step": done, "tokens": done * tokens_per_step, "loss": loss, "lr": self.optimizer.param_groups[0]["lr"],
                              "grad_norm": grad_norm, "tokens_per_s": round(tokens_per_s, 1),
                              "mfu": mfu and round(mfu, 4)}
                    if log is not None:
                        log.write(json.dumps(record) + "\n")
                        log.flush()
                        bar.update(task, description=f"training  loss {loss:.3f}  lr {record['lr']:.2e}  "
                                                     f"{tokens_per_s:,.0f} tok/s" + (f"  mfu {mfu:.1%}" if mfu else ""))
                    window_start, window_steps = time.perf_counter(), 0
                if bar is not None:
                    bar.update(task, completed=done)
                if done % s.checkpoint_every == 0 and done < plan.total_steps:
                    save_checkpoint(checkpoint_dir, done, self.model, self.optimizer,
                                    {"key": self.key, "world_size": runtime.world_size}, runtime, s.keep_checkpoints)
                    window_start = time.perf_counter()
        self.save_model(self.out / MODEL_FOLDER)
        mean_tps = float(np.mean(throughput[1:] or throughput)) if throughput else 0.0
        return {"steps": plan.total_steps, "resumed_from_step": start_step,
                "tokens": plan.total_steps * tokens_per_step, "sequences": len(plan.order),
                "replay_sequences": plan.replay_sequences, "main_blocks": self.data.n_main,
                "replay_blocks": self.data.n_replay, "first_loss": self._first_logged_loss(),
                "final_loss": losses[-1] if losses else None, "tokens_per_s": round(mean_tps, 1),
                "mfu": round(self._mfu(mean_tps, peak), 4) if peak else None,
                "parameters": self.n_params, "trained_parameters": self.n_trained,
                "processes": runtime.world_size, "device": runtime.device.type,
                "seconds": round(time.perf_counter() - started, 1)}

    def save_model(self, target: Path) -> None:
        """The trained model as an HF folder (safetensors, config in the base model's dtype, tokenizer);
        LoRA adapters merged into the weights, so the folder is a plain model."""
        from transformers import AutoTokenizer

        model_state = full_model_state(self.model) if self.runtime.distributed else None
        if self.runtime.is_main:
            dtype = getattr(self.base_config, "dtype", None) or torch.float32
            dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
            model = getattr(self.model, "_orig_mod", self.model)
            state = model_state if model_state is not None else model.state_dict()
            if self.settings.lora.enabled:
                save_adapter(state, model, self.settings.lora, self.model_path, self.out / ADAPTER_FOLDER)
                state = merge_lora(state, self.settings.lora.alpha / self.settings.lora.rank)
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()
                     if k not in _tied_output_keys(model)}
            staging = target.parent / f".{target.name}.partial"
            shutil.rmtree(staging, ignore_errors=True)
            model.config.use_cache = True
            model.save_pretrained(staging, state_dict=state, safe_serialization=True)
            # FSDP renames the class (FSDPLlamaForCausalLM); loaders need the original architecture.
            config_path = staging / "config.json"
            config = json.loads(config_path.read_text())
            config.update(architectures=self.base_config.architectures, dtype=str(dtype).removeprefix("torch."))
            write_json(config_path, config)
            AutoTokenizer.from_pretrained(self.model_path).save_pretrained(staging)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
        self.runtime.barrier()
