"""Exact and near-duplicate detection over record texts, in arrival order (the first copy stays)."""

from __future__ import annotations

import hashlib
import re

NORMALISE = re.compile(r"\W+")
SHINGLE_WORDS = 5
NUM_PERM = 128


def normalised(text: str) -> list[str]:
    return NORMALISE.sub(" ", text.lower()).split()


class Deduplicator:
    """`check(text)` answers 'exact_duplicate', 'near_duplicate' or None, and remembers kept texts.

    Exact: same words after lower-casing and dropping punctuation. Near: MinHash LSH over word
    5-gram shingles, estimated Jaccard similarity at or above `threshold`."""

    def __init__(self, threshold: float, seed: int = 1):
        from datasketch import MinHashLSH

        self.seed = seed
        self.exact: set[bytes] = set()
        self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self.count = 0

    def _minhash(self, words: list[str]):
        from datasketch import MinHash

        shingles = {" ".join(words[i:i + SHINGLE_WORDS]).encode()
                    for i in range(max(1, len(words) - SHINGLE_WORDS + 1))}
        minhash = MinHash(num_perm=NUM_PERM, seed=self.seed)
        minhash.update_batch(list(shingles))
        return minhash

    def check(self, text: str) -> str | None:
        words = normalised(text)
        digest = hashlib.sha256(" ".join(words).encode()).digest()
        if digest in self.exact:
            return "exact_duplicate"
        minhash = self._minhash(words)
        if self.lsh.query(minhash):
            return "near_duplicate"
        self.exact.add(digest)
        self.lsh.insert(str(self.count), minhash)
        self.count += 1
        return None
