"""The one recipe for content hashes: canonical JSON, then sha256.

Canonical JSON sorts keys, uses compact separators and keeps non-ASCII text as
is, so the same data always gives the same bytes whatever built it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson

CHUNK = 1 << 20


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(data: Any) -> str:
    return sha256_text(canonical_json(data))


def sha256_plain_json(data: Any) -> str:
    """sha256_json for data of strings, integers, finite floats, lists and dicts with string keys (a request
    payload), made by orjson in a seventh of the time: the same bytes for such data (NaN, non-string keys or
    objects that need `default=str` would differ, so other data goes through sha256_json)."""
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def short_hash(data: Any, length: int = 10) -> str:
    """A short content id for names (run ids, batch ids): the first hex digits of sha256_json."""
    return sha256_json(data)[:length]


def bits64(text: str) -> int:
    """The first 64 bits of sha256(text), as an unsigned integer: a stable key for ordering and splits
    (Polars' own hash changes between versions, so it never decides output)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def mix64(values: np.ndarray, in_place: bool = False) -> np.ndarray:
    """splitmix64's finalizer: a fixed, documented bijection on uint64 (wrapping arithmetic).

    in_place: overwrite `values` (a uint64 array the caller no longer needs) instead of a copy, for large arrays.
    """
    z = values if in_place else values.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()
