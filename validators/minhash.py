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

from prefmix.validators.ngrams import mix

SLOTS = 64
BANDS = 16
ROWS = SLOTS // BANDS
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
    """An empty bin takes the next non-empty bin's value (circularly) plus a per-distance offset, so two
    texts with the same non-empty bins fill their empty bins alike."""
    empty = table == EMPTY
    if not empty.any():
        return
    step = np.uint32(0x9E3779B1)
    for _ in range(2):  # two rounds around the circle reach every bin of a text with one non-empty bin
        for j in range(SLOTS - 1, -1, -1):
            hole = empty[j]
            if not hole.any():
                continue
            source = table[(j + 1) % SLOTS]
            fill = hole & (source != EMPTY)
            table[j, fill] = source[fill] + step
            empty[j, fill] = False


def band_keys(sig: np.ndarray) -> np.ndarray:
    """(n, BANDS) uint64: band b's ROWS 16-bit slots packed into one word, salted with b and mixed."""
    packed = sig.astype(np.uint64).reshape(len(sig), BANDS, ROWS)
    keys = np.zeros((len(sig), BANDS), dtype=np.uint64)
    for r in range(ROWS):
        keys |= packed[:, :, r] << np.uint64(16 * r)
    keys ^= (np.arange(BANDS, dtype=np.uint64) * np.uint64(0xD6E8FEB86659FD93))[None, :]
    return mix(keys.ravel()).reshape(len(sig), BANDS)


def candidate_pairs(keys: np.ndarray) -> np.ndarray:
    """(m, 2) int64 index pairs (i < j) of texts sharing a band key; at most MAX_GROUP partners per text
    in one bucket (the first texts of the bucket), so a bucket of thousands of copies stays linear."""
    flat = keys.ravel()
    ordered = np.sort(flat)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if repeated.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    shared = np.unique(repeated)
    where = np.searchsorted(shared, flat)
    hit = np.flatnonzero(shared[np.minimum(where, len(shared) - 1)] == flat)
    members = np.stack([where[hit], hit // keys.shape[1]], axis=1)  # (bucket, text)
    members = np.unique(members, axis=0)  # sorted by bucket, then text
    bucket, texts = members[:, 0], members[:, 1]
    starts = np.flatnonzero(np.concatenate([[True], bucket[1:] != bucket[:-1]]))
    sizes = np.diff(np.concatenate([starts, [len(bucket)]]))
    rank = np.arange(len(bucket)) - np.repeat(starts, sizes)
    pairs = []
    for k in range(1, MAX_GROUP + 1):  # pair each member with the k-th member before it (if in the bucket)
        ok = rank >= k
        if not ok.any():
            break
        pairs.append(np.stack([texts[np.flatnonzero(ok) - k], texts[ok]], axis=1))
    heads = np.repeat(starts, sizes)[rank > MAX_GROUP]  # the rest meet the bucket's first member
    if heads.size:
        pairs.append(np.stack([texts[heads], texts[rank > MAX_GROUP]], axis=1))
    found = np.concatenate(pairs)
    found = np.sort(found, axis=1)
    found = found[found[:, 0] != found[:, 1]]
    return np.unique(found, axis=0)


def similarity(sig: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Estimated Jaccard of each pair: the share of equal slots."""
    if len(pairs) == 0:
        return np.empty(0, dtype=np.float64)
    out = np.empty(len(pairs), dtype=np.float64)
    for start in range(0, len(pairs), 1 << 18):  # bounded memory for many candidates
        part = pairs[start : start + (1 << 18)]
        out[start : start + len(part)] = (sig[part[:, 0]] == sig[part[:, 1]]).mean(axis=1)
    return out
