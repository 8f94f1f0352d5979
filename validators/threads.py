"""Threads for the gate's heavy steps. Polars and numpy release the GIL in their kernels, so independent
pieces of work (a batch's files, chunks of prompts, the overlap checks beside the row checks) run side by
side on the machine's cores; results come back in submission order, and the first failure in that order is
the one raised, as if the steps had run one after another."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")

WORKERS = max(1, min(4, os.cpu_count() or 1))


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int = WORKERS) -> list[R]:
    """[fn(item) for item in items], up to `workers` at a time."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="prefmix-gate") as pool:
        return list(pool.map(fn, items))
