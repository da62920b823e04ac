"""The chunked loss fused with the output projection equals the plain loss on full logits; under bf16
autocast its matrix products run in bf16, as the plain head's do, and it matches that within bf16's rounding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from synthcpt.s6_train.data import IGNORE_INDEX
from synthcpt.s6_train.loss import chunk_rows, fuse_loss, linear_cross_entropy_sum


def test_chunked_loss_and_gradients_match_cross_entropy_on_full_logits(monkeypatch):
    from synthcpt.s6_train import loss as loss_module

    monkeypatch.setattr(loss_module, "MIN_CHUNK_LOGITS", 0)  # the 2**24-logit floor would make one chunk here
    torch.manual_seed(0)
    n, hidden, vocab = 300, 16, 200  # 32 rows per chunk: ten chunks, a short last one
    assert chunk_rows(n, hidden, vocab) == 32
    h = torch.randn(n, hidden, dtype=torch.float64, requires_grad=True)
    w = torch.randn(vocab, hidden, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, vocab, (n,))
    targets[::7] = IGNORE_INDEX
    (h_ref, w_ref) = (h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_())
    reference = F.cross_entropy(h_ref @ w_ref.T, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    loss = linear_cross_entropy_sum(h, w, targets)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    (loss * 0.37).backward()
    (reference * 0.37).backward()
    assert torch.allclose(h.grad, h_ref.grad, atol=1e-6)
    assert torch.allclose(w.grad, w_ref.grad, atol=1e-6)
    assert h.grad[::7].abs().max() == 0  # ignored rows get no gradient


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_a_model_with_the_fused_loss_gives_the_plain_loss_and_gradients(tokenizer, autocast):
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), tie_word_embeddings=True)
    torch.manual_seed(0)
    plain = AutoModelForCausalLM.from_config(config)
    fused = AutoModelForCausalLM.from_config(config)
    fused.load_state_dict(plain.state_dict())
    fuse_loss(fused, use_liger=False)
    assert fused.get_output_embeddings().weight is fused.get_input_embeddings().weight  # still tied
    assert set(fused.state_dict()) == set(plain.state_dict())
    ids = torch.randint(0, config.vocab_size, (2, 24))
    labels = ids.clone()
    labels[0, :10] = IGNORE_INDEX
    n_items = torch.tensor(int((labels[:, 1:] != IGNORE_INDEX).sum()))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        expected = plain(input_ids=ids, labels=labels, num_items_in_batch=n_items).loss
        got = fused(input_ids=ids, labels=labels, num_items_in_batch=n_items).loss
    assert got.item() == pytest.approx(expected.item(), rel=1e-4 if autocast else 1e-5)
    expected.backward()
    got.backward()
    for (name, p), q in zip(plain.named_parameters(), fused.parameters()):
        assert q.grad.dtype == torch.float32, name
        if autocast:  # the head's products in bf16 on both sides, their gradients rounded differently
            assert _relative(q.grad, p.grad) < 1e-2, name
        else:
            assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-4), name

class MatmulDtypes(TorchDispatchMode):
    """Records the operand dtypes of every matrix product run inside it."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[torch.dtype, ...]] = []

    @property
    def seen(self) -> set[tuple[torch.dtype, ...]]:
        return set(self.calls)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.matmul):
            self.calls.append(tuple(a.dtype for a in args if isinstance(a, torch.Tensor)))
        return func(*args, **(kwargs or {}))


def _loss_and_grads(hidden, weight, targets, fused: bool):
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if fused:
            loss = linear_cross_entropy_sum(h, w, targets)
        else:  # the plain head under autocast (bf16 logits), the loss on their fp32 upcast, as transformers does
            loss = F.cross_entropy(F.linear(h, w).float(), targets, ignore_index=IGNORE_INDEX, reduction="sum")
    loss.backward()
    return loss.detach(), h.grad, w.grad


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def test_under_bf16_autocast_the_fused_loss_multiplies_in_bf16_and_matches_the_plain_head(monkeypatch):
    from synthcpt.s6_train import loss as loss_module

    monkeypatch.setattr(loss_module, "MIN_CHUNK_LOGITS", 0)  # several chunks: their fp32 sum is tested too
    torch.manual_seed(0)
    n, hidden, vocab = 512, 64, 1000  # 32 rows a chunk: 16 chunks
    # fp32 hidden states and master matrix, as on one GPU (the residual stream follows the fp32 weights).
    h, w = torch.randn(n, hidden), torch.randn(vocab, hidden) * 0.3
    targets = torch.randint(0, vocab, (n,))
    targets[::7] = IGNORE_INDEX
    recorder = MatmulDtypes()
    with recorder:
        fused = _loss_and_grads(h, w, targets, fused=True)
    assert recorder.seen and all(set(dtypes) == {torch.bfloat16} for dtypes in recorder.seen), recorder.seen
    plain = _loss_and_grads(h, w, targets, fused=False)
    # The gradients of fp32 inputs (the master matrix among them) stay fp32.
    assert fused[1].dtype == fused[2].dtype == torch.float32
    assert fused[0].item() == pytest.approx(plain[0].item(), rel=1e-4)  # the same bf16 logits, summed in fp32
    for got, expected in zip(fused[1:], plain[1:]):
        assert _relative(got, expected) < 1e-2  # bf16 keeps 8 bits: ~0.4% a value
        assert (got - expected).abs().max() <= 1e-2 * expected.abs().max()
    # Each chunk's bf16 product of the matrix's gradient is summed in fp32: no less exact than the plain
    # head's one bf16 product, measured against fp64.
    h64, w64 = h.double().requires_grad_(), w.double().requires_grad_()
    F.cross_entropy(h64 @ w64.T, targets, ignore_index=IGNORE_INDEX, reduction="sum").backward()
    assert _relative(fused[2], w64.grad) <= _relative(plain[2], w64.grad) * 1.05


def test_without_autocast_the_fused_loss_multiplies_in_the_inputs_dtype():
    h, w = torch.randn(64, 16), torch.randn(100, 16)
    recorder = MatmulDtypes()
    with recorder:
        linear_cross_entropy_sum(h, w, torch.randint(0, 100, (64,)))
    assert recorder.seen == {(torch.float32, torch.float32)}


def test_a_frozen_matrix_costs_no_gradient_product():
    h, targets = torch.randn(64, 16, requires_grad=True), torch.randint(0, 100, (64,))
    products = {}
    for frozen in (False, True):
        w = torch.randn(100, 16, requires_grad=not frozen)
        recorder = MatmulDtypes()
        with recorder, torch.autocast("cpu", dtype=torch.bfloat16):
            linear_cross_entropy_sum(h, w, targets).backward()
        products[frozen] = len(recorder.calls)
        assert (w.grad is None) == frozen
    assert products == {False: 3, True: 2}  # one chunk: logits, the hidden states' gradient (, the matrix's)
