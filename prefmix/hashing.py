"""The one recipe for content hashes: canonical JSON, then sha256.

Canonical JSON sorts keys, uses compact separators and keeps non-ASCII text as
is, so the same data always gives the same bytes whatever built it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(data: Any) -> str:
    return sha256_text(canonical_json(data))


def short_hash(data: Any, length: int = 10) -> str:
    """A short content id for names (run ids, batch ids): the first hex digits of sha256_json."""
    return sha256_json(data)[:length]


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()
