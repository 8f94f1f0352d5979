"""Stream the selected rows from the inputs into train/eval Parquet shards.

Layout: output rows keep input order (human files, then synthetic, each sorted
by path; rows in file order; upsampled copies adjacent); shards hold exactly
`shard_rows` rows (the last one the rest); row groups have a fixed size and
the writer settings are fixed, so the same selection gives the same bytes,
whatever the number of threads. Shards are written to a hidden folder and
renamed into place.

Work: each shard of the larger split (normally train) is one task that reads
just the input row groups holding its rows and writes its whole file. Tasks
run side by side on a thread pool (Arrow decodes and zstd compresses with the
GIL released), which is where the time goes. Rows of the smaller split that lie
in a task's stretch of input are taken by the same task and handed back; the
calling thread writes them, in task order, into that split's shards. So each
input row group is decoded about once, and memory is a few row groups per
thread, not the shard size.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from prefmix.crash import crash_point
from prefmix.errors import InputError
from prefmix.records import KINDS, SCHEMA
from prefmix.store import fsync_dir

from prefmix.blending.keys import Input

READ_ROWS = 16_384
ROW_GROUP_ROWS = 16_384  # small enough that buffered row groups stay ~50 MB each
MAX_WORKERS = 8


def shard_names(prefix: str, rows: int, shard_rows: int) -> list[str]:
    count = -(-rows // shard_rows)
    return [f"{prefix}-{i:05d}-of-{count:05d}.parquet" for i in range(count)]


class ShardWriter:
    """Writes a stream of tables as fixed-size shards (files `names`) with fixed-size row groups."""

    def __init__(self, directory: Path, names: list[str], shard_rows: int) -> None:
        self.directory = directory
        self.names = names
        self.shard_rows = shard_rows
        self.group_rows = min(ROW_GROUP_ROWS, shard_rows)
        self.buffer: list[pa.Table] = []
        self.buffered = 0
        self.shard = 0
        self.in_shard = 0
        self.writer: pq.ParquetWriter | None = None

    def _next(self) -> int:
        return min(self.group_rows, self.shard_rows - self.in_shard)

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.buffer.append(table)
        self.buffered += table.num_rows
        while self.buffered >= self._next():
            self._flush(self._next())

    def _flush(self, rows: int, last: bool = False) -> None:
        """Write `rows` buffered rows as one row group; on the last flush the final shard closes early."""
        closes = self.in_shard + rows == self.shard_rows or (last and rows == self.buffered)
        pending = pa.concat_tables(self.buffer)
        if self.writer is None:
            path = self.directory / self.names[self.shard]
            self.writer = pq.ParquetWriter(path, SCHEMA, compression="zstd", write_statistics=True)
        # one contiguous chunk: Arrow cuts pages per input chunk, so bytes would depend on how rows were read
        self.writer.write_table(pending.slice(0, rows).combine_chunks(), row_group_size=rows)
        rest = pending.slice(rows)
        self.buffer = [rest] if rest.num_rows else []
        self.buffered = rest.num_rows
        self.in_shard += rows
        if closes:
            self.writer.close()
            self.writer = None
            self.shard += 1
            self.in_shard = 0
            crash_point("blend:mid-write")

    def close(self) -> None:
        while self.buffered:
            self._flush(min(self._next(), self.buffered), last=True)
        if self.shard != len(self.names):
            raise RuntimeError(f"wrote {self.shard} shards, planned {len(self.names)}")

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


@dataclass(frozen=True)
class Layout:
    """One entry per output row (copies expanded), in input order, cut into one task per shard of the major split."""

    file: np.ndarray
    row: np.ndarray
    major: np.ndarray  # the row belongs to the major split
    bounds: np.ndarray  # task k covers entries bounds[k]:bounds[k + 1]
    splits: tuple[str, str]  # (major, minor): ("train", "eval") unless eval has more rows

    def rows(self) -> dict[str, int]:
        major = int(self.major.sum())
        return {self.splits[0]: major, self.splits[1]: len(self.major) - major}

    def tasks(self) -> int:
        return len(self.bounds) - 1


def layout(selection: pl.DataFrame, shard_rows: int) -> Layout:
    """Expand copies and cut the rows where each major shard starts; minor rows go with the major rows before them."""
    copies = selection["copies"].to_numpy()
    file = np.repeat(selection["file"].to_numpy(), copies)
    row = np.repeat(selection["row"].to_numpy(), copies)
    is_eval = np.repeat(selection["eval"].to_numpy(), copies)
    major_is_eval = 2 * int(is_eval.sum()) > len(is_eval)
    major = is_eval if major_is_eval else ~is_eval
    starts = np.flatnonzero(major)[::shard_rows]
    bounds = np.concatenate([[0], starts[1:], [len(file)]]) if len(starts) else np.zeros(1, np.int64)
    return Layout(file, row, major, bounds.astype(np.int64), ("eval", "train") if major_is_eval else ("train", "eval"))


def canonical(table: pa.Table, path: str) -> pa.Table:
    """The canonical schema (missing optional columns as nulls); a type that cannot be cast names the column."""
    if table.schema.equals(SCHEMA, check_metadata=False):
        return table
    columns = []
    for field in SCHEMA:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        try:
            columns.append(table.column(field.name).cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            got = table.schema.field(field.name).type
            raise InputError(f"{path}: column {field.name!r} is {got}, expected {field.type}") from None
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _batches(item: Input, rows: np.ndarray) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(first row, batch) for the batches of one file that hold any of `rows` (sorted); stops after the last."""
    handle = pq.ParquetFile(item.path)
    last = int(rows[-1])
    start = 0
    for group in range(handle.num_row_groups):
        if start > last:
            return
        size = handle.metadata.row_group(group).num_rows
        lo, hi = np.searchsorted(rows, [start, start + size])
        if hi > lo:
            offset = start
            for batch in handle.iter_batches(batch_size=READ_ROWS, row_groups=[group]):
                if offset > last:
                    break
                yield offset, batch
                offset += batch.num_rows
        start += size


def _constant(value: str, n: int) -> pa.Array:
    return pc.take(pa.array([value], pa.string()), pa.array(np.zeros(n, np.int32)))


def _labelled(part: pa.Table, batch_id: str, split: str) -> pa.Table:
    """The rows with their batch id and split, and a kind (rows written before kinds existed are single_turn)."""
    n = part.num_rows
    part = part.set_column(SCHEMA.get_field_index("batch_id"), SCHEMA.field("batch_id"), _constant(batch_id, n))
    kind = SCHEMA.get_field_index("kind")
    part = part.set_column(kind, SCHEMA.field("kind"), pc.fill_null(part.column(kind), KINDS[0]))
    return part.set_column(SCHEMA.get_field_index("split"), SCHEMA.field("split"), _constant(split, n))


def _task(inputs: list[Input], plan: Layout, k: int, writer: ShardWriter, batch_id: str) -> list[pa.Table]:
    """Write major shard k; return the task's minor rows, in input order."""
    lo, hi = int(plan.bounds[k]), int(plan.bounds[k + 1])
    files, rows, major = plan.file[lo:hi], plan.row[lo:hi], plan.major[lo:hi]
    names = plan.splits
    minor: list[pa.Table] = []
    try:
        for index in np.unique(files):
            a, b = np.searchsorted(files, [index, index + 1])
            item = inputs[int(index)]
            in_file, flags = rows[a:b], major[a:b]
            for offset, batch in _batches(item, in_file):
                i, j = np.searchsorted(in_file, [offset, offset + batch.num_rows])
                if j == i:
                    continue
                table = canonical(pa.Table.from_batches([batch]), item.path)
                take, keep = in_file[i:j] - offset, flags[i:j]
                if keep.any():
                    writer.write(_labelled(table.take(pa.array(take[keep])), batch_id, names[0]))
                if not keep.all():
                    minor.append(_labelled(table.take(pa.array(take[~keep])), batch_id, names[1]))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return minor


def write_shards(
    inputs: list[Input], selection: pl.DataFrame, out_dir: Path, batch_id: str, shard_rows: int,
    workers: int | None = None,
) -> list[str]:
    """Write the selection (file, row, copies, eval) as data/train-*.parquet and data/eval-*.parquet."""
    plan = layout(selection, shard_rows)
    names = {split: shard_names(split, rows, shard_rows) for split, rows in plan.rows().items()}
    major_names, minor_names = (names[split] for split in plan.splits)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".data.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    workers = min(workers or os.cpu_count() or 1, MAX_WORKERS, max(plan.tasks(), 1))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="blend-shard")
    minor = ShardWriter(tmp, minor_names, shard_rows)
    running: deque[Future[list[pa.Table]]] = deque()

    def drain(ahead: int) -> None:
        """Write finished tasks' minor rows, in task order, until at most `ahead` tasks are outstanding."""
        while len(running) > ahead:
            for part in running.popleft().result():
                minor.write(part)

    try:
        for k in range(plan.tasks()):
            running.append(pool.submit(_task, inputs, plan, k, ShardWriter(tmp, [major_names[k]], shard_rows), batch_id))
            drain(workers)  # bounds the minor rows held in memory
        drain(0)
        minor.close()
        for name in os.listdir(tmp):
            with open(tmp / name, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(tmp)
        data = out_dir / "data"
        old = out_dir / f".data.old-{uuid.uuid4().hex}"
        if data.exists():
            os.rename(data, old)
        os.rename(tmp, data)
        fsync_dir(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        minor.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pool.shutdown(wait=True)
    return [f"data/{name}" for name in names["train"] + names["eval"]]
