"""Read a delivery of trajectory files into one validated trajectory frame.

By suffix: `.json` ATIF (atif.py), `.jsonl` / `.ndjson` chat messages (chat_jsonl.py),
`.parquet` trajectory records prefmix wrote. Every file is validated (validate.py) before
any result exists; then missing ids become content ids and no id may appear twice in the
delivery (all files read together).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import polars as pl
import pyarrow.parquet as pq
from prefmix.contract import Contract
from prefmix.errors import InputError
from prefmix.records import conform_trajectories, with_trajectory_ids
from prefmix.store import sha256_file
from prefmix.trajectories.atif import read_atif
from prefmix.trajectories.chat_jsonl import read_chat_jsonl
from prefmix.trajectories.validate import check_unique_ids, validate


class TrajectoryFile(Contract):
    """One file of a delivery, as lineage records it."""

    path: str
    sha256: str
    format: str
    trajectories: int


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        frame = pl.from_arrow(pq.read_table(path))
    except Exception as exc:  # a damaged or foreign file: one line, not a traceback
        raise InputError(f"{path}: not a readable trajectory Parquet file ({' '.join(str(exc).split())[:120]})") from None
    assert isinstance(frame, pl.DataFrame)
    missing = {"task_id", "steps"} - set(frame.columns)
    if missing:
        raise InputError(f"{path}: missing column {min(missing)!r}, expected prefmix trajectory records")
    return frame.drop("origin_row", "origin_uri", "origin_sha256", strict=False).with_row_index("origin_row")


FORMATS: dict[str, tuple[str, Callable[[Path], pl.DataFrame]]] = {
    ".json": ("atif", read_atif),
    ".jsonl": ("chat_jsonl", read_chat_jsonl),
    ".ndjson": ("chat_jsonl", read_chat_jsonl),
    ".parquet": ("parquet", _read_parquet),
}


def read_file(path: str | Path) -> tuple[pl.DataFrame, TrajectoryFile]:
    """One file: validated, conformed, origin set (ids may still be missing)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: trajectory file not found" if not path.exists() else f"{path}: expected a file, found a directory")
    known = FORMATS.get(path.suffix.lower())
    if known is None:
        raise InputError(f"{path}: unknown trajectory format {path.suffix!r}, expected .json (ATIF), .jsonl (chat messages) or .parquet")
    name, reader = known
    before = path.stat()
    digest = sha256_file(path)
    frame = reader(path)
    after = path.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise InputError(f"{path}: file changed while it was being read; retry when the upload has finished")
    frame = frame.with_columns(pl.col("origin_row").cast(pl.Int64), origin_uri=pl.lit(str(path)), origin_sha256=pl.lit(digest))
    frame = conform_trajectories(frame)
    validate(frame, str(path))
    return frame, TrajectoryFile(path=str(path), sha256=digest, format=name, trajectories=frame.height)


def read_trajectories(paths: Sequence[str | Path]) -> tuple[pl.DataFrame, list[TrajectoryFile]]:
    """All files of a delivery as one trajectory frame with unique trajectory ids."""
    if not paths:
        raise InputError("no trajectory files given")
    read = [read_file(p) for p in paths]
    frame = pl.concat([f for f, _ in read], how="vertical")
    given = frame.get_column("trajectory_id").is_not_null()
    frame = with_trajectory_ids(frame)
    check_unique_ids(frame, given)
    return frame, [info for _, info in read]
