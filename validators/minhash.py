"""MinHash signatures of shingle sets and LSH candidate pairs, in numpy.

One-permutation hashing (Li, Owen & Zhang 2012) with rotation densification
(Shrivastava & Li 2014): each shingle hash picks one of K bins by its top bits
and competes there with its low bits, so a text costs one pass over its
shingles instead of K; an empty bin borrows from the next non-empty one. The
minimum of each bin is kept as 16 bits (b-bit MinHash: two different minima
agree by chance with probability 2^-16), which is what a signature stores.
Banding: BANDS bands of ROWS slots; texts that agree on all slots of a band
are candidates, and a candidate pair is kept when the share of equal slots
(the Jaccard estimate) reaches the threshold.
"""

from __future__ import annotations

import numpy as np

from prefmix.hashing import mix64

SLOTS = 64
BANDS = 12  # bands of ROWS slots (60 of the 64; all 64 estimate the similarity): candidates with
ROWS = 5  # probability 0.89 at Jaccard 0.7, 0.99 at 0.8, and 16x fewer chance ones than 16 bands of 4
EMPTY = np.uint32(0xFFFFFFFF)
MAX_GROUP = 8  # partners checked per text within one band bucket (a bucket of near-identical texts is dense)


def signatures(shingles: np.ndarray, text: np.ndarray, n_texts: int) -> np.ndarray:
    """(n_texts, SLOTS) uint16 signatures; a text without shingles gets all slots 0 and must be left out."""
    bins = (shingles >> np.uint64(58)).astype(np.int64)  # top 6 bits: the bin (SLOTS = 64)
    values = (shingles & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    table = np.full(SLOTS * n_texts, EMPTY, dtype=np.uint32)
    np.minimum.at(table, bins * n_texts + text, values)  # bin-major: each bin is one contiguous row
    table = table.reshape(SLOTS, n_texts)
    _densify(table)
    return np.ascontiguousarray((table & np.uint32(0xFFFF)).astype(np.uint16).T)


def _densify(table: np.ndarray) -> None:
    """An empty bin takes the next non-empty bin's value (circularly) plus STEP per bin of distance, so two
    texts with the same non-empty bins fill their empty bins alike. Two sweeps right to left carry the value
    across: the first finds each text's nearest non-empty bin, the second fills (whole-row vector ops)."""
    empty = table == EMPTY
    if not empty.any():
        return
    carry = np.full(table.shape[1], EMPTY, dtype=np.uint32)
    step = np.uint32(0x9E3779B1)
    for sweep in range(2):
        for j in range(SLOTS - 1, -1, -1):
            hole = empty[j]
            carry = np.where(hole, carry + step, table[j])  # (a text with no shingle at all carries noise)
            if sweep:
                table[j] = carry


def band_keys(sig: np.ndarray, band: int) -> np.ndarray:
    """(n,) uint64: band `band`'s ROWS 16-bit slots hashed into one word, salted with the band number."""
    part = sig[:, band * ROWS : (band + 1) * ROWS].astype(np.uint64)
    keys = np.full(len(sig), np.uint64((band + 1) * 0xD6E8FEB86659FD93 % (1 << 64)), dtype=np.uint64)
    for r in range(ROWS):
        keys ^= part[:, r] << np.uint64(16 * (r % 4))
        if r % 4 == 3:
            keys = mix64(keys, in_place=True)
    return mix64(keys, in_place=True)


def candidate_pairs(sig: np.ndarray) -> np.ndarray:
    """(m, 2) int64 index pairs (i < j) of texts sharing a band key, band by band (sorting one band's keys
    is cheaper than arg-sorting all of them). Within one bucket each text meets at most MAX_GROUP texts
    before it and the bucket's first text, so a bucket of thousands of copies stays linear."""
    n = len(sig)
    found: list[np.ndarray] = []
    for band in range(BANDS):
        column = band_keys(sig, band)
        ordered = np.sort(column)
        repeated = ordered[1:][ordered[1:] == ordered[:-1]]
        if repeated.size == 0:
            continue
        shared = np.unique(repeated)
        where = np.minimum(np.searchsorted(shared, column), len(shared) - 1)
        texts = np.flatnonzero(shared[where] == column)
        bucket = where[texts]
        order = np.argsort(bucket, kind="stable")  # few texts: by bucket, texts ascending within one
        bucket, texts = bucket[order], texts[order]
        starts = np.flatnonzero(np.concatenate([[True], bucket[1:] != bucket[:-1]]))
        sizes = np.diff(np.append(starts, len(bucket)))
        rank = np.arange(len(bucket)) - np.repeat(starts, sizes)
        for k in range(1, MAX_GROUP + 1):
            later = np.flatnonzero(rank >= k)
            if later.size == 0:
                break
            found.append(texts[later - k] * n + texts[later])
        rest = np.flatnonzero(rank > MAX_GROUP)
        if rest.size:
            found.append(texts[np.repeat(starts, sizes)[rest]] * n + texts[rest])
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    unique = np.unique(np.concatenate(found))  # one entry per pair over all bands (lower index first)
    return np.stack([unique // n, unique % n], axis=1)


def similarity(sig: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Estimated Jaccard of each pair: the share of equal slots."""
    if len(pairs) == 0:
        return np.empty(0, dtype=np.float64)
    out = np.empty(len(pairs), dtype=np.float64)
    for start in range(0, len(pairs), 1 << 15):  # small blocks: bounded memory for many candidates
        part = pairs[start : start + (1 << 15)]
        out[start : start + len(part)] = (sig[part[:, 0]] == sig[part[:, 1]]).mean(axis=1)
    return out
