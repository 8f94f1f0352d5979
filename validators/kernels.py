"""Compiled passes (numba) over prompt bytes, word hashes and signatures: the loops numpy cannot vectorise well.

- `word_hashes`: one pass over a text column's UTF-8 bytes splits each text into words and hashes them
  (Polars' `str.split` + `explode` + `hash` made one string per word: 3.3 s of CPU on the gate's 1M-prompt
  bench, now about 1.5 s).
- `sketch`: one pass per text over its word hashes gives its key and MinHash signature (rolling shingle
  hashes, per-bin minima, optimal densification) without materialising the shingles.
- `probe`: a text's stride-aligned word n-grams looked up in an eval set's bit set, then binary search.
- `band_keys`: every LSH band's key per signature, in one pass over the rows.

Each is checked against a plain numpy/Python definition in tests/validators/test_kernels.py. Compiled once
per machine (numba's on-disk cache, loaded by `warm`); the kernels release the GIL, so chunks run side by
side in threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# The word hash: the word's lowercase bytes packed 8 to a 64-bit block, blocks folded by xor and an odd
# multiplier, the length in bytes added, then splitmix64's finalizer. Packing keeps the per-byte work to a shift and
# an or (a byte-at-a-time hash such as FNV-1a waits on a multiply per byte: 3x slower here). A fixed
# definition, unlike Polars' `hash`, which may change between Polars versions: prompt sketches kept with
# published batches stay comparable (the scheme is named in validators/overlap.py's WORD_SCHEME).
SEED = np.uint64(0x243F6A8885A308D3)
FOLD = np.uint64(0x9FB21C651E98DF25)
MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
MIX_2 = np.uint64(0x94D049BB133111EB)

# Each byte's lowercase value, or a mark that valid UTF-8 never holds: SEPARATOR for space, tab, newline and
# carriage return, NBSP_LEAD for 0xC2 (the lead byte of U+00A0, a separator when 0xA0 follows).
SEPARATOR = np.uint64(0xFF)
NBSP_LEAD = np.uint64(0xFE)
LEAD_BYTE = np.uint64(0xC2)
_BYTES = np.arange(256, dtype=np.uint64)
_BYTES[65:91] += 32
_BYTES[[0x20, 0x09, 0x0A, 0x0D]] = SEPARATOR
_BYTES[0xC2] = NBSP_LEAD


@njit(inline="always")
def _mix64(z: np.uint64) -> np.uint64:  # prefmix.hashing.mix64, one value at a time
    z = z ^ (z >> np.uint64(30))
    z = z * MIX_1
    z = z ^ (z >> np.uint64(27))
    z = z * MIX_2
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def _word(h: np.uint64, block: np.uint64, shift: np.uint64, folds: int) -> np.uint64:
    length = np.uint64(folds * 8) + (shift >> np.uint64(3))
    return _mix64((h ^ block) * FOLD + length)


@njit(nogil=True, cache=True)
def word_hashes(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hashes, counts, wide): the words of each text offsets[i]:offsets[i+1] of data (UTF-8 bytes), split
    on space, tab, newline, carriage return and U+00A0, ASCII letters lowercased; `wide` marks the texts
    with other than ASCII bytes, whose other letters the caller lowercases before hashing them again."""
    n = len(offsets) - 1
    counts = np.zeros(n, dtype=np.int64)
    wide = np.zeros(n, dtype=np.bool_)
    # a word takes at least one byte and a separator: at most (bytes + 1) // 2 per text (pages past the
    # last word written are never touched, so the bound costs address space, not memory)
    out = np.empty((offsets[n] - offsets[0] + n) // 2 + 1, dtype=np.uint64)
    table = _BYTES
    k = 0
    for t in range(n):
        high = np.uint8(0)
        start = k
        end = offsets[t + 1]
        h = SEED
        block = np.uint64(0)
        shift = np.uint64(0)
        folds = 0
        i = offsets[t]
        while i < end:
            high |= data[i]
            v = table[data[i]]
            if v == NBSP_LEAD:
                if i + 1 < end and data[i + 1] == 0xA0:
                    v = SEPARATOR
                    i += 1
                else:
                    v = LEAD_BYTE
            if v < NBSP_LEAD:
                block |= v << shift
                shift += np.uint64(8)
                if shift == np.uint64(64):
                    h = (h ^ block) * FOLD
                    block = np.uint64(0)
                    shift = np.uint64(0)
                    folds += 1
            elif shift or folds:
                out[k] = _word(h, block, shift, folds)
                k += 1
                h = SEED
                block = np.uint64(0)
                shift = np.uint64(0)
                folds = 0
            i += 1
        if shift or folds:
            out[k] = _word(h, block, shift, folds)
            k += 1
        counts[t] = k - start
        wide[t] = high >= 0x80
    return out[:k], counts, wide


EMPTY = np.uint32(0xFFFFFFFF)
# The bins an empty bin looks at in turn: BORROW[j, a] for attempt a (top 6 bits of a mixed pair).
BORROW = np.array([[(((j * 0x9E3779B1 + (a + 1) * 0x85EBCA77) & 0xFFFFFFFF) * 0xC2B2AE35 & 0xFFFFFFFF) >> 26
                    for a in range(64)] for j in range(64)], dtype=np.int64)


@njit(nogil=True, cache=True)
def sketch(hashes: np.ndarray, offsets: np.ndarray, shingle: int, p: np.uint64, p_inv: np.uint64,
           keys: np.ndarray, sig: np.ndarray) -> None:
    """Fill keys (n,) and sig (n, 64) for the texts whose word hashes are hashes[offsets[i]:offsets[i+1]],
    as validators/ngrams.text_keys and validators/minhash.signatures over ngrams(..., short=True) define
    them (64 bins, 16-bit minima; p and p_inv are their constants). A text without words gets 0xFFFF in
    every slot."""
    n = len(offsets) - 1
    slots = 64
    mins = np.empty(slots, dtype=np.uint32)
    top = np.uint64(1)
    for _ in range(shingle - 1):
        top = top * p  # P^(shingle-1): the weight of a shingle's last word
    for t in range(n):
        a = offsets[t]
        c = offsets[t + 1] - a
        whole = np.uint64(0)
        power = np.uint64(1)
        for j in range(c):
            whole = whole + hashes[a + j] * power
            power = power * p
        keys[t] = _mix64(whole + np.uint64(c))
        for s in range(slots):
            mins[s] = EMPTY
        if 0 < c < shingle:
            mins[whole >> np.uint64(58)] = np.uint32(whole & np.uint64(0xFFFFFFFF))
        elif c >= shingle:
            g = np.uint64(0)
            power = np.uint64(1)
            for j in range(shingle):
                g = g + hashes[a + j] * power
                power = power * p
            for i in range(c - shingle + 1):
                if i:  # drop the first word, shift down one power, add the next word at the top
                    g = (g - hashes[a + i - 1]) * p_inv + hashes[a + i + shingle - 1] * top
                b = g >> np.uint64(58)
                v = np.uint32(g & np.uint64(0xFFFFFFFF))
                if v < mins[b]:
                    mins[b] = v
        # densify (Shrivastava 2017, "optimal densification"): an empty bin copies the minimum of the first
        # non-empty bin along its own fixed sequence of bins. Each empty bin borrows from its own source, so
        # a band of empty bins is only shared by texts that share several minima (rotation, where a run of
        # empty bins copies one neighbour, made a million chance candidate pairs on 1M prompts whose one
        # common shingle filled a whole band).
        filled = 0
        for j in range(slots):
            filled += mins[j] != EMPTY
        for j in range(slots):
            v = mins[j]
            if v == EMPTY and filled:
                for attempt in range(slots):
                    v = mins[BORROW[j, attempt]]
                    if v != EMPTY:
                        break
                k = j
                while v == EMPTY:  # past the sequence (a text of a few shingles): the next one round
                    k = (k + 1) % slots
                    v = mins[k]
            sig[t, j] = np.uint16(v & np.uint32(0xFFFF))


@njit(nogil=True, cache=True)
def probe(hashes: np.ndarray, offsets: np.ndarray, m: int, stride: int, p: np.uint64, table: np.ndarray,
          bits: int, grams: np.ndarray) -> np.ndarray:
    """Which texts have a word m-gram, among those starting at every stride-th word of the text, that is in
    `grams` (sorted uint64): the bit set `table` (validators/bitset.py, over the low `bits` bits) rules out
    most look-ups before the binary search. m-gram hashes as validators/ngrams.ngrams makes them."""
    n = len(offsets) - 1
    hit = np.zeros(n, dtype=np.bool_)
    mask = np.uint64((1 << bits) - 1)
    last = len(grams) - 1
    powers = np.empty(m, dtype=np.uint64)
    power = np.uint64(1)
    for j in range(m):
        powers[j] = power
        power = power * p
    longest = 0
    for t in range(n):
        longest = max(longest, offsets[t + 1] - offsets[t])
    text_grams = np.empty(longest // stride + 1, dtype=np.uint64)
    for t in range(n):
        a = offsets[t]
        c = offsets[t + 1] - a
        # a text's grams first, then their bits: independent loads the CPU overlaps (the bit set is larger
        # than the caches, and a look-up per gram in turn waits on each miss: 2x slower)
        q = 0
        for i in range(0, c - m + 1, stride):
            g = np.uint64(0)
            for j in range(m):
                g += hashes[a + i + j] * powers[j]
            text_grams[q] = g
            q += 1
        maybe = 0
        for r in range(q):
            slot = text_grams[r] & mask
            maybe |= (table[slot >> np.uint64(3)] >> (slot & np.uint64(7))) & 1
        if maybe and last >= 0:
            for r in range(q):
                g = text_grams[r]
                slot = g & mask
                if (table[slot >> np.uint64(3)] >> (slot & np.uint64(7))) & 1:
                    k = min(np.searchsorted(grams, g), last)
                    if grams[k] == g:
                        hit[t] = True
                        break
    return hit


@njit(nogil=True, cache=True)
def band_keys(sig: np.ndarray, bands: int, rows: int, fold: np.uint64) -> np.ndarray:
    """(bands, n) uint64: each band's key per signature row, as validators/minhash.band_key makes it, in one
    pass over the rows (a band at a time reads every 128-byte row again for 10 of its bytes)."""
    n = sig.shape[0]
    out = np.empty((bands, n), dtype=np.uint64)
    for i in range(n):
        for b in range(bands):
            first = b * rows
            head = (np.uint64(sig[i, first]) | (np.uint64(sig[i, first + 1]) << np.uint64(16))
                    | (np.uint64(sig[i, first + 2]) << np.uint64(32)) | (np.uint64(sig[i, first + 3]) << np.uint64(48)))
            out[b, i] = head + np.uint64(sig[i, first + 4]) * fold
    return out


def warm() -> None:
    """Load every kernel (compiled, or read from numba's on-disk cache) now rather than at first use."""
    data, offsets = np.frombuffer(b"a b c d", dtype=np.uint8), np.array([0, 7], dtype=np.int64)
    hashes, counts, _ = word_hashes(data, offsets)
    ends = np.array([0, len(hashes)], dtype=np.int64)
    sketch(hashes, ends, 2, np.uint64(3), np.uint64(3), np.empty(1, dtype=np.uint64),
           np.empty((1, 64), dtype=np.uint16))
    band_keys(np.zeros((1, 64), dtype=np.uint16), 12, 5, np.uint64(3))
    probe(hashes, ends, 2, 1, np.uint64(3), np.zeros(8, dtype=np.uint8), 6, np.zeros(1, dtype=np.uint64))
