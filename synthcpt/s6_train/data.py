"""Training data: documents tokenised once into a memory-mapped token stream, packed into fixed blocks.

Each document is its tokens followed by EOS; documents are concatenated and cut into blocks of
`block_size` tokens (the tail shorter than a block is dropped), so a corpus of any size streams
from disk. Alongside the tokens: the start offset of every document (for document-aware attention)
and, for instruction pairs, a mask of the tokens that carry the loss (the responses).

A packed stream lives in a folder: `tokens.bin`, `targets.bin` (1 where the token carries the loss:
every token of plain text, the response tokens of instruction pairs), `doc_starts.npy`, for context
distillation the teacher's context of each document (`contexts.json`, `context_index.npy`), and
`meta.json`, written last, so a folder without it is incomplete and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthcpt.atomic import write_json
from synthcpt.errors import SynthcptError
from synthcpt.progress import track

TOKENIZE_BATCH = 256
IGNORE_INDEX = -100


@dataclass(frozen=True)
class Example:
    """One training document: plain text, or an instruction whose response alone carries the loss;
    for context distillation, what the teacher reads before it (`context`) and whether a long context
    keeps its end (the text just before a chunk) or its beginning (a source document)."""

    text: str
    prompt: str = ""
    context: str = ""
    context_keeps_end: bool = False


def read_parquet_column(files: list[Path], column: str, where: tuple[str, set[str]] | None = None) -> Iterator[str]:
    """Stream one text column from parquet files, batch by batch; with `where` (a column and its
    accepted values), only from the rows that match."""
    import pyarrow.parquet as pq

    for path in files:
        reader = pq.ParquetFile(path)
        needed = [column] + ([where[0]] if where else [])
        missing = [c for c in needed if c not in reader.schema_arrow.names]
        if missing:
            raise SynthcptError(f"{path} has no '{missing[0]}' column "
                                f"(columns: {', '.join(reader.schema_arrow.names)})")
        for batch in reader.iter_batches(columns=needed):
            values = batch.column(column).to_pylist()
            keep = batch.column(where[0]).to_pylist() if where else [None] * len(values)
            yield from (v for v, k in zip(values, keep) if v and (where is None or k in where[1]))


def read_instruction_pairs(files: list[Path]) -> Iterator[tuple[str, str]]:
    import pyarrow.parquet as pq

    for path in files:
        reader = pq.ParquetFile(path)
        missing = {"instruction", "response"} - set(reader.schema_arrow.names)
        if missing:
            raise SynthcptError(f"{path} lacks the column(s) {', '.join(sorted(missing))} of instruction pairs")
        for batch in reader.iter_batches(columns=["instruction", "response"]):
            for instruction, response in zip(*(c.to_pylist() for c in batch.columns)):
                if instruction and response:
                    yield instruction, response


def instruction_examples(pairs: Iterable[tuple[str, str]], tokenizer) -> Iterator[Example]:
    """Pairs in the model's chat format (a plain "instruction, blank line, response" without a template)."""
    for instruction, response in pairs:
        if tokenizer.chat_template:
            user = [{"role": "user", "content": instruction}]
            prompt = tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
            full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": response}], tokenize=False)
            if not full.startswith(prompt):
                raise SynthcptError("the tokenizer's chat template does not render the prompt as a prefix of "
                                    "the conversation; instruction mode cannot mask the prompt")
            # Without the template's trailing newline, so the turn's end token can close the document.
            yield Example(text=full[len(prompt):].rstrip(), prompt=prompt)
        else:
            yield Example(text=response, prompt=instruction + "\n\n")


def _eos_id(tokenizer) -> int:
    if tokenizer.eos_token_id is None:
        raise SynthcptError("the tokenizer has no EOS token to separate packed documents")
    return int(tokenizer.eos_token_id)


def _encode_batch(batch: list[Example], tokenizer, eos: int) -> Iterator[tuple[list[int], list[int]]]:
    """(tokens, targets) per example: targets 1 where the token carries the loss. Plain text gets the
    tokenizer's own special tokens (BOS where it uses one); a prompt rendered by the chat template
    carries them already."""
    if not any(e.prompt for e in batch):
        encoded = tokenizer([e.text for e in batch], add_special_tokens=True)["input_ids"]
        prompts: list[list[int]] = [[] for _ in batch]
    else:
        encoded = tokenizer([e.text for e in batch], add_special_tokens=False)["input_ids"]
        prompts = tokenizer([e.prompt for e in batch], add_special_tokens=not tokenizer.chat_template)["input_ids"]
    for prompt, text in zip(prompts, encoded):
        if not text or text[-1] != eos:
            text = text + [eos]
        yield prompt + text, [0] * len(prompt) + [1] * len(text)


def stream_key(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_stream(folder: Path, examples: Iterable[Example], tokenizer, key: str, description: str) -> TokenStream:
    """Tokenise the examples into `folder` (reused when its meta.json has the same key)."""
    existing = TokenStream.open(folder)
    if existing is not None and existing.meta.get("key") == key:
        return existing
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    eos = _eos_id(tokenizer)
    dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max + 1 else np.uint32
    doc_starts, n_tokens, n_targets, batch = [], 0, 0, []
    contexts: dict[tuple[str, bool], int] = {}
    context_index: list[int] = []
    with open(folder / "tokens.bin", "wb") as tokens_file, open(folder / "targets.bin", "wb") as targets_file:
        def flush() -> None:
            nonlocal n_tokens, n_targets
            if not batch:
                return
            for example, (tokens, targets) in zip(batch, _encode_batch(batch, tokenizer, eos)):
                context = (example.context, example.context_keeps_end)
                context_index.append(contexts.setdefault(context, len(contexts)) if example.context else -1)
                doc_starts.append(n_tokens)
                tokens_file.write(np.asarray(tokens, dtype=dtype).tobytes())
                targets_file.write(np.asarray(targets, dtype=np.uint8).tobytes())
                n_tokens += len(tokens)
                n_targets += sum(targets)
            batch.clear()

        for example in track(examples, description):
            batch.append(example)
            if len(batch) == TOKENIZE_BATCH:
                flush()
        flush()
    np.save(folder / "doc_starts.npy", np.asarray(doc_starts, dtype=np.int64))
    if contexts:
        np.save(folder / "context_index.npy", np.asarray(context_index, dtype=np.int64))
        write_json(folder / "contexts.json", [{"text": text, "keeps_end": end} for text, end in contexts])
    write_json(folder / "meta.json", {"key": key, "dtype": np.dtype(dtype).name, "n_tokens": n_tokens,
                                      "n_target_tokens": n_targets, "n_documents": len(doc_starts)})
    return TokenStream.open(folder)


class TokenStream:
    """A packed token stream on disk, read through memory maps."""

    def __init__(self, folder: Path, meta: dict):
        self.folder = folder
        self.meta = meta
        self.n_tokens = int(meta["n_tokens"])
        shape = (max(self.n_tokens, 1),)
        self.tokens = np.memmap(folder / "tokens.bin", dtype=meta["dtype"], mode="r", shape=shape) \
            if self.n_tokens else np.zeros(0, dtype=meta["dtype"])
        self.targets = np.memmap(folder / "targets.bin", dtype=np.uint8, mode="r", shape=shape) \
            if self.n_tokens else np.zeros(0, dtype=np.uint8)
        self.doc_starts = np.load(folder / "doc_starts.npy")

    @classmethod
    def open(cls, folder: Path) -> TokenStream | None:
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            return None
        try:
            return cls(folder, json.loads(meta_path.read_text()))
        except (OSError, ValueError, KeyError):
            return None

    def contexts(self) -> tuple[list[dict], np.ndarray]:
        """The distinct teacher contexts ({text, keeps_end}) and each document's index into them (-1: none)."""
        if not (self.folder / "contexts.json").is_file():
            return [], np.full(len(self.doc_starts), -1, dtype=np.int64)
        return json.loads((self.folder / "contexts.json").read_text()), np.load(self.folder / "context_index.npy")

    def n_blocks(self, block_size: int) -> int:
        return self.n_tokens // block_size

    def block(self, index: int, block_size: int, document_attention: bool) -> dict[str, np.ndarray]:
        """input_ids, labels (IGNORE_INDEX where no loss) and, for document-aware attention,
        position_ids restarting at every document start (and at the block start)."""
        start, end = index * block_size, (index + 1) * block_size
        tokens = np.asarray(self.tokens[start:end], dtype=np.int64)
        labels = np.where(np.asarray(self.targets[start:end]) > 0, tokens, IGNORE_INDEX)
        item = {"input_ids": tokens, "labels": labels}
        if document_attention:
            offsets = np.arange(start, end)
            doc_start = self.doc_starts[np.searchsorted(self.doc_starts, offsets, side="right") - 1]
            item["position_ids"] = offsets - np.maximum(doc_start, start)
        return item


def sequence_order(n_main: int, n_replay: int, replay_share: float, n_sequences: int, seed: int) -> np.ndarray:
    """The training order of `n_sequences` sequences: ids >= 0 are main blocks, -1 - j replay block j.

    Each epoch holds every main block once plus round(n_main * share / (1 - share)) replay blocks
    (so replay is `share` of the sequences), shuffled together; replay blocks are drawn without
    repetition until all were used. Deterministic for a seed: the data position of a resumed run
    is just the number of sequences consumed.
    """
    per_epoch_replay = round(n_main * replay_share / (1 - replay_share)) if n_replay and replay_share else 0
    replay_pool = np.zeros(0, dtype=np.int64)
    epochs, total, epoch = [], 0, 0
    while total < n_sequences:
        rng = np.random.default_rng([seed, epoch])
        while len(replay_pool) < per_epoch_replay:
            replay_pool = np.concatenate([replay_pool, rng.permutation(n_replay)])
        replay, replay_pool = replay_pool[:per_epoch_replay], replay_pool[per_epoch_replay:]
        order = np.concatenate([np.arange(n_main, dtype=np.int64), -1 - replay])
        epochs.append(order[rng.permutation(len(order))])
        total += len(order)
        epoch += 1
    return np.concatenate(epochs)[:n_sequences]


class PackedData:
    """The main stream and the optional replay stream, addressed through `sequence_order` ids; with
    `teacher` (context distillation), each batch also holds the teacher's top-k rows of its tokens."""

    def __init__(self, main: TokenStream, replay: TokenStream | None, block_size: int, document_attention: bool,
                 teacher: TeacherRows | None = None):
        self.main, self.replay, self.teacher = main, replay, teacher
        self.block_size = block_size
        self.document_attention = document_attention
        self.n_main = main.n_blocks(block_size)
        self.n_replay = replay.n_blocks(block_size) if replay is not None else 0

    def batch(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        items = [self.main.block(int(i), self.block_size, self.document_attention) if i >= 0
                 else self.replay.block(int(-1 - i), self.block_size, self.document_attention) for i in ids]
        if self.teacher is not None:
            for i, item in zip(ids, items):
                item.update(self.teacher.block(int(i), self.block_size) if i >= 0
                            else self.teacher.empty(self.block_size))
        return {key: np.stack([item[key] for item in items]) for key in items[0]}

    def n_target_tokens(self, ids: np.ndarray) -> int:
        """Tokens that carry the loss in these sequences (after the causal shift: the first of each
        sequence predicts nothing): under distillation, the main blocks' tokens with a teacher row
        and the replay blocks' labels."""
        total = 0
        for i in range(0, len(ids), 64):
            batch = self.batch(ids[i:i + 64])
            carried = batch["labels"][:, 1:] != IGNORE_INDEX
            if self.teacher is not None:
                carried = np.where(batch["replay"][:, None], carried, batch["teacher_mask"][:, 1:])
            total += int(carried.sum())
        return total


class TeacherRows:
    """The teacher's top-k token ids and log-probabilities of a packed stream's tokens (s6_train.teacher
    writes them): row r of `ids`/`logprobs` is the teacher's distribution of token p where
    `row_of_token[p] == r`, -1 where the token carries no distillation loss."""

    def __init__(self, row_of_token: np.ndarray, ids: np.ndarray, logprobs: np.ndarray):
        self.row_of_token, self.ids, self.logprobs = row_of_token, ids, logprobs
        self.top_k = ids.shape[1]

    def block(self, index: int, block_size: int) -> dict[str, np.ndarray]:
        rows = np.asarray(self.row_of_token[index * block_size:(index + 1) * block_size], dtype=np.int64)
        mask = rows >= 0
        ids = np.zeros((block_size, self.top_k), dtype=np.int64)
        logprobs = np.zeros((block_size, self.top_k), dtype=np.float32)
        ids[mask], logprobs[mask] = self.ids[rows[mask]], self.logprobs[rows[mask]]
        return {"teacher_ids": ids, "teacher_logprobs": logprobs, "teacher_mask": mask, "replay": np.bool_(False)}

    def empty(self, block_size: int) -> dict[str, np.ndarray]:
        """A replay block's: no teacher, the labels carry the loss."""
        return {"teacher_ids": np.zeros((block_size, self.top_k), dtype=np.int64),
                "teacher_logprobs": np.zeros((block_size, self.top_k), dtype=np.float32),
                "teacher_mask": np.zeros(block_size, dtype=bool), "replay": np.bool_(True)}
