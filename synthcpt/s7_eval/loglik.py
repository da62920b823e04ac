"""Log-likelihood of answer options, one forward pass for a question and all its options.

A question's context and its options are packed into one sequence: each option attends to the
context and to itself only (a block attention mask) and takes the positions it would have right
after the context, so its log-likelihood equals that of a separate `context + option` forward pass,
while the context is computed once. Several questions share a row, rows are batched by a token
budget. A long shared prefix (the document, for the open-book reference) is run once and its KV
cache reused by every question on it.

Context and continuation are tokenised as lm-eval-harness does (whole string, then the context's
tokens cut off; trailing spaces of the context move to the continuation; no special tokens), so the
requests are the same ones its HF backend scores.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from synthcpt.errors import SynthcptError
from synthcpt.progress import progress


@dataclass(frozen=True)
class ChoiceRequest:
    """A context and the continuations to score after it (a question and its options)."""

    context: str
    continuations: tuple[str, ...]


@dataclass(frozen=True)
class Encoded:
    context: list[int]
    continuations: list[list[int]]

    @property
    def n_tokens(self) -> int:
        return len(self.context) + sum(len(c) for c in self.continuations)


@dataclass
class Row:
    """Packed requests: token ids, the piece each token belongs to, the piece it may also see (its
    context) and its position id."""

    ids: list[int]
    piece: list[int]
    parent: list[int]
    position: list[int]
    # (request index, option index, first packed index of the option, option ids) per option.
    targets: list[tuple[int, int, int, list[int], int]]

    def __len__(self) -> int:
        return len(self.ids)


def load_model(model: str, device: str = "auto"):
    """A causal LM and its tokenizer for scoring: float32 on CPU, bfloat16 on a GPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from synthcpt.models import resolve

    path = resolve(model)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        network = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
    except (OSError, ValueError) as e:
        raise SynthcptError(f"cannot load the model {model}: {str(e).splitlines()[0]}") from None
    return tokenizer, network.to(device).eval()


class LoglikScorer:
    """Scores continuations of contexts with a causal LM (sums of token log-probabilities)."""

    def __init__(self, model: str, device: str = "auto", batch_tokens: int = 2048, row_tokens: int = 512):
        self.tokenizer, self.model = load_model(model, device)
        self.batch_tokens = batch_tokens
        self.row_tokens = row_tokens
        self.max_length = int(getattr(self.model.config, "max_position_embeddings", 2048))

    @property
    def device(self):
        return self.model.device

    def tokens(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode(self, request: ChoiceRequest) -> Encoded:
        context = request.context.rstrip()
        moved = request.context[len(context):]
        context_ids = self.tokens(context)
        continuations = []
        for continuation in request.continuations:
            whole = self.tokens(context + moved + continuation)
            continuations.append(whole[len(context_ids):])
        if not context_ids or not all(continuations):
            raise SynthcptError("a log-likelihood request needs a non-empty context and continuations")
        return Encoded(context_ids, continuations)

    def score(self, requests: list[ChoiceRequest], description: str = "log-likelihood",
              prefix: str = "") -> list[list[float]]:
        """The summed log-probability of each continuation; with `prefix`, every context follows it
        (computed once, its KV cache shared)."""
        encoded = [self.encode(r) for r in requests]
        return self.score_encoded(encoded, description, self.tokens(prefix) if prefix else [])

    def fits(self, request: ChoiceRequest, prefix: str = "") -> bool:
        """Whether prefix, context and the longest continuation fit in the model's context window."""
        encoded = self.encode(request)
        longest = max(len(c) for c in encoded.continuations)
        return len(self.tokens(prefix)) + len(encoded.context) + longest <= self.max_length

    def score_encoded(self, encoded: list[Encoded], description: str,
                      prefix_ids: list[int] | None = None) -> list[list[float]]:
        import torch

        prefix_ids = prefix_ids or []
        results = [[0.0] * len(e.continuations) for e in encoded]
        rows = _pack(encoded, self.row_tokens)
        with torch.inference_mode(), progress() as bar:
            task = bar.add_task(description, total=len(encoded))
            cache = self._prefix_cache(prefix_ids) if prefix_ids else None
            for batch in _batches(rows, 1 if cache is not None else self.batch_tokens):
                for request_index, option_index, value in self._forward(batch, cache, len(prefix_ids)):
                    results[request_index][option_index] = value
                bar.advance(task, len({t[0] for row in batch for t in row.targets if t[1] == 0}))
        return results

    def _prefix_cache(self, prefix_ids: list[int]):
        import torch

        ids = torch.tensor([prefix_ids], device=self.device)
        return self.model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values

    def _forward(self, batch: list[Row], cache, offset: int) -> Iterable[tuple[int, int, float]]:
        import torch

        length = max(len(row) for row in batch)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(batch), length), pad, dtype=torch.long)
        positions = torch.zeros((len(batch), length), dtype=torch.long)
        # Padding tokens are pieces of their own (-1 never matches a parent), seeing only themselves.
        pieces = torch.full((len(batch), length), -2, dtype=torch.long)
        parents = torch.full((len(batch), length), -1, dtype=torch.long)
        for b, row in enumerate(batch):
            n = len(row)
            ids[b, :n] = torch.tensor(row.ids)
            positions[b, :n] = torch.tensor(row.position)
            pieces[b, :n] = torch.tensor(row.piece)
            parents[b, :n] = torch.tensor(row.parent)
        index = torch.arange(length)
        causal = index[None, :] <= index[:, None]
        mask = ((pieces[:, None, :] == pieces[:, :, None]) & causal) | (pieces[:, None, :] == parents[:, :, None])
        mask |= torch.eye(length, dtype=torch.bool)
        if offset:
            mask = torch.cat([torch.ones((len(batch), length, offset), dtype=torch.bool), mask], dim=2)
        # Logits only where an option token is predicted: the last context token and option tokens.
        keep = sorted({p for row in batch for t in row.targets for p in range(t[4], t[2] + len(t[3]) - 1)})
        keep_index = {p: i for i, p in enumerate(keep)}
        output = self.model(input_ids=ids.to(self.device), attention_mask=mask[:, None].to(self.device),
                            position_ids=(positions + offset).to(self.device), past_key_values=cache,
                            use_cache=cache is not None, logits_to_keep=torch.tensor(keep, device=self.device))
        if cache is not None:
            cache.crop(-length)  # back to the shared prefix alone
        logits = output.logits.float()
        norm = logits.logsumexp(-1)
        for b, row in enumerate(batch):
            for request_index, option_index, start, option_ids, predictor in row.targets:
                # Token k of the option is predicted at the context's last token (k = 0), else at token k-1.
                at = [keep_index[predictor]] + [keep_index[start + k] for k in range(len(option_ids) - 1)]
                at_t = torch.tensor(at, device=logits.device)
                target = torch.tensor(option_ids, device=logits.device)
                value = (logits[b, at_t, target] - norm[b, at_t]).sum().item()
                yield request_index, option_index, value

    def perplexity(self, texts: list[str], window: int, max_tokens: int,
                   description: str = "perplexity") -> dict[str, float]:
        """Token perplexity over non-overlapping windows of the texts, at most `max_tokens` tokens."""
        import math

        windows: list[Encoded] = []
        budget = max_tokens
        for text in texts:
            ids = self.tokens(text)[:budget]
            budget -= len(ids)
            windows.extend(Encoded(ids[i:i + 1], [ids[i + 1:i + window]])
                           for i in range(0, len(ids), window) if len(ids[i:i + window]) > 1)
            if budget <= 0:
                break
        if not windows:
            raise SynthcptError("no text to measure perplexity on")
        scores = self.score_encoded(windows, description)
        predicted = sum(len(w.continuations[0]) for w in windows)
        total = sum(s[0] for s in scores)
        return {"perplexity": math.exp(-total / predicted), "tokens": predicted, "windows": len(windows)}


def _pack(encoded: list[Encoded], row_tokens: int) -> list[Row]:
    """Requests packed into rows of at most `row_tokens` tokens (a longer request gets its own row),
    longest first so that rows in a batch have similar lengths."""
    order = sorted(range(len(encoded)), key=lambda i: -encoded[i].n_tokens)
    rows: list[Row] = []
    current = Row([], [], [], [], [])
    next_piece = 0
    for index in order:
        request = encoded[index]
        if current.ids and len(current) + request.n_tokens > row_tokens:
            rows.append(current)
            current = Row([], [], [], [], [])
        context_piece = next_piece
        context_end = len(current) + len(request.context)
        _append(current, request.context, context_piece, -1, 0)
        for option_index, option in enumerate(request.continuations):
            next_piece += 1
            current.targets.append((index, option_index, len(current), option, context_end - 1))
            _append(current, option, next_piece, context_piece, len(request.context))
        next_piece += 1
    if current.ids:
        rows.append(current)
    return rows


def _append(row: Row, ids: list[int], piece: int, parent: int, first_position: int) -> None:
    row.ids.extend(ids)
    row.piece.extend([piece] * len(ids))
    row.parent.extend([parent] * len(ids))
    row.position.extend(range(first_position, first_position + len(ids)))


def _batches(rows: list[Row], batch_tokens: int) -> Iterable[list[Row]]:
    """Consecutive rows whose padded size (rows x longest) stays within the budget."""
    batch: list[Row] = []
    for row in rows:
        longest = max([len(row)] + [len(r) for r in batch])
        if batch and longest * (len(batch) + 1) > batch_tokens:
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch
