"""The canonical preference record: one Arrow schema for every row prefmix writes."""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Iterable

import polars as pl
import pyarrow as pa

SOURCES = ("human", "synthetic")
SPLITS = ("train", "eval")

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

GENERATION = pa.struct(
    [
        ("teacher", pa.string()),
        ("teacher_models", pa.list_(pa.string())),
        ("judge", pa.string()),
        ("strategy", pa.string()),
        ("sampling", pa.string()),  # JSON: temperature, top_p, max_tokens, n, seed
        ("template_id", pa.string()),
        ("template_sha256", pa.string()),
        ("constitution_id", pa.string()),
        ("constitution_sha256", pa.string()),
        ("principle_id", pa.string()),
        ("run_id", pa.string()),
        ("vllm_version", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
    ]
)

ANNOTATION = pa.struct(
    [
        ("vendor", pa.string()),
        ("annotator_ids", pa.list_(pa.string())),
        ("annotator_count", pa.int32()),
        ("agreement", pa.float64()),
        ("review_passes", pa.int32()),
        ("adjudicated", pa.bool_()),
    ]
)

SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("chosen", pa.string(), nullable=False),
        pa.field("rejected", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("chosen_score", pa.float64()),
        pa.field("rejected_score", pa.float64()),
        pa.field("origin_uri", pa.string(), nullable=False),
        pa.field("origin_sha256", pa.string(), nullable=False),
        pa.field("origin_row", pa.int64(), nullable=False),
        pa.field("generation", GENERATION),
        pa.field("annotation", ANNOTATION),
        pa.field("context", pa.list_(MESSAGE)),
        pa.field("batch_id", pa.string()),
        pa.field("split", pa.string()),
    ]
)

COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
POLARS_SCHEMA: pl.Schema = pl.Schema(pl.from_arrow(SCHEMA.empty_table()).schema)

_SEP = "\x1f"


def normalize_text(text: str) -> str:
    """NFC, trimmed, internal whitespace collapsed: what 'the same text' means for ids."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def record_id(prompt: str, chosen: str, rejected: str) -> str:
    """Stable content hash of the normalized (prompt, chosen, rejected) triple."""
    key = _SEP.join(normalize_text(t) for t in (prompt, chosen, rejected))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def prompt_key(prompt: str) -> str:
    """Stable hash of the normalized prompt; used for dedup and split assignment."""
    return hashlib.sha256(normalize_text(prompt).encode("utf-8")).hexdigest()


def record_ids(prompts: Iterable[str], chosens: Iterable[str], rejecteds: Iterable[str]) -> list[str]:
    return [record_id(p, c, r) for p, c, r in zip(prompts, chosens, rejecteds)]


def with_record_id(frame: pl.DataFrame) -> pl.DataFrame:
    """Add (or overwrite) record_id from prompt/chosen/rejected."""
    ids = record_ids(frame["prompt"].to_list(), frame["chosen"].to_list(), frame["rejected"].to_list())
    return frame.with_columns(pl.Series("record_id", ids, dtype=pl.String))


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Give a frame exactly the canonical columns, order and types (missing optional columns become null)."""
    missing = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in POLARS_SCHEMA.items() if name not in frame.columns]
    frame = frame.with_columns(missing) if missing else frame
    return frame.select([pl.col(name).cast(dtype) for name, dtype in POLARS_SCHEMA.items()])


def to_arrow(frame: pl.DataFrame) -> pa.Table:
    """Arrow table with the canonical schema (nullability included)."""
    return conform(frame).to_arrow().cast(SCHEMA)


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=POLARS_SCHEMA)
