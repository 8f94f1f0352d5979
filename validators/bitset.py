"""A bit set over hashed slots: a cache-sized filter that rules out most look-ups before an exact search."""

from __future__ import annotations

import numpy as np


def table(slots: np.ndarray, bits: int) -> np.ndarray:
    """The bit set (2**bits bits, as bytes) with the bit of every slot (uint64, < 2**bits) set."""
    out = np.zeros(1 << (bits - 3), dtype=np.uint8)
    np.bitwise_or.at(out, slots >> np.uint64(3), np.left_shift(1, (slots & np.uint64(7)).astype(np.uint8)).astype(np.uint8))
    return out


def maybe(bitset: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Indices of the slots whose bit is set: candidates for the exact search, the rest surely absent."""
    return np.flatnonzero((bitset[slots >> np.uint64(3)] >> (slots & np.uint64(7)).astype(np.uint8)) & 1)
