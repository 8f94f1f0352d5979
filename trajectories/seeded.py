"""Seeded, stable order keys: the same ids and seed give the same order on any machine and Polars version."""

from __future__ import annotations

import numpy as np
import polars as pl

from prefmix.hashing import bits64, mix64

_MASK = 0xFFFF_FFFF_FFFF_FFFF


def id_bits(ids: pl.Series) -> np.ndarray:
    """The first 64 bits of sha256(id): stable across runs, unlike Polars' hash(). Each distinct id is hashed once."""
    unique = ids.unique()
    bits = pl.Series([bits64(i) for i in unique.to_list()], dtype=pl.UInt64)
    table = pl.DataFrame({"id": unique, "bits": bits})
    return pl.DataFrame({"id": ids}).join(table, on="id", how="left", maintain_order="left").get_column("bits").to_numpy()


def pair_keys(first: pl.Series, second: pl.Series, seed: int) -> pl.Series:
    """Order key of the ordered pair (first, second) under `seed`: mix64(mix64(bits(first) ^ salt) ^ bits(second))."""
    salt = mix64(np.array([seed & _MASK], dtype=np.uint64))[0]
    return pl.Series("order_key", mix64(mix64(id_bits(first) ^ salt) ^ id_bits(second)), dtype=pl.UInt64)
