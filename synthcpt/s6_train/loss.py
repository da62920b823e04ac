"""The causal-LM loss fused with the output projection, so [tokens, vocab] logits never exist at once.

For a 128k vocabulary, 8 sequences of 2,048 tokens make 16k × 128k fp32 logits: 8 GiB, plus as much
again for their gradient, more than the activations of a whole 1B model. Here the hidden states go
through the output matrix a chunk of tokens at a time; each chunk's loss and its gradients (for the
hidden states and the matrix) are computed in the forward pass and the chunk's logits are freed, so
the backward pass only scales the stored gradients (the scheme of Liger's fused linear cross-entropy,
which is used instead on a GPU when `liger-kernel` is installed).

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


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """sum over rows of cross_entropy(hidden @ weight.T, targets), never holding all the logits."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with torch.autocast(hidden.device.type, enabled=False):
            return ChunkedLinearCrossEntropy._forward(ctx, hidden, weight, targets)

    @staticmethod
    def _forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        compute = hidden.dtype  # under bf16 autocast the matmul runs in bf16, as the plain lm_head's would
        w = weight.to(compute)
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        step = chunk_rows(hidden.shape[0], hidden.shape[1], weight.shape[0])
        for start in range(0, hidden.shape[0], step):
            h, t = hidden[start:start + step], targets[start:start + step]
            logits = (h @ w.T).float()
            lse = torch.logsumexp(logits, dim=-1)
            loss += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            # d loss / d logits = softmax - one_hot(target), in place of the logits to save a copy.
            grad = logits.sub_(lse[:, None]).exp_()
            grad[torch.arange(len(t), device=t.device), t] -= 1
            grad_hidden[start:start + step] = (grad.to(compute) @ w).to(hidden.dtype)
            grad_weight.addmm_(grad.T, h.float())
        ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype))
        return loss

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad_loss.to(grad_hidden.dtype), grad_weight * grad_loss.to(grad_weight.dtype), None


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
        # Liger's kernel takes one dtype: the fp32 master matrix cast to the hidden states' (bf16 under
        # autocast, as the plain head's matmul would run); its gradient flows back through the cast.
        return liger(weight.to(hidden.dtype), hidden, targets)
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
