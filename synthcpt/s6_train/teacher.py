"""Context distillation's data: what the student reads, what the teacher reads before it, and the
teacher's top-k log-probabilities of every token that carries the loss, computed once before training.

What the student reads (see `DistillSettings`):
- `train.data: mix`: each mix record, with its source as the teacher's context: the chunk it was
  written from, else its document (from the start, up to `context_tokens`). A QA record carries the
  loss on its answer (the text after "Answer:"), as in prompt distillation. The mix's raw copies of the
  corpus are read as continuation (below), never with their own document as context.
- `train.data: raw`: continuation: each chunk of each document, with the document's text before the
  chunk (its end, up to `context_tokens`) as the teacher's context (Deep Context Distillation). A
  document's first chunk has no context: its targets are the base model's own (a regulariser).

The teacher pass (`teacher_rows`): the base model reads each context once and keeps its KV cache;
the documents of the packed stream that share it go through in batches on top of it (right-padded: a
causal model's real tokens never see the padding). Row r of `ids.bin`/`logprobs.bin` is the teacher's
top-k distribution of token p of the stream where `row_of_token[p] == r`: every token with a target
but the first of its document (which the packed student predicts from the document before it).
In a distributed run each process reads every world_size-th context. Each process commits its
progress after each context (`progress-<rank>.json`, after its rows are flushed: a flush writes only
the pages it changed), so a killed pass resumes where it stopped; `meta.json`, written last, marks the rows complete for their key.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synthcpt.atomic import write_json
from synthcpt.errors import SynthcptError
from synthcpt.progress import progress
from synthcpt.run_folder import Chunk, Document
from synthcpt.s6_train.data import Example, TeacherRows, TokenStream, stream_key
from synthcpt.s6_train.settings import DistillSettings

RAW = "raw"  # the mix's generator name of the corpus copies
ANSWER_MARK = "\nAnswer:"
SEPARATOR = "\n\n"  # between the teacher's context and the text it predicts
MIX_COLUMNS = ("id", "text", "generator", "doc_id", "chunk_id", "question")


@dataclass(frozen=True)
class Sources:
    """The corpus that mix records and chunks point at."""

    documents: list[Document]
    chunks: list[Chunk]

    def chunks_of(self) -> dict[str, list[Chunk]]:
        by_doc: dict[str, list[Chunk]] = {}
        for chunk in sorted(self.chunks, key=lambda c: (c.doc_id, c.index)):
            by_doc.setdefault(chunk.doc_id, []).append(chunk)
        return by_doc


def continuation(document: Document, chunks: list[Chunk]) -> Iterator[Example]:
    """The document's chunks, each with the document's text before it as the teacher's context."""
    for chunk in chunks:
        yield Example(chunk.text, context=document.text[:chunk.char_start].strip(), context_keeps_end=True)


def _mix_rows(files: list[Path], generators: list[str] | None) -> Iterator[dict]:
    import pyarrow.parquet as pq

    for path in files:
        reader = pq.ParquetFile(path)
        missing = [c for c in MIX_COLUMNS if c not in reader.schema_arrow.names]
        if missing:
            raise SynthcptError(f"{path} has no '{missing[0]}' column: distillation needs the records' sources "
                                "(regenerate the mix with this version)")
        for batch in reader.iter_batches(columns=list(MIX_COLUMNS)):
            for row in batch.to_pylist():
                if row["text"] and (generators is None or row["generator"] in generators):
                    yield row


def mix_examples(files: list[Path], generators: list[str] | None, sources: Sources,
                 settings: DistillSettings) -> Iterator[Example]:
    """The mix records as distillation examples (see the module's docstring)."""
    documents = {d.doc_id: d for d in sources.documents}
    chunks = {c.chunk_id: c for c in sources.chunks}
    chunks_of = sources.chunks_of()
    for row in _mix_rows(files, generators):
        if row["generator"] == RAW and row["doc_id"] in documents:
            yield from continuation(documents[row["doc_id"]], chunks_of.get(row["doc_id"], []))
            continue
        if row["chunk_id"] in chunks:
            context = chunks[row["chunk_id"]].text
        elif row["doc_id"] in documents:
            context = documents[row["doc_id"]].text
        else:
            raise SynthcptError(f"mix record {row['id']} ({row['generator']}) names no chunk or document of this "
                                "run's corpus: distillation needs each record's source as the teacher's context")
        text = row["text"]
        mark = text.rfind(ANSWER_MARK) if row["question"] and settings.qa_answers_only else -1
        if mark >= 0:
            cut = mark + len(ANSWER_MARK)
            yield Example(text[cut:], prompt=text[:cut], context=context)
        else:
            yield Example(text, context=context)


def corpus_examples(sources: Sources) -> Iterator[Example]:
    chunks_of = sources.chunks_of()
    for document in sources.documents:
        yield from continuation(document, chunks_of.get(document.doc_id, []))


def context_ids(tokenizer, context: dict, max_tokens: int) -> list[int]:
    """The teacher's context as token ids: truncated to `max_tokens` (its beginning, or its end with the
    tokenizer's BOS kept in front), then the separator."""
    if not context["text"]:
        return []
    ids = tokenizer(context["text"], add_special_tokens=True)["input_ids"]
    if len(ids) > max_tokens:
        bos = tokenizer.bos_token_id
        if context["keeps_end"]:
            head = [bos] if bos is not None and ids[0] == bos else []
            ids = head + ids[len(ids) - max_tokens + len(head):]
        else:
            ids = ids[:max_tokens]
    return ids + tokenizer(SEPARATOR, add_special_tokens=False)["input_ids"]


def row_index(stream: TokenStream) -> np.ndarray:
    """row_of_token: for each token of the stream, its teacher row, or -1 (no target, or the first
    token of a document)."""
    carries = np.asarray(stream.targets, dtype=bool).copy()
    carries[stream.doc_starts] = False
    rows = np.full(stream.n_tokens, -1, dtype=np.int64)
    rows[carries] = np.arange(int(carries.sum()))
    return rows


def teacher_key(stream: TokenStream, model_path: str, settings: DistillSettings) -> str:
    return stream_key({"stream": stream.meta["key"], "model": model_path, "top_k": settings.top_k,
                       "context_tokens": settings.context_tokens})


def open_rows(folder: Path, key: str) -> TeacherRows | None:
    """The rows of a complete teacher pass for `key`, memory-mapped; None when there are none."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("key") != key:
        return None
    n_rows, k = meta["n_rows"], meta["top_k"]
    shape = (max(n_rows, 1), k)
    return TeacherRows(np.load(folder / "row_of_token.npy", mmap_mode="r"),
                       np.memmap(folder / "ids.bin", dtype=np.int32, mode="r", shape=shape),
                       np.memmap(folder / "logprobs.bin", dtype=np.float32, mode="r", shape=shape))


def _groups(context_index: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(context, its documents) in context order; documents without context (-1) come first."""
    order = np.argsort(context_index, kind="stable")
    values, starts = np.unique(context_index[order], return_index=True)
    return [(int(v), order[s:e]) for v, s, e in zip(values, starts, [*starts[1:], len(order)])]


def _batches(documents: np.ndarray, lengths: np.ndarray, max_tokens: int) -> Iterator[np.ndarray]:
    """Consecutive documents whose padded batch stays within `max_tokens` (at least one each)."""
    start = 0
    while start < len(documents):
        end = start + 1
        while end < len(documents) and (end + 1 - start) * max(lengths[documents[start:end + 1]]) <= max_tokens:
            end += 1
        yield documents[start:end]
        start = end


def document_bounds(stream: TokenStream) -> np.ndarray:
    """Where each document of the stream starts, and the stream's end."""
    return np.append(stream.doc_starts, stream.n_tokens)


def teacher_view(stream: TokenStream, bounds: np.ndarray, doc: int, has_context: bool,
                 bos: int | None) -> tuple[np.ndarray, int]:
    """A document's tokens as the teacher reads them, and how many leading tokens were dropped (a BOS
    after a context: the context brought its own)."""
    tokens = np.asarray(stream.tokens[bounds[doc]:bounds[doc + 1]], dtype=np.int64)
    dropped = int(has_context and bos is not None and len(tokens) > 1 and tokens[0] == bos)
    return tokens[dropped:], dropped


class TeacherPass:
    """The base model's forward passes over the stream's documents with their contexts."""

    def __init__(self, model_path: str, tokenizer, stream: TokenStream, settings: DistillSettings, device):
        from transformers import AutoModelForCausalLM

        self.tokenizer, self.stream, self.settings, self.device = tokenizer, stream, settings, device
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device).eval()
        self.starts = document_bounds(stream)

    @torch.no_grad()
    def group(self, context: list[int], documents: np.ndarray, rows: np.ndarray, ids: np.ndarray,
              logprobs: np.ndarray) -> int:
        """Fill the rows of `documents` read after `context`; returns the tokens the teacher read."""
        cache, read, after_context = None, len(context), None
        if context:
            out = self.model(torch.tensor([context], device=self.device), use_cache=True)
            cache = out.past_key_values
            top = out.logits[0, -1].float().log_softmax(-1).topk(self.settings.top_k)
            after_context = top.indices.cpu().numpy(), top.values.cpu().numpy()
        lengths = np.diff(self.starts)
        for batch in _batches(documents, lengths, self.settings.teacher_batch_tokens):
            texts = [teacher_view(self.stream, self.starts, int(d), bool(context), self.tokenizer.bos_token_id)
                     for d in batch]
            width = max(len(t) for t, _ in texts)
            padded = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (tokens, _) in enumerate(texts):
                padded[i, :len(tokens)] = torch.from_numpy(tokens)
            past = None
            if cache is not None:
                past = copy.deepcopy(cache)
                past.batch_repeat_interleave(len(batch))
            out = self.model(padded.to(self.device), past_key_values=past, use_cache=past is not None)
            top = out.logits.float().log_softmax(-1).topk(self.settings.top_k, dim=-1)
            top_ids, top_logprobs = top.indices.cpu().numpy(), top.values.cpu().numpy()
            for i, (d, (tokens, dropped)) in enumerate(zip(batch, texts)):
                doc_rows = rows[self.starts[d]:self.starts[d + 1]]
                # Token p of the document is predicted at position p - dropped - 1 of what the teacher
                # read after the context; at -1 (the token after a dropped BOS), by the context's end.
                positions = np.nonzero(doc_rows >= 0)[0] - dropped - 1
                targets = doc_rows[doc_rows >= 0]
                first = positions < 0
                if first.any():
                    ids[targets[first]], logprobs[targets[first]] = after_context
                ids[targets[~first]] = top_ids[i, positions[~first]]
                logprobs[targets[~first]] = top_logprobs[i, positions[~first]]
                read += len(tokens)
        return read


def teacher_rows(model_path: str, tokenizer, stream: TokenStream, settings: DistillSettings, folder: Path,
                 runtime) -> TeacherRows:
    """The teacher's rows of `stream` in `folder`: reused when complete for the same key, else computed,
    each process of a distributed run taking every world_size-th context (so that no process waits
    through the whole pass at a barrier), a killed pass resuming from each process's last commit."""
    key = teacher_key(stream, model_path, settings)
    done = open_rows(folder, key)
    if done is not None:
        return done
    rows = row_index(stream)
    shape = (max(int(rows.max(initial=-1)) + 1, 1), settings.top_k)
    if runtime.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        if not any(_progress(folder, key, rank)["groups_done"] for rank in range(runtime.world_size)):
            for rank in range(runtime.world_size):
                (folder / f"progress-{rank}.json").unlink(missing_ok=True)
            np.save(folder / "row_of_token.npy", rows)
            for name, dtype in (("ids.bin", np.int32), ("logprobs.bin", np.float32)):
                np.memmap(folder / name, dtype=dtype, mode="w+", shape=shape).flush()
    runtime.barrier()
    ids = np.memmap(folder / "ids.bin", dtype=np.int32, mode="r+", shape=shape)
    logprobs = np.memmap(folder / "logprobs.bin", dtype=np.float32, mode="r+", shape=shape)
    contexts, context_index = stream.contexts()
    groups = _groups(context_index)
    mine = list(range(runtime.rank, len(groups), runtime.world_size))
    state = _progress(folder, key, runtime.rank)
    teacher = TeacherPass(model_path, tokenizer, stream, settings, runtime.device)
    with progress() if runtime.is_main else nullcontext() as bar:
        task = bar and bar.add_task("teacher pass", total=len(mine), completed=state["groups_done"])
        for done_here, number in enumerate(mine[state["groups_done"]:], start=state["groups_done"] + 1):
            context, documents = groups[number]
            tokens = context_ids(tokenizer, contexts[context], settings.context_tokens) if context >= 0 else []
            state["tokens_read"] += teacher.group(tokens, documents, rows, ids, logprobs)
            state["groups_done"] = done_here
            _commit(folder, runtime.rank, state, ids, logprobs)
            if bar:
                bar.update(task, completed=done_here)
    del teacher
    runtime.barrier()
    if runtime.is_main:
        read = sum(_progress(folder, key, rank)["tokens_read"] for rank in range(runtime.world_size))
        write_json(folder / "meta.json", {"key": key, "n_rows": shape[0] if rows.max(initial=-1) >= 0 else 0,
                                          "top_k": settings.top_k, "groups": len(groups), "tokens_read": read})
    runtime.barrier()
    return open_rows(folder, key)


def _progress(folder: Path, key: str, rank: int) -> dict:
    """The committed progress of process `rank` in a pass for `key` (none when the files are another pass's)."""
    try:
        state = json.loads((folder / f"progress-{rank}.json").read_text())
    except (OSError, ValueError):
        state = {}
    if state.get("key") != key or not (folder / "ids.bin").is_file():
        return {"key": key, "groups_done": 0, "tokens_read": 0}
    return state


def _commit(folder: Path, rank: int, state: dict, ids: np.memmap, logprobs: np.memmap) -> None:
    """Rows on disk first, then the progress that counts them."""
    ids.flush()
    logprobs.flush()
    write_json(folder / f"progress-{rank}.json", state)


def plan_rows(settings, run) -> list[tuple[str, str]]:
    """The teacher pass's cost for `synthcpt plan train`, from the mix's token counts and the corpus's
    chunks (before anything is tokenised): the tokens it reads and the rows it stores."""
    if settings.data == "mix" and not any(run.mix.glob("*.parquet")):
        return [("teacher pass", "known once generate has written the mix")]
    try:
        sources = Sources(run.documents(), run.chunks())
    except SynthcptError:
        return [("teacher pass", "known once ingest has run")]
    chunks, documents = {c.chunk_id: c for c in sources.chunks}, {d.doc_id: d for d in sources.documents}
    chunks_of = sources.chunks_of()
    texts = tokens = 0
    contexts: dict[str, int] = {}

    def continuation_cost(doc_id: str) -> None:
        nonlocal texts, tokens
        before = 0
        for chunk in chunks_of.get(doc_id, []):
            texts, tokens = texts + 1, tokens + chunk.n_tokens
            contexts[chunk.chunk_id + ":before"] = min(before, settings.distill.context_tokens)
            before += chunk.n_tokens

    if settings.data == "raw":
        for document in sources.documents:
            continuation_cost(document.doc_id)
    else:
        import pyarrow.parquet as pq

        for path in sorted(run.mix.glob("*.parquet")):
            for row in pq.read_table(path, columns=["generator", "n_tokens", "doc_id", "chunk_id"]).to_pylist():
                if settings.generators is not None and row["generator"] not in settings.generators:
                    continue
                if row["generator"] == RAW:
                    continuation_cost(row["doc_id"])
                    continue
                texts, tokens = texts + 1, tokens + row["n_tokens"]
                source = chunks.get(row["chunk_id"]) or documents.get(row["doc_id"])
                if source is not None:
                    contexts[row["chunk_id"] or row["doc_id"]] = min(source.n_tokens, settings.distill.context_tokens)
    stored = tokens * settings.distill.top_k * 8 + tokens * 8  # ids and log-probs, plus the token index
    read = (f"{texts:,} texts ({tokens:,} tokens) read after {len(contexts):,} contexts "
            f"({sum(contexts.values()):,} tokens, each read once)")
    return [("teacher pass", read),
            ("teacher rows on disk", f"{stored / 2**30:.2f} GiB (top {settings.distill.top_k})")]
