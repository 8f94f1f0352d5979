"""Words and word n-grams of prompts as 64-bit hashes, vectorised (Polars to split, numpy for the rest).

A text's words are its lowercase whitespace-separated tokens (punctuation stays attached). Word hashes
come from Polars; an n-gram's hash is the polynomial sum_j w[i+j] * P^j (mod 2^64) of its word hashes,
read off prefix sums in O(1) per position whatever n is, then mixed (splitmix64) so every bit is usable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

P = np.uint64(0x9E3779B97F4A7C15)  # odd, so it has an inverse mod 2^64
P_INV = np.uint64(pow(int(P), -1, 1 << 64))
WORD_SEED = 0x5EED


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


def words(texts: pl.Series) -> Words:
    """Lowercase, newline/tab as space, split on spaces; empty tokens (runs of spaces) are dropped."""
    lowered = texts.fill_null("").str.to_lowercase()
    # Literal replaces only touch texts that hold the character; a \s+ regex over all texts costs 10x more.
    for char in ("\n", "\t", "\r", "\u00a0"):
        lowered = lowered.str.replace_all(char, " ", literal=True)
    lists = lowered.str.split(" ")
    counts = lists.list.len().to_numpy().astype(np.int64)
    flat = lists.explode()
    keep = (flat.str.len_bytes() > 0).to_numpy()
    hashes = flat.hash(WORD_SEED).to_numpy()
    if not keep.all():
        doc = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        hashes, doc = hashes[keep], doc[keep]
        counts = np.bincount(doc, minlength=len(counts)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Words(np.ascontiguousarray(hashes, dtype=np.uint64), offsets)


def mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, in place on a uint64 array (wrapping arithmetic)."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _prefix(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S[i] = sum_{j<i} w_j P^j and P^-i, for i in 0..len (uint64, wrapping)."""
    n = len(hashes)
    powers = np.empty(n + 1, dtype=np.uint64)
    powers[0] = 1
    if n:
        powers[1:] = P
        np.cumprod(powers, out=powers)
    inverse = np.empty(n + 1, dtype=np.uint64)
    inverse[0] = 1
    if n:
        inverse[1:] = P_INV
        np.cumprod(inverse, out=inverse)
    prefix = np.zeros(n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.cumsum(hashes * powers[:n], out=prefix[1:])
    return prefix, inverse


def ngrams(w: Words, n: int, short: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, text index) of every word n-gram; with `short`, a text of fewer than n words gives one
    n-gram of all its words (shingles for similarity), else none (n-gram overlap)."""
    prefix, inverse = _prefix(w.hashes)
    starts, counts = w.offsets[:-1], w.counts
    per_text = np.maximum(counts - n + 1, 0)
    if short:
        per_text = np.where((counts > 0) & (counts < n), 1, per_text)
    text = np.repeat(np.arange(len(counts), dtype=np.int64), per_text)
    first = np.repeat(starts - np.concatenate([[0], np.cumsum(per_text)[:-1]]), per_text)
    pos = np.arange(len(text), dtype=np.int64) + first  # the n-gram's first word, in the flat array
    stop = np.minimum(pos + n, w.offsets[1:][text])
    with np.errstate(over="ignore"):
        grams = (prefix[stop] - prefix[pos]) * inverse[pos]
    return mix(grams), text


def text_keys(w: Words) -> np.ndarray:
    """One hash per text of its whole word sequence: texts equal up to case and spacing share a key."""
    prefix, inverse = _prefix(w.hashes)
    with np.errstate(over="ignore"):
        keys = (prefix[w.offsets[1:]] - prefix[w.offsets[:-1]]) * inverse[w.offsets[:-1]]
    keys = mix(keys + w.counts.astype(np.uint64))
    return keys
