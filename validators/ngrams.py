"""Words and word n-grams of prompts as 64-bit hashes (a compiled pass to split and hash, numpy for the rest).

A text's words are its lowercase whitespace-separated tokens (punctuation stays attached). Word hashes come
from one pass over the UTF-8 bytes (validators/kernels.py); an n-gram's hash is the polynomial
sum_j w[i+j] * P^j (mod 2^64) of its word hashes, read off prefix sums in O(1) per position whatever n is.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from prefmix.hashing import mix64
from prefmix.validators import kernels

P = np.uint64(0x9E3779B97F4A7C15)  # odd, so it has an inverse mod 2^64
P_INV = np.uint64(pow(int(P), -1, 1 << 64))


@dataclass(frozen=True)
class Words:
    """Word hashes of n texts, flat, with offsets: text i has hashes[offsets[i]:offsets[i + 1]]."""

    hashes: np.ndarray  # uint64
    offsets: np.ndarray  # int64, length n + 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def of(cls, hashes: np.ndarray, counts: np.ndarray) -> "Words":
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(hashes, offsets)

    def select(self, texts: np.ndarray) -> "Words":
        """The words of some texts (indices ascending), as a Words of their own."""
        counts = self.counts[texts]
        return Words.of(self.hashes[_flat_index(self.offsets[texts], counts)], counts)


def words(texts: pl.Series) -> Words:
    """Lowercase, split on spaces, tabs, newlines, carriage returns and U+00A0 (runs of them make no empty
    words); each word hashed by validators/kernels.py's fixed scheme, in one compiled pass over the bytes."""
    hashes, counts, wide = kernels.word_hashes(*_bytes(texts))
    first = Words.of(hashes, counts)
    if not wide.any():
        return first
    # ASCII letters are lowercased in the pass itself; texts with other characters are lowercased by Polars
    # (Unicode rules) and hashed again, and their words take the place of the first ones.
    rows = np.flatnonzero(wide)
    again_hashes, again_counts, _ = kernels.word_hashes(*_bytes(texts.gather(rows).str.to_lowercase()))
    counts = counts.copy()
    counts[rows] = again_counts
    out = Words.of(np.empty(int(counts.sum()), dtype=np.uint64), counts)
    same = np.flatnonzero(~wide)
    out.hashes[_flat_index(out.offsets[same], counts[same])] = first.select(same).hashes
    out.hashes[_flat_index(out.offsets[rows], again_counts)] = again_hashes
    return out


def _bytes(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes and int64 offsets of a text column (null as empty), without a copy per text."""
    arrow = texts.fill_null("").rechunk().to_arrow()
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    if arrow.type != pa.large_string():
        arrow = arrow.cast(pa.large_string())
    _, offsets, data = arrow.buffers()
    return (np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(1, dtype=np.uint8),
            np.frombuffer(offsets, dtype=np.int64)[arrow.offset : arrow.offset + len(arrow) + 1])


def _flat_index(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The flat positions starts[i], starts[i] + 1, ..., starts[i] + counts[i] - 1, for every i in turn."""
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(int(ends[-1]) if len(ends) else 0, dtype=np.int64)


@functools.lru_cache(maxsize=4)
def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """P^i and P^-i for i in 0..size (uint64, wrapping), kept for the next chunk of the same size class."""
    powers = np.full(size + 1, P, dtype=np.uint64)
    powers[0] = 1
    np.cumprod(powers, out=powers)
    inverse = np.full(size + 1, P_INV, dtype=np.uint64)
    inverse[0] = 1
    np.cumprod(inverse, out=inverse)
    return powers, inverse


@dataclass(frozen=True)
class Prefix:
    """S[i] = sum_{j<i} w_j P^j over a text chunk's flat word hashes, and P^-i: any run of words w[a:b] hashes
    to (S[b] - S[a]) * P^-a in O(1)."""

    sums: np.ndarray
    inverse: np.ndarray
    owner: np.ndarray  # the text of each flat position
    end: np.ndarray  # the end (exclusive) of that text, in the flat array

    @classmethod
    def of(cls, w: Words) -> "Prefix":
        n = len(w.hashes)
        size = 1 << max(16, (n + 1).bit_length())  # size classes: the cached powers are reused across chunks
        powers, inverse = _powers(size)
        sums = np.zeros(n + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            np.cumsum(w.hashes * powers[:n], out=sums[1:])
        # int32 positions: a chunk holds far fewer than 2^31 words, and half the memory traffic
        owner = np.repeat(np.arange(len(w), dtype=np.int32), w.counts)
        return cls(sums, inverse[: n + 1], owner, w.offsets[1:].astype(np.int32)[owner])

    def runs(self, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return (self.sums[stops] - self.sums[starts]) * self.inverse[starts]


def ngrams(w: Words, n: int, short: bool = False, prefix: Prefix | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, text index) of every word n-gram; with `short`, a text of fewer than n words gives one
    n-gram of all its words (shingles for similarity), else none (n-gram overlap)."""
    prefix = prefix or Prefix.of(w)
    total = len(w.hashes)
    counts = w.counts
    if total >= n:
        # Every flat position at once (contiguous slices, no gathers); then drop the n-grams that run past
        # the end of their text: the last n-1 positions of each text.
        m = total - n + 1
        with np.errstate(over="ignore"):
            grams = (prefix.sums[n:] - prefix.sums[:-n]) * prefix.inverse[:m]
        valid = np.arange(n, m + n, dtype=np.int32) <= prefix.end[:m]
        grams, owner = grams[valid], prefix.owner[:m][valid]
    else:
        grams, owner = np.empty(0, np.uint64), np.empty(0, np.int32)
    if short:
        few = np.flatnonzero((counts > 0) & (counts < n))
        if few.size:
            grams = np.concatenate([grams, prefix.runs(w.offsets[few], w.offsets[few + 1])])
            owner = np.concatenate([owner, few.astype(np.int32)])
    # No final mix: a polynomial of well-mixed 64-bit word hashes is already uniform in every bit.
    return grams, owner


def text_keys(w: Words, prefix: Prefix | None = None) -> np.ndarray:
    """One hash per text of its whole word sequence: texts equal up to case and spacing share a key."""
    prefix = prefix or Prefix.of(w)
    with np.errstate(over="ignore"):
        return mix64(prefix.runs(w.offsets[:-1], w.offsets[1:]) + w.counts.astype(np.uint64), in_place=True)
