"""Read vendor shards in three layouts into canonical column names, validated.

Every problem ends as one InputError line naming the file, the row (0-based,
the same number that becomes `origin_row`) and the column. Checks are Polars
expressions over the whole frame; the first offending row is found with
`arg_true`, never by looping over rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from prefmix.config import HumanShard
from prefmix.errors import InputError
from prefmix.store import sha256_file

Kind = Literal["text", "int", "float", "bool", "label", "label_or_null", "text_list", "rankings", "id", "id_list"]
LABELS = ("a", "b", "tie")
ROW = "origin_row"


@dataclass(frozen=True)
class Spec:
    """One canonical column: its kind and whether the file must have it."""

    kind: Kind
    required: bool


LAYOUTS: dict[str, dict[str, Spec]] = {
    "pairs": {
        "prompt": Spec("text", True),
        "chosen": Spec("text", True),
        "rejected": Spec("text", True),
        "domain": Spec("text", True),
        "item_id": Spec("id", False),
        "annotator_ids": Spec("id_list", False),
        "annotator_id": Spec("id", False),
        "agreement": Spec("float", False),
        "review_passes": Spec("int", False),
        "adjudicated": Spec("bool", False),
        "chosen_score": Spec("float", False),
        "rejected_score": Spec("float", False),
    },
    "rankings": {
        "prompt": Spec("text", True),
        "domain": Spec("text", True),
        "responses": Spec("text_list", True),
        "rankings": Spec("rankings", True),
        "item_id": Spec("id", False),
        "annotator_ids": Spec("id_list", False),
        "review_passes": Spec("int", False),
    },
    "judgments": {
        "item_id": Spec("id", True),
        "prompt": Spec("text", True),
        "domain": Spec("text", True),
        "response_a": Spec("text", True),
        "response_b": Spec("text", True),
        "annotator_id": Spec("id", True),
        "preference": Spec("label", True),
        "confidence": Spec("float", False),
        "review_pass": Spec("int", False),
        "is_gold": Spec("bool", False),
        "gold_answer": Spec("label_or_null", False),
        "adjudicated_label": Spec("label_or_null", False),
    },
}

# Defaults for optional columns a shard does not carry.
DEFAULTS: dict[str, pl.Expr] = {
    "review_pass": pl.lit(1, dtype=pl.Int64),
    "is_gold": pl.lit(False),
    "gold_answer": pl.lit(None, dtype=pl.String),
    "adjudicated_label": pl.lit(None, dtype=pl.String),
    "confidence": pl.lit(None, dtype=pl.Float64),
}

_EXPECT = {
    "text": "non-empty text",
    "id": "an id (text or integer)",
    "int": "an integer",
    "float": "a number",
    "bool": "true/false",
    "label": "one of a, b, tie",
    "label_or_null": "one of a, b, tie or null",
    "text_list": "a list of at least 2 non-empty texts",
    "rankings": "a list of rankings (lists of response indices, best first)",
    "id_list": "a list of ids",
}


@dataclass(frozen=True)
class Shard:
    """A validated shard: canonical columns plus `origin_row`."""

    path: str
    sha256: str
    layout: str
    vendor: str
    frame: pl.DataFrame

    @property
    def rows(self) -> int:
        return self.frame.height


def detect_layout(columns: list[str]) -> str:
    """Guess a layout from (canonical) column names: judgments > rankings > pairs."""
    names = set(columns)
    if {"preference", "annotator_id"} <= names:
        return "judgments"
    if {"responses", "rankings"} <= names:
        return "rankings"
    return "pairs"


def read_shard(shard: HumanShard, domains: list[str]) -> Shard:
    """Read and validate one shard; raises InputError on the first problem."""
    path = Path(shard.path)
    table, digest = _read_table(path)
    try:
        frame = pl.from_arrow(table)
    except Exception as exc:  # exotic Arrow types Polars cannot hold
        raise InputError(f"{path}: unsupported column types ({' '.join(str(exc).split())[:120]})") from None
    assert isinstance(frame, pl.DataFrame)
    frame = _rename(frame, shard, path)
    frame = _check_columns(frame, shard.layout, shard.columns, path)
    frame = _check_domains(frame, domains, shard.columns, path)
    if shard.layout == "rankings":
        _check_rankings(frame, shard.columns, path)
    if shard.layout == "judgments":
        frame = frame.with_columns([expr.alias(name) for name, expr in DEFAULTS.items() if name not in frame.columns])
        _check_judgments(frame, shard.columns, path)
    return Shard(str(path), digest, shard.layout, shard.vendor, frame)


# -- file level ----------------------------------------------------------------


def _read_table(path: Path) -> tuple[pa.Table, str]:
    """The table and the file's sha256; a file that changes while being read is refused, so lineage cannot drift.

    (Parsing from an in-memory pa.BufferReader would tie hash and table to one read, but with pyarrow 26 it
    intermittently aborts the interpreter at exit after a failed validate; so: path read + stat check.)
    """
    if not path.exists():
        raise InputError(f"{path}: shard file not found")
    if path.is_dir():
        raise InputError(f"{path}: expected a Parquet file, found a directory")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes), expected a Parquet shard")
    before = path.stat()
    digest = sha256_file(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise InputError(f"{path}: not a readable Parquet file ({reason})") from None
    if table.num_rows == 0:
        raise InputError(f"{path}: shard has no rows")
    after = path.stat()
    if (before.st_size, before.st_mtime_ns, before.st_ino) != (after.st_size, after.st_mtime_ns, after.st_ino):
        raise InputError(f"{path}: file changed while it was being read; retry when the vendor upload has finished")
    _check_utf8(table, path)
    return table, digest


def _check_utf8(table: pa.Table, path: Path) -> None:
    """Parquet writers do not all validate UTF-8; find the first bad string (error path only loops)."""
    for name in table.column_names:
        column = table.column(name)
        if not _has_strings(column.type):
            continue
        try:
            column.validate(full=True)
        except pa.ArrowInvalid:
            raise InputError(f"{path}: row {_first_bad_utf8_row(column)}, column {name!r}: not valid UTF-8 text") from None


def _has_strings(kind: pa.DataType) -> bool:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return True
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _has_strings(kind.value_type)
    return False


def _first_bad_utf8_row(column: pa.ChunkedArray) -> int | str:
    offset = 0
    for chunk in column.chunks:
        try:
            chunk.validate(full=True)
        except pa.ArrowInvalid:
            for index in range(len(chunk)):
                try:
                    chunk.slice(index, 1).validate(full=True)
                except pa.ArrowInvalid:
                    return offset + index
        offset += len(chunk)
    return "?"


# -- columns and types -----------------------------------------------------------


def _label(canonical: str, columns: dict[str, str]) -> str:
    vendor = columns.get(canonical, canonical)
    return repr(vendor) if vendor == canonical else f"{vendor!r} ({canonical})"


def _rename(frame: pl.DataFrame, shard: HumanShard, path: Path) -> pl.DataFrame:
    known = LAYOUTS[shard.layout]
    unknown = sorted(set(shard.columns) - set(known))
    if unknown:
        raise InputError(f"{path}: column mapping names {unknown[0]!r}, not a {shard.layout} column (expected one of {sorted(known)})")
    mapping = {vendor: canonical for canonical, vendor in shard.columns.items() if vendor in frame.columns}
    # a vendor column that shadows a canonical name we map elsewhere is dropped, not silently merged
    clashes = [c for c in mapping.values() if c in frame.columns and c not in mapping]
    # a file that already has origin_row (a re-exported prefmix table) gets ours: the row in THIS file
    frame = frame.drop(clashes).rename(mapping).drop(ROW, strict=False)
    return frame.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))


def _fail_first(
    frame: pl.DataFrame, bad: pl.Expr, path: Path, column: str, columns: dict[str, str], what: str, raw: pl.DataFrame | None = None
) -> None:
    """Raise for the first row where `bad` holds, quoting the offending value as it is in the file (`raw`)."""
    hits = frame.select(pl.col(ROW).filter(bad.fill_null(False)).first()).item()
    if hits is None:
        return
    source = raw if raw is not None and column in raw.columns else frame
    value = source.get_column(column)[int(hits)] if column in source.columns else None
    shown = repr(value) if not isinstance(value, str) or len(value) <= 40 else repr(value[:40] + "...")
    raise InputError(f"{path}: row {hits}, column {_label(column, columns)}: expected {what}, got {shown}")


def _type_ok(dtype: pl.DataType, kind: Kind) -> bool:
    if kind in ("text", "label", "label_or_null"):
        return dtype in (pl.String, pl.Null, pl.Categorical) or isinstance(dtype, pl.Enum)
    if kind == "id":
        return dtype == pl.String or dtype.is_integer()
    if kind == "int":
        return dtype.is_integer() or dtype.is_float() or dtype == pl.Null
    if kind == "float":
        return dtype.is_numeric() or dtype == pl.Null
    if kind == "bool":
        return dtype == pl.Boolean or dtype.is_integer() or dtype == pl.Null
    if kind in ("text_list", "id_list"):
        return isinstance(dtype, pl.List) and (dtype.inner == pl.String or (kind == "id_list" and dtype.inner.is_integer()))
    if kind == "rankings":
        return isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.List) and dtype.inner.inner.is_integer()
    return False


def _check_columns(frame: pl.DataFrame, layout: str, columns: dict[str, str], path: Path) -> pl.DataFrame:
    specs = LAYOUTS[layout]
    for name, spec in specs.items():
        if spec.required and name not in frame.columns:
            raise InputError(f"{path}: missing column {_label(name, columns)} ({layout} layout; columns found: {sorted(c for c in frame.columns if c != ROW)})")
    for name, spec in specs.items():
        if name not in frame.columns:
            continue
        dtype = frame.schema[name]
        if not _type_ok(dtype, spec.kind):
            raise InputError(f"{path}: column {_label(name, columns)}: expected {_EXPECT[spec.kind]}, found type {dtype}")
    for name, spec in specs.items():
        if name not in frame.columns:
            continue
        col, dtype = pl.col(name), frame.schema[name]
        if spec.kind == "int" and dtype.is_float():
            _fail_first(frame, col.is_not_null() & (col.is_nan() | (col != col.round())), path, name, columns, _EXPECT["int"])
        if spec.kind == "bool" and dtype.is_integer():
            _fail_first(frame, col.is_not_null() & ~col.is_in([0, 1]), path, name, columns, "true/false (or 0/1)")
    raw = frame
    casts: list[pl.Expr] = []
    for name, spec in specs.items():
        if name not in frame.columns:
            continue
        col = pl.col(name)
        if spec.kind in ("id", "text"):
            casts.append(col.cast(pl.String))
        elif spec.kind == "id_list":
            casts.append(col.cast(pl.List(pl.String)))
        elif spec.kind == "int":
            casts.append(col.cast(pl.Int64))
        elif spec.kind == "float":
            casts.append(col.cast(pl.Float64))
        elif spec.kind in ("label", "label_or_null"):
            casts.append(col.cast(pl.String).str.strip_chars().str.to_lowercase())
        elif spec.kind == "rankings":
            casts.append(col.cast(pl.List(pl.List(pl.Int64))))
        elif spec.kind == "bool":
            casts.append(col.cast(pl.Boolean))
    frame = frame.with_columns(casts)
    for name, spec in specs.items():
        if name not in frame.columns:
            continue
        col = pl.col(name)
        if spec.kind == "text":
            _fail_first(frame, col.is_null() | (col.str.strip_chars().str.len_chars() == 0), path, name, columns, _EXPECT["text"])
        elif spec.kind == "id":
            _fail_first(frame, col.is_null() | (col.str.strip_chars() == ""), path, name, columns, _EXPECT["id"])
        elif spec.kind == "label":
            _fail_first(frame, ~col.is_in(LABELS) | col.is_null(), path, name, columns, _EXPECT["label"], raw)
        elif spec.kind == "label_or_null":
            _fail_first(frame, col.is_not_null() & ~col.is_in(LABELS), path, name, columns, _EXPECT["label_or_null"], raw)
        elif spec.kind == "float":
            _fail_first(frame, col.is_nan(), path, name, columns, "a number (not NaN)")
        elif spec.kind == "int" and name in ("review_pass", "review_passes"):
            _fail_first(frame, col.is_null() | (col < 1), path, name, columns, "a review pass number >= 1")
        elif spec.kind == "text_list":
            empty_item = col.list.eval(pl.element().is_null() | (pl.element().str.strip_chars().str.len_chars() == 0)).list.any()
            _fail_first(frame, col.is_null() | (col.list.len() < 2) | empty_item, path, name, columns, _EXPECT["text_list"])
        elif spec.kind == "id_list":
            _fail_first(frame, col.list.eval(pl.element().is_null()).list.any(), path, name, columns, _EXPECT["id_list"])
    if layout == "pairs" and "agreement" in frame.columns:
        agreement = pl.col("agreement")
        _fail_first(frame, (agreement < 0) | (agreement > 1), path, "agreement", columns, "an agreement share in [0, 1]")
    return frame


def _check_domains(frame: pl.DataFrame, domains: list[str], columns: dict[str, str], path: Path) -> pl.DataFrame:
    frame = frame.with_columns(pl.col("domain").str.strip_chars())
    _fail_first(frame, ~pl.col("domain").is_in(domains), path, "domain", columns, f"a configured domain {domains}")
    return frame


def _check_rankings(frame: pl.DataFrame, columns: dict[str, str], path: Path) -> None:
    """Each ranking orders every response of its row (a permutation, best first); annotator ids align with rankings."""
    n = pl.col("responses").list.len()
    ranks = pl.col("rankings")
    _fail_first(frame, ranks.is_null() | (ranks.list.len() == 0), path, "rankings", columns, "at least one ranking")
    flat = frame.select(ROW, n.alias("n"), ranks).explode("rankings")
    flat = flat.with_columns(
        bad=pl.col("rankings").is_null()
        | (pl.col("rankings").list.len() != pl.col("n"))
        | (pl.col("rankings").list.n_unique() != pl.col("rankings").list.len())
        | (pl.col("rankings").list.min() < 0)
        | (pl.col("rankings").list.max() >= pl.col("n"))
        | pl.col("rankings").list.eval(pl.element().is_null()).list.any()
    )
    bad_rows = flat.filter(pl.col("bad")).get_column(ROW)
    if bad_rows.len():
        row = int(bad_rows[0])
        value = frame.filter(pl.col(ROW) == row).get_column("rankings").to_list()[0]
        raise InputError(
            f"{path}: row {row}, column {_label('rankings', columns)}: expected each ranking to order every response "
            f"(a permutation of 0..{len(frame.filter(pl.col(ROW) == row).get_column('responses').to_list()[0]) - 1}, best first), got {value!r}"
        )
    if "annotator_ids" in frame.columns:
        ids = pl.col("annotator_ids")
        _fail_first(frame, ids.is_not_null() & (ids.list.len() != ranks.list.len()), path, "annotator_ids", columns, "one annotator id per ranking")


def _check_judgments(frame: pl.DataFrame, columns: dict[str, str], path: Path) -> None:
    """Gold rows need a gold answer; one item keeps one prompt, pair and domain across rows."""
    _fail_first(frame, pl.col("is_gold").is_null(), path, "is_gold", columns, "true/false")
    _fail_first(frame, pl.col("is_gold") & pl.col("gold_answer").is_null(), path, "gold_answer", columns, "a gold answer (a, b or tie) on a gold row")
    for name in ("prompt", "response_a", "response_b", "domain", "is_gold", "gold_answer"):
        differs = pl.col(name).n_unique().over("item_id") > 1
        first_of_item = pl.col(ROW) == pl.col(ROW).min().over("item_id")
        _fail_first(frame, differs & ~first_of_item, path, name, columns, f"the same {name} on every row of the item")
