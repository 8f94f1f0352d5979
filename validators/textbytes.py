"""Byte-level looks at a string column through its Arrow string views, without copying the texts.

Polars keeps strings as Arrow string views: 16 bytes per row (length; a string of up to 12 bytes inline,
else its first 4 bytes, a data buffer and an offset) and the long strings' bytes in data buffers.
`Series.to_arrow(compat_level=newest)` hands these over as they are, so numpy can scan the raw UTF-8 bytes
of a whole column at memory speed (a few vector compares per byte) where a regex or several literal
searches per row cost 5-20x more. The gate uses this only to *narrow* rows: a scan finds the rows that
could match (a byte every match must contain), and the exact Polars test then runs on those rows alone.
When Arrow hands over another layout the helpers return None and callers test every row the exact way.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

import numpy as np
import polars as pl
import pyarrow as pa

INLINE = 12  # bytes stored in the view itself
BLOCK = 1 << 18  # bytes scanned at a time: the temporaries stay in cache
NEUTRAL = ord("a")  # what the bytes between strings read as (a Parquet page keeps each length before its text)

# A flag marks the positions where a match may start: it maps a uint8 array (1-D, or rows of inline bytes)
# to a bool array of the same shape, looking at most `width - 1` bytes ahead along the last axis, or to None
# when it marks nothing there (a block of plain ASCII text is usually rejected with one min and one max).
Flag = Callable[[np.ndarray], "np.ndarray | None"]


@dataclass
class Views:
    """A string column's views: row lengths (0 for null), the view bytes and the data buffers."""

    lengths: np.ndarray  # int64
    valid: np.ndarray  # bool
    view: np.ndarray  # (n, 16) uint8
    data: list[np.ndarray]  # uint8, one per data buffer
    _edges: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.lengths)

    def short_rows(self) -> np.ndarray:
        """Non-empty strings stored in the view itself."""
        return np.flatnonzero((self.lengths > 0) & (self.lengths <= INLINE))

    def long_rows(self) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """(data buffer, rows, begin, end) of the strings stored in each data buffer."""
        long = self.lengths > INLINE
        if not long.any():
            return
        words = self.view.view(np.int32)  # (n, 4): length, prefix, buffer, offset
        if long.all():
            rows, buffer, offset = np.arange(len(long)), words[:, 2], words[:, 3]
        else:
            rows = np.flatnonzero(long)
            buffer, offset = words[rows, 2], words[rows, 3]
        if len(self.data) == 1 or buffer[0] == buffer[-1] and (buffer == buffer[0]).all():
            groups = [(int(buffer[0]), slice(None))]
        else:
            groups = list(_by_buffer(buffer))
        for k, part in groups:
            begin = offset[part].astype(np.int64)
            yield k, rows[part], begin, begin + self.lengths[rows[part]]

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """The first and the last byte of each row (int16; -1 for a null or empty string)."""
        if self._edges is None:
            first = self.view[:, 4].astype(np.int16)
            first[self.lengths == 0] = -1
            last = np.full(len(self), -1, dtype=np.int16)
            short = self.short_rows()
            if short.size:
                last[short] = self.view[short, 3 + self.lengths[short]]
            for k, rows, _, end in self.long_rows():
                last[rows] = self.data[k][end - 1]
            self._edges = (first, last)
        return self._edges


def views(series: pl.Series) -> Views | None:
    """The views of a String series, or None when Arrow hands over another layout."""
    if series.dtype != pl.String:
        return None
    try:
        arr = series.to_arrow(compat_level=pl.CompatLevel.newest())
    except Exception:  # an older pyarrow without string views
        return None
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if not pa.types.is_string_view(arr.type):
        return None
    n, start = len(arr), arr.offset
    buffers = arr.buffers()
    if n == 0 or buffers[1] is None:
        return Views(np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool), np.zeros((n, 16), dtype=np.uint8), [])
    view = np.frombuffer(buffers[1], dtype=np.uint8)[16 * start : 16 * (start + n)].reshape(n, 16)
    lengths = view.view(np.int32)[:, 0].astype(np.int64)
    if buffers[0] is None or arr.null_count == 0:
        valid = np.ones(n, dtype=bool)
    else:
        bits = np.unpackbits(np.frombuffer(buffers[0], dtype=np.uint8), bitorder="little")
        valid = bits[start : start + n].astype(bool)
        lengths[~valid] = 0
    data = [np.frombuffer(b, dtype=np.uint8) if b is not None else np.zeros(0, np.uint8) for b in buffers[2:]]
    return Views(lengths, valid, view, data)


_CACHE: dict[int, tuple[weakref.ref, dict[tuple[str, str], object]]] = {}
T = TypeVar("T")


def column(df: pl.DataFrame, name: str) -> Views | None:
    """views(df[name]), kept while df lives: the gate's checks look at the same texts several times."""
    return _kept(df, ("views", name), lambda: views(df[name]))


def chars(df: pl.DataFrame, name: str) -> pl.Series:
    """df[name].str.len_chars(), kept while df lives: several checks need the lengths of the same texts
    (counting characters reads every byte)."""
    return _kept(df, ("chars", name), lambda: df[name].str.len_chars())


def _kept(df: pl.DataFrame, key: tuple[str, str], make: Callable[[], T]) -> T:
    entry = _CACHE.get(id(df))
    if entry is None or entry[0]() is not df:
        frame_id = id(df)
        entry = (weakref.ref(df, lambda _, frame_id=frame_id: _CACHE.pop(frame_id, None)), {})
        _CACHE[frame_id] = entry
    found = entry[1]
    if key not in found:
        found[key] = make()
    return found[key]  # type: ignore[no-any-return]


def rows_with(v: Views, flag: Flag, width: int = 1) -> np.ndarray:
    """Rows (ascending) holding a position that `flag` marks (a match of up to `width` bytes may begin
    there). Exact for the bytes of each row; a multi-byte flag may also mark a row whose last bytes begin
    what the next string continues, so callers confirm the rows they get."""
    hits = [np.empty(0, dtype=np.int64)]
    short = v.short_rows()
    if short.size:
        marked = flag(v.view[short, 4:])
        if marked is not None:
            hits.append(short[(marked & (np.arange(INLINE) < v.lengths[short, None])).any(axis=1)])
    scratch = np.empty(max((len(d) for d in v.data), default=0), dtype=np.uint8)
    for k, rows, begin, end in v.long_rows():
        positions = _marked(_texts_only(v.data[k], begin, end, scratch), flag, width)
        if positions.size == 0:
            continue
        inside = np.searchsorted(positions, end) - np.searchsorted(positions, begin)
        hits.append(rows[inside > 0])
    return np.unique(np.concatenate(hits)) if len(hits) > 2 else hits[-1]


def _texts_only(data: np.ndarray, begin: np.ndarray, end: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """data with the bytes that belong to no string ([begin, end) ranges) set to NEUTRAL (in scratch, when
    there are such bytes), so a block of clean text is rejected at once, not for the lengths between texts."""
    if not (np.diff(begin) >= 0).all():
        order = np.argsort(begin, kind="stable")
        begin, end = begin[order], end[order]
    covered = np.maximum.accumulate(end)  # overlapping views (shared bytes) cover up to the furthest end
    gap_from = np.concatenate([[0], covered])
    gap_to = np.concatenate([begin, [len(data)]])
    sizes = np.maximum(gap_to - gap_from, 0)
    total = int(sizes.sum())
    if total == 0:
        return data
    starts = np.repeat(gap_from - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
    clean = scratch[: len(data)]
    np.copyto(clean, data)
    clean[starts + np.arange(total, dtype=np.int64)] = NEUTRAL
    return clean


def _marked(data: np.ndarray, flag: Flag, width: int) -> np.ndarray:
    """Positions of data that flag marks, BLOCK bytes at a time (each block sees width - 1 bytes beyond it)."""
    found = []
    for start in range(0, len(data), BLOCK):
        marked = flag(data[start : start + BLOCK + width - 1])
        if marked is None:
            continue
        marked = marked[: min(BLOCK, len(data) - start)]
        if marked.any():
            found.append(np.flatnonzero(marked) + start)
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


def _by_buffer(buffer: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(data buffer, positions in `buffer` of the rows in it) for each buffer used; rows ascending."""
    if (np.diff(buffer) >= 0).all():  # the usual layout: a column's rows fill its buffers in order
        cuts = np.flatnonzero(buffer[1:] != buffer[:-1]) + 1
        for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(buffer)]):
            yield int(buffer[lo]), np.arange(lo, hi)
        return
    order = np.argsort(buffer, kind="stable")
    ordered = buffer[order]
    cuts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(ordered)]):
        yield int(ordered[lo]), order[lo:hi]


def byte_set(values: tuple[int, ...] | list[int]) -> np.ndarray:
    """A lookup table (257 entries, indexed by byte + 1) for testing edge bytes (-1 = none) against values."""
    table = np.zeros(257, dtype=bool)
    table[np.asarray(values, dtype=np.int64) + 1] = True
    return table


def in_set(edge: np.ndarray, table: np.ndarray) -> np.ndarray:
    return table[edge + 1]


def any_of(*values: int) -> Flag:
    """A flag marking the given byte values."""

    def flag(x: np.ndarray) -> np.ndarray | None:
        if x.size == 0:
            return None
        out = x == values[0]
        for value in values[1:]:
            out |= x == value
        return out

    return flag


def candidates(df: pl.DataFrame, name: str, flag: Flag, width: int = 1) -> np.ndarray | None:
    """rows_with over a column's views; None when the layout is not string views (test every row)."""
    v = column(df, name)
    return None if v is None else rows_with(v, flag, width)


def matching(df: pl.DataFrame, name: str, test: Callable[[pl.Expr], pl.Expr], flag: Flag, width: int = 1) -> np.ndarray:
    """Rows (ascending) where test(pl.col(name)) holds: the exact test on the rows that `flag` lets through
    (every row when the views are not available). A null result counts as false."""
    rows = candidates(df, name, flag, width)
    frame = df.select(pl.col(name).alias("t"))
    if rows is None:
        return np.flatnonzero(frame.select(test(pl.col("t")).fill_null(False)).to_series().to_numpy())
    if rows.size == 0:
        return rows
    hit = frame[rows].select(test(pl.col("t")).fill_null(False)).to_series().to_numpy()
    return rows[hit]
