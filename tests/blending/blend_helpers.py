"""Configs and output readers for the blending tests (their inputs come from tests/support/records.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from prefmix.config import Config, parse
from prefmix.store import sha256_file


def config(**blend: Any) -> Config:
    data: dict[str, Any] = {
        "seed": blend.pop("seed", 7),
        "domains": blend.pop("domains", ["general", "medicine", "law"]),
        "blend": blend,
    }
    teachers = sorted(blend.get("teacher_shares", {}))
    if teachers:
        data["teachers"] = [{"name": t, "model": t, "endpoints": ["http://127.0.0.1:1/v1"]} for t in teachers]
    return parse(data)


def read_all(out: Path, files: list[str]) -> pl.DataFrame:
    return pl.concat([pl.from_arrow(pq.read_table(out / f)) for f in files]) if files else pl.DataFrame()


def hashes(out: Path, files: list[str]) -> dict[str, str]:
    return {f: sha256_file(out / f) for f in files}
