"""How rare each word is in a complaint collection: the duplicate scorer's word weights.

Two complaints about the same problem share its specific words (a street or
estate name, a school, a patient's or a shop's name, a licence plate), while
complaints that are merely about the same topic share its common words
("jalan", "lampu", "sampah"). `WordRarity` holds document frequencies so a
shared word can be weighed by its inverse document frequency
(idf = ln((N + 1) / (df + 1))); `model.dedup`'s `shared_rare_words` feature
sums them over the words two texts share.

The table is fitted when the duplicate scorer is calibrated (on the
complaints the labelled pairs come from) and saved in the bundle. Words are
stored as 64-bit hashes, never as text, and only words found in at least
`MIN_DOCUMENTS` complaints: a name that occurs once is not kept at all, and
no word of the collection can be read back from the bundle. Unseen words
count as found in one complaint (as rare as a word can be).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Words in fewer complaints than this are not stored (they read as unseen).
MIN_DOCUMENTS = 2


class RarityError(ValueError):
    """A word-rarity file that cannot be read."""


@functools.lru_cache(maxsize=65536)
def word_key(word: str) -> int:
    """A word's 64-bit key (blake2b of its UTF-8 bytes)."""
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass(frozen=True)
class WordRarity:
    """Document frequencies of hashed words over `documents` complaints."""

    documents: int
    counts: dict[int, int] = field(default_factory=dict)  # word_key -> complaints holding it

    @classmethod
    def fit(cls, word_sets: Iterable[Iterable[str]]) -> WordRarity:
        """Count, for each word, the documents (one word set each) that hold it."""
        df: Counter[int] = Counter()
        n = 0
        for words in word_sets:
            n += 1
            df.update({word_key(w) for w in words})
        return cls(n, {k: c for k, c in df.items() if c >= MIN_DOCUMENTS})

    def idf(self, word: str) -> float:
        """ln((N + 1) / (df + 1)); an unseen word has df 1."""
        return math.log((self.documents + 1) / (self.counts.get(word_key(word), 1) + 1))

    def save(self, path: Path) -> None:
        keys = np.fromiter(self.counts.keys(), dtype=np.uint64, count=len(self.counts))
        values = np.fromiter(self.counts.values(), dtype=np.uint32, count=len(self.counts))
        order = np.argsort(keys)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.savez(f, documents=np.int64(self.documents), keys=keys[order], counts=values[order])

    @classmethod
    def load(cls, path: Path) -> WordRarity:
        try:
            with np.load(path, allow_pickle=False) as z:
                documents, keys, counts = int(z["documents"]), z["keys"], z["counts"]
        except (OSError, ValueError, KeyError) as exc:
            raise RarityError(f"{path}: word-rarity table cannot be read ({exc})") from exc
        if keys.shape != counts.shape or documents < 0:
            raise RarityError(f"{path}: word-rarity table is inconsistent")
        return cls(documents, dict(zip(keys.tolist(), counts.tolist(), strict=True)))
