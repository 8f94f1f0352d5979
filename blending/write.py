"""Stream the selected rows from the inputs into train/eval Parquet shards.

Inputs are read in order, one batch at a time (the next batch is read on a
background thread while the current one is written); only row groups that hold
selected rows are read. Output rows keep input order (human files, then
synthetic, each sorted by path; rows in file order; upsampled copies adjacent),
shards hold exactly `shard_rows` rows (the last one the rest), row groups have
a fixed size, and the writer settings are fixed, so the same selection gives
the same bytes. Shards are written to a hidden folder and renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from prefmix.crash import crash_point
from prefmix.errors import InputError
from prefmix.records import SCHEMA
from prefmix.store import fsync_dir

from blending.keys import Input

READ_ROWS = 16_384
ROW_GROUP_ROWS = 16_384  # small enough that buffered row groups stay ~50 MB each
T = TypeVar("T")


def shard_names(prefix: str, rows: int, shard_rows: int) -> list[str]:
    count = -(-rows // shard_rows)
    return [f"{prefix}-{i:05d}-of-{count:05d}.parquet" for i in range(count)]


class ShardWriter:
    """Writes a stream of tables as fixed-size shards with fixed-size row groups.

    Encoding and compression run on `pool` (one thread, so writes stay in order)
    while the caller reads and selects the next rows; at most `PENDING` row
    groups wait, which bounds memory.
    """

    PENDING = 1

    def __init__(self, directory: Path, names: list[str], shard_rows: int, pool: ThreadPoolExecutor) -> None:
        self.directory = directory
        self.names = names
        self.shard_rows = shard_rows
        self.group_rows = min(ROW_GROUP_ROWS, shard_rows)
        self.buffer: list[pa.Table] = []
        self.buffered = 0
        self.shard = 0
        self.in_shard = 0
        self.writer: pq.ParquetWriter | None = None
        self.pool = pool
        self.pending: list[Future[None]] = []

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
        """Hand `rows` buffered rows to the writer; on the last flush the final shard closes early."""
        closes = self.in_shard + rows == self.shard_rows or (last and rows == self.buffered)
        pending = pa.concat_tables(self.buffer)
        self._submit(pending.slice(0, rows), self.shard, closes)
        rest = pending.slice(rows)
        self.buffer = [rest] if rest.num_rows else []
        self.buffered = rest.num_rows
        self.in_shard += rows
        if closes:
            self.shard += 1
            self.in_shard = 0

    def _submit(self, group: pa.Table, shard: int, closes: bool) -> None:
        while len(self.pending) >= self.PENDING:
            self.pending.pop(0).result()
        self.pending.append(self.pool.submit(self._write_group, group, shard, closes))

    def _write_group(self, group: pa.Table, shard: int, closes: bool) -> None:
        if self.writer is None:
            path = self.directory / self.names[shard]
            self.writer = pq.ParquetWriter(path, SCHEMA, compression="zstd", write_statistics=True)
        self.writer.write_table(group, row_group_size=group.num_rows)
        if closes:
            self.writer.close()
            self.writer = None
            crash_point("blend:mid-write")

    def close(self) -> None:
        while self.buffered:
            self._flush(min(self._next(), self.buffered), last=True)
        for future in self.pending:
            future.result()
        self.pending = []
        if self.shard != len(self.names):
            raise RuntimeError(f"wrote {self.shard} shards, planned {len(self.names)}")


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield items produced on a background thread (Arrow releases the GIL while it decodes)."""
    box: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                box.put((True, item))
            box.put((False, None))
        except BaseException as exc:  # handed to the consumer
            box.put((False, exc))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            ok, item = box.get()
            if not ok:
                if isinstance(item, BaseException):
                    raise item
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                box.get_nowait()
        thread.join(timeout=5)


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
    """(first row, batch) for the row groups of one file that hold selected rows."""
    handle = pq.ParquetFile(item.path)
    start = 0
    for group in range(handle.num_row_groups):
        size = handle.metadata.row_group(group).num_rows
        lo, hi = np.searchsorted(rows, [start, start + size])
        if hi > lo:
            offset = start
            for batch in handle.iter_batches(batch_size=READ_ROWS, row_groups=[group]):
                yield offset, batch
                offset += batch.num_rows
        start += size


def _stream(inputs: list[Input], selection: pl.DataFrame) -> Iterator[tuple[Input, int, pa.RecordBatch, pl.DataFrame]]:
    for index, item in enumerate(inputs):
        chosen = selection.filter(pl.col("file") == index)
        if chosen.height == 0:
            continue
        rows = chosen["row"].to_numpy()
        for offset, batch in _batches(item, rows):
            yield item, offset, batch, chosen


def write_shards(
    inputs: list[Input], selection: pl.DataFrame, out_dir: Path, batch_id: str, shard_rows: int
) -> list[str]:
    """Write the selection (file, row, copies, eval) as data/train-*.parquet and data/eval-*.parquet."""
    eval_rows = int(selection.filter(pl.col("eval"))["copies"].sum() or 0)
    train_rows = int(selection["copies"].sum() or 0) - eval_rows
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".data.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blend-writer")
    try:
        writers = {
            False: ShardWriter(tmp, shard_names("train", train_rows, shard_rows), shard_rows, pool),
            True: ShardWriter(tmp, shard_names("eval", eval_rows, shard_rows), shard_rows, pool),
        }
        batch_value = pa.array([batch_id], pa.string())
        split_value = pa.array(["train", "eval"], pa.string())
        ready: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None
        for item, offset, batch, chosen in prefetch(_stream(inputs, selection)):
            if ready is None or ready[0] != id(chosen):
                ready = (id(chosen), chosen["row"].to_numpy(), chosen["copies"].to_numpy(), chosen["eval"].to_numpy())
            _, rows, copies, is_eval = ready
            lo, hi = np.searchsorted(rows, [offset, offset + batch.num_rows])
            if hi == lo:
                continue
            take = np.repeat(rows[lo:hi] - offset, copies[lo:hi])
            flags = np.repeat(is_eval[lo:hi], copies[lo:hi])
            table = canonical(pa.Table.from_batches([batch]), item.path)
            for flag in (False, True):
                idx = take[flags == flag]
                if idx.size == 0:
                    continue
                part = table.take(pa.array(idx))
                n = part.num_rows
                part = part.set_column(SCHEMA.get_field_index("batch_id"), SCHEMA.field("batch_id"), pc.take(batch_value, pa.array(np.zeros(n, np.int32))))
                part = part.set_column(SCHEMA.get_field_index("split"), SCHEMA.field("split"), pc.take(split_value, pa.array(np.full(n, int(flag), np.int32))))
                writers[flag].write(part)
        for writer in writers.values():
            writer.close()
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
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pool.shutdown(wait=True)
    return [f"data/{name}" for name in writers[False].names + writers[True].names]
