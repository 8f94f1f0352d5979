"""Small canonical-record Parquet inputs for the blending tests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import polars as pl
import pyarrow.parquet as pq
import pytest

from prefmix.config import Config, parse
from prefmix.records import to_arrow, with_record_id
from prefmix.store import sha256_file, write_parquet


def records(
    n: int,
    source: str,
    domain: str,
    tag: str,
    teacher: str | None = None,
    prompts: list[str] | None = None,
) -> pl.DataFrame:
    """n canonical records; prompts default to unique texts built from `tag`."""
    prompts = prompts if prompts is not None else [f"{tag} prompt {i}: explain {domain} topic {i}" for i in range(n)]
    frame = pl.DataFrame(
        {
            "prompt": prompts,
            "chosen": [f"good answer {i} for {tag}" for i in range(n)],
            "rejected": [f"bad answer {i} for {tag}" for i in range(n)],
            "domain": [domain] * n,
            "source": [source] * n,
            "chosen_score": [8.0] * n,
            "rejected_score": [2.0] * n,
            "origin_uri": [f"file:///vendor/{tag}.parquet"] * n,
            "origin_sha256": [hashlib.sha256(tag.encode()).hexdigest()] * n,
            "origin_row": list(range(n)),
        }
    )
    if teacher is not None:
        frame = frame.with_columns(
            generation=pl.struct(teacher=pl.lit(teacher), judge=pl.lit("judge"), strategy=pl.lit("pointwise"))
        )
    return with_record_id(frame)


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write(name, frame_or_frames) -> path of a canonical Parquet file under tmp_path/inputs."""

    def _write(name: str, *frames: pl.DataFrame) -> Path:
        frame = pl.concat(list(frames), how="diagonal_relaxed") if len(frames) > 1 else frames[0]
        return write_parquet(to_arrow(frame), tmp_path / "inputs" / f"{name}.parquet")

    return _write


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
