"""The causal-LM loss fused with the output projection, so [tokens, vocab] logits never exist at once.

For a 128k vocabulary, 8 sequences of 2,048 tokens make 16k × 128k fp32 logits: 8 GiB, plus as much
again for their gradient, more than the activations of a whole 1B model. Here the hidden states go
through the output matrix a chunk of tokens at a time; each chunk's loss and its gradients (for the
hidden states and the matrix) are computed in the forward pass and the chunk's logits are freed, so
the backward pass only scales the stored gradients (the scheme of Liger's fused linear cross-entropy,
which is used instead on a GPU when `liger-kernel` is installed).

Under bf16 autocast the matrix products run in bf16, as the plain head's would, even where the hidden
states arrive in fp32 (on one GPU the residual stream follows the fp32 master weights): the logits,
their log-sum-exp and the loss are fp32, and the matrix's gradient is summed over chunks in fp32.

The model's `lm_head` is swapped for `FusedHead`, which passes the hidden states through, and the
model's `loss_function` for one that applies the output matrix chunk by chunk. The parameter keeps
its name (`lm_head.weight`) and its tie to the input embedding, so state dicts are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synthcpt.s6_train.data import IGNORE_INDEX

MIN_CHUNK_LOGITS = 2**24  # 64 MiB of fp32 logits: smaller chunks only add per-chunk overhead


def chunk_rows(n_rows: int, hidden: int, vocab: int) -> int:
    """Rows per chunk: a chunk's logits are about as large as all the hidden states (Liger's rule),
    and at least MIN_CHUNK_LOGITS (a short batch goes in one chunk)."""
    chunks = max(1, -(-vocab // hidden))
    liger = 1 << max(0, (-(-n_rows // chunks) - 1).bit_length())
    return max(1, min(n_rows, max(liger, MIN_CHUNK_LOGITS // vocab)))


def compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    """The dtype of the output projection's matrix product: the autocast dtype when autocast is on
    (as torch would run the plain head's matmul), else the hidden states' own."""
    device = hidden.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """sum over rows of cross_entropy(hidden @ weight.T, targets), never holding all the logits."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        compute = compute_dtype(hidden)  # read before autocast is turned off below
        with torch.autocast(hidden.device.type, enabled=False):
            return ChunkedLinearCrossEntropy._forward(ctx, hidden, weight, targets, compute)

    @staticmethod
    def _forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                 compute: torch.dtype) -> torch.Tensor:
        def chunk_loss(logits: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
            t = targets[rows]
            lse = torch.logsumexp(logits, dim=-1)
            loss = (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            # d loss / d logits = softmax - one_hot(target), in place of the logits to save a copy.
            grad = logits.sub_(lse[:, None]).exp_()
            grad[torch.arange(len(t), device=t.device), t] -= 1
            return loss, grad

        return chunked_head(ctx, hidden, weight, compute, chunk_loss)

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        return (*scaled_gradients(ctx, grad_loss), None)


def chunked_head(ctx, hidden: torch.Tensor, weight: torch.Tensor, compute: torch.dtype, chunk_loss) -> torch.Tensor:
    """The chunk loop of the fused losses: each chunk's fp32 logits go to `chunk_loss(logits, rows)`, which
    returns the chunk's summed loss and d loss / d logits (it may reuse the logits' memory); the gradients
    of the hidden states and of the matrix (when it trains) are summed here and saved for backward."""
    w = weight.to(compute)
    grad_hidden = torch.empty_like(hidden)
    # A frozen matrix (LoRA without trained embeddings) needs no gradient: a third of the head's FLOPs.
    grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) \
        if ctx.needs_input_grad[1] else None
    loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
    step = chunk_rows(hidden.shape[0], hidden.shape[1], weight.shape[0])
    for start in range(0, hidden.shape[0], step):
        h = hidden[start:start + step].to(compute)
        part, grad = chunk_loss((h @ w.T).float(), slice(start, start + step))
        loss += part
        grad = grad.to(compute)
        grad_hidden[start:start + step] = grad @ w
        if grad_weight is not None:
            _add_product(grad_weight, grad.T, h)
    ctx.save_for_backward(grad_hidden, None if grad_weight is None else grad_weight.to(weight.dtype))
    return loss


def scaled_gradients(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The saved gradients of the hidden states and the matrix, times the loss's incoming gradient."""
    grad_hidden, grad_weight = ctx.saved_tensors
    return (grad_hidden * grad_loss.to(grad_hidden.dtype),
            None if grad_weight is None else grad_weight * grad_loss.to(grad_weight.dtype))


def _add_product(total: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """total (fp32) += a @ b. In fp32, in place; in bf16 the product is a bf16 matmul whose result
    is added in fp32, so the chunks of a large batch add up without bf16 rounding of the sum."""
    if a.dtype == total.dtype:
        total.addmm_(a, b)
    else:
        total.add_(a @ b)


def _liger_loss():
    """Liger's Triton kernel for the same sum, when it is installed (GPU only)."""
    try:
        from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss
    except ImportError:
        return None
    return LigerFusedLinearCrossEntropyLoss(ignore_index=IGNORE_INDEX, reduction="sum")


def linear_cross_entropy_sum(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                             use_liger: bool = False) -> torch.Tensor:
    """Summed token cross-entropy of logits hidden @ weight.T; rows whose target is IGNORE_INDEX
    carry no loss and are skipped before any logit is computed (the prompts of instruction pairs)."""
    keep = targets != IGNORE_INDEX
    hidden, targets = hidden[keep], targets[keep]
    if hidden.shape[0] == 0:
        return hidden.sum() * 0.0 + weight.sum() * 0.0  # no target: zero loss, gradients still flow (zeros)
    liger = _liger_loss() if use_liger and hidden.is_cuda else None
    if liger is not None:
        # Liger's kernel takes one dtype: both inputs cast to the compute dtype (bf16 under autocast, as
        # the plain head's matmul would run); the gradients flow back through the casts in fp32.
        compute = compute_dtype(hidden)
        return liger(weight.to(compute), hidden.to(compute), targets)
    return ChunkedLinearCrossEntropy.apply(hidden, weight, targets)


class FusedHead(torch.nn.Module):
    """Stands in for the output projection: returns the hidden states; the loss applies `weight`."""

    def __init__(self, head: torch.nn.Module):
        super().__init__()
        self.weight = head.weight  # the same Parameter: a tie to the input embedding is kept
        if getattr(head, "bias", None) is not None:
            raise ValueError("fused loss: an output projection with a bias is not supported")

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden


def fuse_loss(model, use_liger: bool) -> None:
    """Swap the model's head and loss for the chunked, fused pair (in place)."""
    head = FusedHead(model.get_output_embeddings())
    model.set_output_embeddings(head)

    def loss_function(logits, labels, vocab_size=None, num_items_in_batch=None, shift_labels=None, **_):
        # `logits` are the hidden states (FusedHead); the targets are the labels shifted by one.
        if shift_labels is None:
            shift_labels = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
        hidden = logits.reshape(-1, logits.shape[-1])
        total = linear_cross_entropy_sum(hidden, head.weight, shift_labels.reshape(-1).to(hidden.device), use_liger)
        if num_items_in_batch is None:
            num_items_in_batch = (shift_labels != IGNORE_INDEX).sum()
        return total / num_items_in_batch

    model.loss_function = loss_function


# Context distillation: KL(teacher || student) over the teacher's top-k tokens plus one bin holding
# the rest of each distribution's mass. It is an exact KL of the two coarsened distributions (zero, with
# a zero gradient, where the student already matches the teacher) and a lower bound of the full KL.
TAIL_FLOOR = -1e-6  # top-k mass at most 1 - 1e-6: the tail bin's log stays finite


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, accurate near 0 and far from it."""
    x = x.clamp(max=TAIL_FLOOR)
    return torch.where(x > -0.6931, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


class ChunkedTopKDistillation(torch.autograd.Function):
    """sum over rows of the binned KL of the student's logits hidden @ weight.T from the teacher's
    top-k log-probabilities, chunk by chunk, gradients computed in the forward pass (as
    `ChunkedLinearCrossEntropy`: no logits kept, and the weight is not needed again in backward).

    With p the student's softmax, t the teacher's top-k probabilities, tail_t and tail_p the mass
    outside the top k: d loss / d logit_i = p_i - t_i inside the top k, p_i (1 - tail_t / tail_p)
    outside it."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, teacher_ids: torch.Tensor,
                teacher_logprobs: torch.Tensor) -> torch.Tensor:
        def chunk_loss(logits: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
            ids, teacher_top = teacher_ids[rows], teacher_logprobs[rows].float()
            student = logits.log_softmax(-1)
            student_top = student.gather(1, ids)
            student_tail = _log1mexp(torch.logsumexp(student_top, -1))
            teacher_tail = _log1mexp(torch.logsumexp(teacher_top, -1))
            loss = ((teacher_top.exp() * (teacher_top - student_top)).sum(-1)
                    + teacher_tail.exp() * (teacher_tail - student_tail)).sum()
            # The gradient in place of the student's log-probabilities, to save a copy.
            grad = student.exp_().mul_((1 - (teacher_tail - student_tail).exp())[:, None])
            grad.scatter_(1, ids, student_top.exp() - teacher_top.exp())
            return loss, grad

        compute = compute_dtype(hidden)
        with torch.autocast(hidden.device.type, enabled=False):
            return chunked_head(ctx, hidden, weight, compute, chunk_loss)

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        return (*scaled_gradients(ctx, grad_loss), None, None)


def topk_kl_sum(hidden: torch.Tensor, weight: torch.Tensor, teacher_ids: torch.Tensor,
                teacher_logprobs: torch.Tensor) -> torch.Tensor:
    """Summed binned KL of the rows' student logits hidden @ weight.T from the teacher's top-k rows."""
    if hidden.shape[0] == 0:
        return hidden.sum() * 0.0 + weight.sum() * 0.0
    return ChunkedTopKDistillation.apply(hidden, weight, teacher_ids, teacher_logprobs)


class DistillTargets:
    """The teacher's rows of the batch about to go through the model, set by the trainer before each
    forward pass and read by the loss inside it (under FSDP the head's weight is whole only there)."""

    def __init__(self):
        self.ids = self.logprobs = self.mask = self.replay = None

    def set(self, ids: torch.Tensor, logprobs: torch.Tensor, mask: torch.Tensor, replay: torch.Tensor) -> None:
        self.ids, self.logprobs, self.mask, self.replay = ids, logprobs, mask, replay


def _shift(x: torch.Tensor, fill) -> torch.Tensor:
    """Row t+1 moved to t (the logits at t predict token t+1), `fill` at the end."""
    return torch.cat([x[:, 1:], torch.full_like(x[:, :1], fill)], dim=1)


def distill_loss(model, ce_weight: float, use_liger: bool) -> DistillTargets:
    """Swap the model's head for `FusedHead` and its loss for context distillation (in place): on the
    main blocks, the binned KL from the teacher plus `ce_weight` × cross-entropy; on replay blocks,
    cross-entropy. Returns the holder the trainer fills before each forward pass."""
    head = FusedHead(model.get_output_embeddings())
    model.set_output_embeddings(head)
    targets = DistillTargets()

    def loss_function(logits, labels, vocab_size=None, num_items_in_batch=None, shift_labels=None, **_):
        hidden = logits.reshape(-1, logits.shape[-1])
        if shift_labels is None:
            shift_labels = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
        mask = _shift(targets.mask, False).reshape(-1)
        ids = _shift(targets.ids, 0).reshape(-1, targets.ids.shape[-1])[mask]
        logprobs = _shift(targets.logprobs, 0.0).reshape(-1, targets.logprobs.shape[-1])[mask]
        total = topk_kl_sum(hidden[mask], head.weight, ids, logprobs)
        replay = targets.replay[:, None].expand_as(shift_labels)
        replay_labels = torch.where(replay, shift_labels, IGNORE_INDEX).reshape(-1)
        total = total + linear_cross_entropy_sum(hidden, head.weight, replay_labels, use_liger)
        if ce_weight:
            main_labels = torch.where(replay, IGNORE_INDEX, shift_labels).reshape(-1)
            total = total + ce_weight * linear_cross_entropy_sum(hidden, head.weight, main_labels, use_liger)
        return total / num_items_in_batch

    model.loss_function = loss_function
    return targets
