"""Memory planned before anything is loaded: from the model's config alone and the train settings.

For `synthcpt plan train`, call `plan_rows(config)` with the loaded synthcpt config: it returns
`(what, amount)` rows to print as a two-column table (weights, gradients, optimizer state,
activations per micro-batch, loss buffer, total, the device's memory, the micro-batch chosen, and
the verdict: "fits", or the one-line advice of what would fit). It loads no weights; it raises
`SynthcptError` only for a model whose config cannot be read.

The train stage calls `fit_memory(settings, model_path, runtime)` before loading the model: it
returns the settings with `micro_batch_size` resolved ('auto' becomes the largest that fits) or
raises `SynthcptError` with one line saying what does not fit and what would.

The figures are bytes of tensors alive at the peak of a step (the backward pass of the first
layer): fp32 master weights, fp32 gradients and AdamW's two fp32 moments (divided over processes
under FSDP), bf16 copies of the weights under autocast, the tensors each decoder layer saves for
its backward pass (counted per op for Llama-style blocks: RMSNorm, q/k/v, RoPE, SDPA's flash or
memory-efficient kernel, which keep no [sequence, sequence] matrix, SwiGLU), and the loss's
buffers. Allocator caching and fragmentation are not in it: `fit_memory` keeps 10% spare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from synthcpt.errors import SynthcptError
from synthcpt.s6_train.settings import TrainSettings
from synthcpt.stage import Config

GIB = 2**30
SPARE = 0.9  # share of the device's memory the plan may fill (allocator caching, fragmentation)
CUDA_OVERHEAD = 1 * GIB  # CUDA context, cuBLAS workspaces, kernels: outside torch's allocations


@dataclass(frozen=True)
class Shape:
    """What memory depends on, read from the config (a model on the meta device: no weights)."""

    name: str
    n_params: int
    n_embedding: int  # input embedding (and the head when untied): trained at embedding_lr under LoRA
    tied: bool
    vocab: int
    hidden: int
    intermediate: int
    n_layers: int
    q_width: int  # heads × head_dim
    kv_width: int  # key-value heads × head_dim
    linear_shapes: tuple[tuple[str, int, int], ...]  # (module name, in, out) of the linear layers but the head

    def lora_targets(self, targets: list[str] | str) -> list[tuple[int, int]]:
        """(in, out) of the linear layers that get adapters (peft matches the last name component)."""
        return [(n_in, n_out) for name, n_in, n_out in self.linear_shapes
                if targets == "all-linear" or name.rsplit(".", 1)[-1] in targets]

    def lora_params(self, rank: int, targets: list[str] | str) -> int:
        return sum(rank * (n_in + n_out) for n_in, n_out in self.lora_targets(targets))


def model_shape(model_path: str) -> Shape:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError) as e:
        raise SynthcptError(f"cannot read the model config of {model_path}: {str(e).splitlines()[0][:200]}") from None
    return shape_from_config(config, model_path)


def shape_from_config(config, name: str) -> Shape:
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    embedding = model.get_input_embeddings().weight.numel()
    tied = head is not None and head.weight is model.get_input_embeddings().weight
    linear = tuple((n, m.in_features, m.out_features) for n, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear) and m is not head)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return Shape(name=name, n_params=sum(p.numel() for p in model.parameters()),
                 n_embedding=embedding + (0 if tied or head is None else head.weight.numel()), tied=tied,
                 vocab=text.vocab_size, hidden=text.hidden_size,
                 intermediate=getattr(text, "intermediate_size", None) or 4 * text.hidden_size,
                 n_layers=text.num_hidden_layers, q_width=heads * head_dim,
                 kv_width=(getattr(text, "num_key_value_heads", None) or heads) * head_dim, linear_shapes=linear)


@dataclass(frozen=True)
class Setup:
    """The settings memory depends on, resolved for one device."""

    micro_batch: int
    block_size: int
    compute_bytes: int  # 2 under bf16 autocast, 4 in fp32
    world_size: int
    cuda: bool
    lora: bool
    lora_rank: int
    lora_targets: list[str] | str
    lora_dropout: float
    train_embeddings: bool
    checkpointing: bool
    checkpoint_every: int
    fused_loss: bool
    document_attention: bool

    @classmethod
    def of(cls, settings: TrainSettings, micro_batch: int, world_size: int, cuda: bool) -> Setup:
        bf16 = settings.precision == "bf16" or (settings.precision == "auto" and cuda)
        return cls(micro_batch=micro_batch, block_size=settings.block_size, compute_bytes=2 if bf16 else 4,
                   world_size=world_size, cuda=cuda, lora=settings.lora.enabled, lora_rank=settings.lora.rank,
                   lora_targets=settings.lora.target_modules, lora_dropout=settings.lora.dropout,
                   train_embeddings=settings.lora.train_embeddings,
                   checkpointing=settings.gradient_checkpointing,
                   checkpoint_every=settings.checkpoint_every_k_layers, fused_loss=settings.fused_loss,
                   document_attention=settings.document_attention)


def trainable_params(shape: Shape, setup: Setup) -> int:
    if not setup.lora:
        return shape.n_params
    return shape.lora_params(setup.lora_rank, setup.lora_targets) + (shape.n_embedding if setup.train_embeddings else 0)


def residual_bytes(setup: Setup) -> int:
    """Bytes per element of the residual stream, and so of the hidden states reaching the loss: it
    follows the input embedding's dtype (embedding output + bf16 branches stay fp32 under autocast).
    That is fp32 master weights on one device; bf16 under FSDP's mixed precision, and under LoRA with
    the embeddings frozen in the compute dtype."""
    if setup.world_size > 1 or (setup.lora and not setup.train_embeddings):
        return setup.compute_bytes
    return 4


def layer_activation_bytes(shape: Shape, setup: Setup, tokens: int) -> int:
    """Bytes one decoder layer saves for its backward pass, for `tokens` tokens (Llama-style block)."""
    b = setup.compute_bytes
    h, q, kv, inter = shape.hidden, shape.q_width, shape.kv_width, shape.intermediate
    r = residual_bytes(setup)
    autocast = b == 2
    norm = (r + 4) * h + (4 * h if r == 2 else 0)  # input (and its fp32 copy), the normalised x for · weight
    attn_in = 3 * b * h if autocast else 4 * h  # autocast casts the input once per projection (q, k, v)
    mlp_in = 2 * b * h if autocast else 4 * h  # gate and up
    rope = 2 * b * (q + kv)  # q, k and their rotate_half
    sdpa = b * (q + 2 * kv + q) + 4 * (q // 64 + 1)  # q, k, v, output; the row log-sum-exp
    o_proj = b * q
    mlp = 4 * b * inter  # gate (SiLU input), SiLU output, up, down_proj input
    return tokens * (2 * norm + attn_in + rope + sdpa + o_proj + mlp_in + mlp + lora_activation_bytes(shape, setup))


def lora_activation_bytes(shape: Shape, setup: Setup) -> int:
    """Per token and layer: each adapter keeps its dropout mask, lora_A's input and lora_B's input."""
    if not setup.lora:
        return 0
    b = setup.compute_bytes
    dropout = setup.lora_dropout > 0
    per_input = (1 if dropout else 0) + (b if dropout or b == 2 else 0)  # without dropout on fp32 x is shared
    targets = shape.lora_targets(setup.lora_targets)
    return sum(per_input * n_in + b * setup.lora_rank for n_in, _ in targets) // max(1, shape.n_layers)


def loss_bytes(shape: Shape, setup: Setup, tokens: int) -> int:
    """The output projection and the loss: chunked (gradients of the chunk and the matrix) or full logits."""
    b, h, v = setup.compute_bytes, shape.hidden, shape.vocab
    low = b if b == 2 else 0  # a low-precision copy exists only under autocast
    if setup.fused_loss:
        from synthcpt.s6_train.loss import chunk_rows

        rows = chunk_rows(tokens, h, v)
        trained = not setup.lora or setup.train_embeddings
        # The matrix products run in bf16 under autocast (loss.py): the fp32 master matrix is cast to
        # bf16 (FSDP gathers it in bf16 already); a trained matrix gets an fp32 gradient, to which
        # each chunk adds its bf16 product.
        cast = low if trained and setup.world_size == 1 else 0
        matrix = cast + (4 + low if trained else 0)
        # + the hidden states and their gradient, in the residual stream's dtype; one chunk's fp32
        # logits (and their bf16 copy)
        return 2 * tokens * h * residual_bytes(setup) + v * h * matrix + rows * v * (4 + low)
    # logits (and their fp32 upcast) and log-softmax are kept; their gradient in the backward pass
    return tokens * v * (b + low * 2 + 8)


def estimate(shape: Shape, setup: Setup) -> list[tuple[str, int]]:
    """(what, bytes) at the peak of a training step on one device."""
    world = setup.world_size
    trainable = trainable_params(shape, setup)
    frozen = shape.n_params - trainable
    frozen_bytes = setup.compute_bytes if setup.lora else 4  # LoRA keeps the frozen base in the compute dtype
    rows = [("weights", (trainable * 4 + frozen * frozen_bytes) // world)]
    if setup.compute_bytes == 2 and world > 1:
        # FSDP gathers a layer's bf16 parameters (two in flight with prefetch) and keeps the root's.
        layer = (shape.n_params - shape.n_embedding) // max(1, shape.n_layers)
        rows.append(("gathered bf16 layers", 2 * (2 * layer + shape.n_embedding)))
    elif setup.compute_bytes == 2:
        rows.append(("bf16 copies of the weights", 2 * trainable))  # autocast's cache, alive until backward
    rows += [("gradients", trainable * 4 // world), ("optimizer state (AdamW)", trainable * 8 // world)]
    tokens = setup.micro_batch * setup.block_size
    per_layer = layer_activation_bytes(shape, setup, tokens)
    if setup.checkpointing:
        kept = math.ceil(shape.n_layers / setup.checkpoint_every)  # layers 0, k, 2k, ... recompute
        layers = (kept * tokens * residual_bytes(setup) * shape.hidden
                  + (shape.n_layers - kept) * per_layer + per_layer)  # + the layer being recomputed
    else:
        layers = shape.n_layers * per_layer
    # + the embedding output and final norm; the backward pass of a layer holds about one layer of
    # gradients of activations on top
    rows.append((f"activations ({setup.micro_batch} × {setup.block_size} tokens)",
                 layers + per_layer + tokens * shape.hidden * 12))
    if setup.document_attention:
        rows.append(("document attention mask", setup.micro_batch * setup.block_size ** 2 * 4))
    rows.append(("loss and output projection", loss_bytes(shape, setup, tokens)))
    if shape.tied and (not setup.lora or setup.train_embeddings):
        # A tied matrix gets two gradients (head, then embedding): the second is a dense buffer of its own.
        rows.append(("tied embedding's second gradient",
                     shape.vocab * shape.hidden * (setup.compute_bytes if world > 1 else 4)))
    if setup.cuda:
        rows.append(("CUDA context and workspaces", CUDA_OVERHEAD))
    return rows


def total(rows: list[tuple[str, int]]) -> int:
    return sum(n for _, n in rows)


def device_memory(settings: TrainSettings, device: torch.device) -> tuple[int, str]:
    """(bytes, description) one device may use: the setting, the GPU's total memory or the free RAM."""
    if settings.memory_limit_gb is not None:
        return int(settings.memory_limit_gb * GIB), "train.memory_limit_gb"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return props.total_memory, props.name
    import psutil

    return psutil.virtual_memory().available, "available RAM"


def micro_batch_choices(settings: TrainSettings, world_size: int) -> list[int]:
    """Micro-batches that divide the per-process batch, largest first."""
    per_process = max(1, settings.batch_size // world_size)
    return [m for m in range(per_process, 0, -1) if per_process % m == 0]


def _needs(shape: Shape, settings: TrainSettings, micro_batch: int, world: int, cuda: bool) -> int:
    return total(estimate(shape, Setup.of(settings, micro_batch, world, cuda)))


def _what_fits(shape: Shape, settings: TrainSettings, micro_batch: int, world: int, cuda: bool, limit: int) -> str:
    """The first change of settings that would fit, as 'use X (est. N GiB)'."""
    lora = settings.lora.model_copy(update={"enabled": True})
    options = [(f"train.micro_batch_size={m}", {"micro_batch_size": m}, world)
               for m in micro_batch_choices(settings, world) if m < micro_batch][:1]
    if not settings.gradient_checkpointing:
        options.append(("train.gradient_checkpointing=true", {"gradient_checkpointing": True}, world))
    if not settings.lora.enabled:
        options.append(("train.lora.enabled=true", {"lora": lora}, world))
        options.append(("train.lora.enabled=true and train.gradient_checkpointing=true",
                        {"lora": lora, "gradient_checkpointing": True}, world))
    if cuda:
        options += [(f"{n} GPUs (torchrun --nproc-per-node {n}, FSDP)", {}, n) for n in (2, 4, 8) if n > world]
    for advice, update, n in options:
        changed = settings.model_copy(update=update)
        m = update.get("micro_batch_size", min(micro_batch, micro_batch_choices(changed, n)[0]))
        needed = _needs(shape, changed, m, n, cuda)
        if needed <= limit:
            return f"use {advice} (est. {needed / GIB:.1f} GiB)"
    return "no setting fits: use a smaller model, a shorter train.block_size or more devices"


@dataclass(frozen=True)
class MemoryPlan:
    shape: Shape
    rows: list[tuple[str, int]]
    micro_batch: int
    limit: int
    limit_source: str
    advice: str | None  # None when it fits

    @property
    def needed(self) -> int:
        return total(self.rows)


def plan_memory(settings: TrainSettings, shape: Shape, world_size: int, device: torch.device, limit: int | None = None,
                source: str = "") -> MemoryPlan:
    """The memory of training `shape` with `settings`; for 'auto', the largest micro-batch that fits."""
    cuda = device.type == "cuda"
    if limit is None:
        limit, source = device_memory(settings, device)
    usable = int(limit * SPARE)
    if settings.micro_batch_size == "auto":
        choices = micro_batch_choices(settings, world_size)
        micro_batch = next((m for m in choices if _needs(shape, settings, m, world_size, cuda) <= usable), 1)
    else:
        micro_batch = settings.micro_batch_size
    rows = estimate(shape, Setup.of(settings, micro_batch, world_size, cuda))
    advice = None
    if total(rows) > usable:
        mode = "LoRA" if settings.lora.enabled else "full AdamW"
        advice = (f"training {_short_name(shape.name)} ({shape.n_params / 1e9:.2f}B, {mode}, micro_batch_size="
                  f"{micro_batch}, block_size={settings.block_size}) needs {total(rows) / GIB:.1f} GiB > "
                  f"{usable / GIB:.1f} GiB usable of {limit / GIB:.1f} GiB ({source}): "
                  f"{_what_fits(shape, settings, micro_batch, world_size, cuda, usable)}")
    return MemoryPlan(shape, rows, micro_batch, limit, source, advice)


def _short_name(model: str) -> str:
    return model.rstrip("/").rsplit("/", 1)[-1]


def fit_memory(settings: TrainSettings, model_path: str, runtime):
    """The settings with micro_batch_size resolved, after checking the plan fits the device (one
    `SynthcptError` line otherwise). Every process gets the same answer: the smallest memory of all."""
    limit, source = device_memory(settings, runtime.device)
    limit = runtime.min_int(limit)
    plan = plan_memory(settings, model_shape(model_path), runtime.world_size, runtime.device, limit, source)
    if plan.advice:
        raise SynthcptError(plan.advice)
    return settings.model_copy(update={"micro_batch_size": plan.micro_batch})


def plan_rows(config: Config, world_size: int | None = None) -> list[tuple[str, str]]:
    """The memory plan of `config.train` as (what, amount) rows, for `synthcpt plan train`.

    world_size: processes (GPUs) to plan for; default: $WORLD_SIZE or 1. The device is the first GPU
    when CUDA is available, else the CPU."""
    import os

    from synthcpt.models import resolve

    settings = config.train
    world = world_size or int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    plan = plan_memory(settings, model_shape(resolve(settings.model)), world, device)
    trainable = trainable_params(plan.shape, Setup.of(settings, plan.micro_batch, world, device.type == "cuda"))
    described = f"{plan.shape.n_params / 1e6:,.0f}M parameters, {trainable / 1e6:,.1f}M trained"
    rows = [("model", f"{_short_name(plan.shape.name)} ({described})"),
            ("processes", f"{world} × {device.type}")]
    rows += [(what, f"{n / GIB:.2f} GiB") for what, n in plan.rows]
    rows += [("total", f"{plan.needed / GIB:.2f} GiB"),
             ("device memory", f"{plan.limit / GIB:.2f} GiB ({plan.limit_source}; plans use {SPARE:.0%})"),
             ("micro_batch_size", str(plan.micro_batch)), ("verdict", plan.advice or "fits")]
    return rows
