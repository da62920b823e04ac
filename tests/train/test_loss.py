"""The chunked loss fused with the output projection equals the plain loss on full logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

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


def test_a_model_with_the_fused_loss_gives_the_plain_loss_and_gradients(tokenizer):
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
    expected = plain(input_ids=ids, labels=labels, num_items_in_batch=n_items).loss
    got = fused(input_ids=ids, labels=labels, num_items_in_batch=n_items).loss
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    expected.backward()
    got.backward()
    for (name, p), q in zip(plain.named_parameters(), fused.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-4), name
