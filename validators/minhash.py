"""MinHash signatures of shingle sets (a compiled pass, validators/kernels.py) and LSH candidate pairs (numpy).

One-permutation hashing (Li, Owen & Zhang 2012) with densification: each shingle
hash picks one of K bins by its top 6 bits and competes there with its low 32
bits, so a text costs one pass over its shingles instead of K; an empty bin
copies the first non-empty bin along its own fixed sequence of bins ("optimal
densification", Shrivastava 2017), so texts with the same non-empty bins fill
their empty ones alike, and empty bins borrow from different sources. The
minimum of each bin is kept as 16 bits (b-bit MinHash: two different minima
agree by chance with probability 2^-16), which is what a signature stores.
Banding: BANDS bands of ROWS slots; texts that agree on all slots of a band
are candidates, and a candidate pair is kept when the share of equal slots
(the Jaccard estimate) reaches the threshold."""

from __future__ import annotations

import numpy as np

from prefmix.validators import bitset, kernels, ngrams, threads

SLOTS = 64
BANDS = 12  # bands of ROWS slots (60 of the 64; all 64 estimate the similarity): candidates with
ROWS = 5  # probability 0.89 at Jaccard 0.7, 0.99 at 0.8, and 16x fewer chance ones than 16 bands of 4
MAX_GROUP = 8  # partners checked per text within one band bucket (a bucket of near-identical texts is dense)


def signatures(w: ngrams.Words, shingle: int, keys: np.ndarray | None = None,
               sig: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(keys, signatures) of the texts of w: ngrams.text_keys, and (n, SLOTS) uint16 signatures of their word
    `shingle`-grams (a text of fewer words: one shingle of all of them). A text without words gets noise in
    every slot and must be left out. One compiled pass per text (validators/kernels.py), into `keys` and
    `sig` when given (rows of larger arrays: no copy)."""
    keys = np.empty(len(w), dtype=np.uint64) if keys is None else keys
    sig = np.empty((len(w), SLOTS), dtype=np.uint16) if sig is None else sig
    kernels.sketch(w.hashes, w.offsets, shingle, ngrams.P, ngrams.P_INV, keys, sig)
    return keys, sig


FOLD = np.uint64(0xD6E8FEB86659FD93)  # folds a band's fifth slot into the word of its first four


def band_key(sig: np.ndarray, band: int) -> np.ndarray:
    """(n,) uint64: band `band`'s ROWS 16-bit slots in one word (equal slots, equal key): the first four
    read as one little-endian 64-bit word, the fifth times FOLD added. The definition; `band_keys` makes
    every band's at once."""
    sig = np.ascontiguousarray(sig, dtype=np.uint16)
    first = band * ROWS
    head = sig[:, first : first + 4].astype(np.uint64) << (np.arange(4, dtype=np.uint64) * np.uint64(16))
    with np.errstate(over="ignore"):
        return np.bitwise_or.reduce(head, axis=1) + sig[:, first + 4].astype(np.uint64) * FOLD


def band_keys(sig: np.ndarray) -> np.ndarray:
    """(BANDS, n) uint64: every band's key (band_key) in one compiled pass over the signature rows."""
    return kernels.band_keys(np.ascontiguousarray(sig, dtype=np.uint16), BANDS, ROWS, FOLD)


MEMBER_BITS = 20  # a 128 KB bit set of a band's repeated keys: texts are tested against it before the search


def _repeated(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(texts ascending, index of their key in the sorted repeated keys) for keys that occur more than once."""
    ordered = np.sort(column)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if repeated.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    shared = np.unique(repeated)
    shift = np.uint64(64 - MEMBER_BITS)
    spread = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        table = bitset.table((shared * spread) >> shift, MEMBER_BITS)
        maybe = bitset.maybe(table, (column * spread) >> shift)
    where = np.minimum(np.searchsorted(shared, column[maybe]), len(shared) - 1)
    found = shared[where] == column[maybe]
    return maybe[found], where[found]


def candidate_pairs(sig: np.ndarray) -> np.ndarray:
    """(m, 2) int64 index pairs (i < j) of texts sharing a band key, band by band (sorting one band's keys
    is cheaper than arg-sorting all of them; bands side by side on the machine's cores). Within one bucket
    each text meets at most MAX_GROUP texts before it and the bucket's first text, so a bucket of thousands
    of copies stays linear."""
    n = len(sig)
    keys = band_keys(sig)
    found = [p for band in threads.ordered_map(lambda b: _band_pairs(keys[b], n), range(BANDS)) for p in band]
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    unique = np.unique(np.concatenate(found))  # one entry per pair over all bands (lower index first)
    return np.stack([unique // n, unique % n], axis=1)


def _band_pairs(keys: np.ndarray, n: int) -> list[np.ndarray]:
    """One band's candidate pairs (keys: the band's key per text), each coded i * n + j."""
    texts, bucket = _repeated(keys)
    if texts.size == 0:
        return []
    order = np.argsort(bucket, kind="stable")  # few texts: by bucket, texts ascending within one
    bucket, texts = bucket[order], texts[order]
    starts = np.flatnonzero(np.concatenate([[True], bucket[1:] != bucket[:-1]]))
    sizes = np.diff(np.append(starts, len(bucket)))
    rank = np.arange(len(bucket)) - np.repeat(starts, sizes)
    found = []
    for k in range(1, MAX_GROUP + 1):
        later = np.flatnonzero(rank >= k)
        if later.size == 0:
            break
        found.append(texts[later - k] * n + texts[later])
    rest = np.flatnonzero(rank > MAX_GROUP)
    if rest.size:
        found.append(texts[np.repeat(starts, sizes)[rest]] * n + texts[rest])
    return found


def similarity(sig: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Estimated Jaccard of each pair: the share of equal slots."""
    if len(pairs) == 0:
        return np.empty(0, dtype=np.float64)
    out = np.empty(len(pairs), dtype=np.float64)
    for start in range(0, len(pairs), 1 << 15):  # small blocks: bounded memory for many candidates
        part = pairs[start : start + (1 << 15)]
        out[start : start + len(part)] = (sig[part[:, 0]] == sig[part[:, 1]]).mean(axis=1)
    return out
