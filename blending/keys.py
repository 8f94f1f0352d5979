"""The key pass: one small row per input row, read from the key columns only.

A key row holds where the row lives (file, row), its source, domain, kind and
teacher, and five 64-bit integers: the first 128 bits of record_id, the
first 128 bits of the prompt key, and the split key (the prompt key's first
64 bits, or for rows of a task group the first 64 bits of sha256(task_group),
so every row of an agent task lands in the same split). Everything the blend decides (dedup, quotas,
sampling, split) is decided on these ~60-byte rows; the text is read again only
to write the chosen rows.

The prompt key is exactly `prefmix.records.prompt_key` (sha256 of the
normalized prompt). sha256 runs in C; the Python cost per row is the
normalization, so ASCII rows take byte-level shortcuts that give the same
result as `normalize_text` (checked in the tests against every code point that
str.split() treats as whitespace), and only non-ASCII rows pay for NFC. Polars' own `.hash()` is not used for
anything that decides output: its values change between Polars versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from prefmix.errors import InputError
from prefmix.hashing import bits64, mix64
from prefmix.records import KINDS, normalize_text

KEY_COLUMNS = ["record_id", "prompt", "domain", "source", "generation.teacher", "kind", "task_group"]
REQUIRED = ("record_id", "prompt", "chosen", "rejected", "domain", "source", "origin_uri", "origin_sha256", "origin_row")
BATCH_ROWS = 65_536
PARALLEL_MIN_ROWS = 400_000  # below this, worker start-up costs more than it saves

KEY_SCHEMA = {
    "file": pl.UInt32,
    "row": pl.UInt32,
    "synthetic": pl.Boolean,
    "domain": pl.Categorical,  # 4 bytes a row instead of a string view's 16
    "teacher": pl.Categorical,
    "kind": pl.Categorical,
    "rid_hi": pl.UInt64,
    "rid_lo": pl.UInt64,
    "pk_hi": pl.UInt64,
    "pk_lo": pl.UInt64,
    "sk_hi": pl.UInt64,
}


@dataclass(frozen=True)
class Input:
    """One input Parquet file and the source it was given as."""

    path: str
    source: str
    rows: int


def inspect(paths: list[str | Path], source: str) -> list[Input]:
    """Check each file is canonical-record Parquet; returns them in a stable (sorted) order."""
    found: list[Input] = []
    for path in expand(paths):
        try:
            meta = pq.read_metadata(path)
            schema = pq.read_schema(path)
        except FileNotFoundError:
            raise InputError(f"{path}: {source} input file not found") from None
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
        missing = [name for name in REQUIRED if name not in schema.names]
        if missing:
            raise InputError(
                f"{path}: not in the canonical record schema (missing column {missing[0]!r}); "
                "convert it to prefmix records first"
            )
        found.append(Input(str(path), source, meta.num_rows))
    return found


def expand(paths: list[str | Path]) -> list[str]:
    """Files as given; a directory stands for the *.parquet files under it. Sorted, so order never matters."""
    files: set[str] = set()
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files.update(str(p) for p in path.rglob("*.parquet") if not p.name.startswith("."))
        else:
            files.add(str(path))
    return sorted(files)


_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))
_ASCII_TEXT = _PRINTABLE_ASCII + b"\t\n\r\x0b\x0c"


def prompt_digest(text: bytes) -> bytes:
    """sha256 digest of the normalized prompt (UTF-8 bytes in): the bytes behind `prefmix.records.prompt_key`."""
    # Printable ASCII with single inner spaces is already normalized. ASCII whose only other
    # characters are \t\n\v\f\r normalizes with bytes.split(), which splits on exactly
    # the whitespace str.split() knows in that range. Anything else (\x1c-\x1f, non-ASCII:
    # NFC, Unicode spaces) takes prefmix.records.normalize_text itself.
    if not text.translate(None, _PRINTABLE_ASCII):
        if b"  " not in text and text[:1] != b" " and text[-1:] != b" ":
            return hashlib.sha256(text).digest()
        return hashlib.sha256(b" ".join(text.split())).digest()
    if not text.translate(None, _ASCII_TEXT):
        return hashlib.sha256(b" ".join(text.split())).digest()
    return hashlib.sha256(normalize_text(text.decode("utf-8")).encode("utf-8")).digest()


def _first_bad(mask: pl.Series) -> int:
    return int(mask.arg_true()[0])


def _batch_keys(batch: pa.RecordBatch, item: Input, file_index: int, start: int) -> pl.DataFrame:
    prompts = batch.column("prompt")
    if prompts.null_count:
        row = _first_bad(pl.Series(prompts.is_null()))
        raise InputError(f"{item.path}: row {start + row}: prompt is null (expected a string)")
    frame = pl.from_arrow(batch.drop_columns(["prompt"]))
    assert isinstance(frame, pl.DataFrame)
    n = frame.height
    for name in ("record_id", "domain"):
        nulls = frame[name].is_null()
        if nulls.any():
            raise InputError(f"{item.path}: row {start + _first_bad(nulls)}: {name} is null (expected a string)")
    rid = frame.select(
        hi=pl.col("record_id").str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64, strict=False),
        lo=pl.col("record_id").str.slice(16, 16).str.to_integer(base=16, dtype=pl.UInt64, strict=False),
        ok=pl.col("record_id").str.len_bytes() == 64,
    )
    bad = rid["hi"].is_null() | rid["lo"].is_null() | ~rid["ok"]
    if bad.any():
        row = _first_bad(bad)
        raise InputError(f"{item.path}: row {start + row}: record_id {frame['record_id'][row]!r} is not a 64-digit hex sha256")
    wrong = frame["source"].ne_missing(item.source)
    if wrong.any():
        row = _first_bad(wrong)
        raise InputError(
            f"{item.path}: row {start + row}: source is {frame['source'][row]!r} but the file was given as {item.source} input"
        )
    digests = b"".join([prompt_digest(text) for text in prompts.cast(pa.large_binary()).to_pylist()])
    words = np.frombuffer(digests, dtype=">u8").reshape(n, 4).astype(np.uint64)
    teacher = (
        frame["generation"].struct.field("teacher")
        if "generation" in frame.columns and item.source == "synthetic"
        else pl.repeat(None, n, dtype=pl.String, eager=True)
    )
    kind = frame["kind"].fill_null(KINDS[0]) if "kind" in frame.columns else pl.repeat(KINDS[0], n, dtype=pl.String, eager=True)
    split_key = words[:, 0]
    if "task_group" in frame.columns and frame["task_group"].null_count() < n:
        groups = frame["task_group"].to_list()
        group_keys = np.array([bits64(g) if g is not None else 0 for g in groups], dtype=np.uint64)
        split_key = np.where(frame["task_group"].is_null().to_numpy(), split_key, group_keys)
    return pl.DataFrame(
        {
            "file": pl.repeat(file_index, n, dtype=pl.UInt32, eager=True),
            "row": pl.int_range(start, start + n, dtype=pl.UInt32, eager=True),
            "synthetic": pl.repeat(item.source == "synthetic", n, dtype=pl.Boolean, eager=True),
            "domain": frame["domain"],
            "teacher": teacher.fill_null("unknown"),
            "kind": kind,
            "rid_hi": rid["hi"],
            "rid_lo": rid["lo"],
            "pk_hi": words[:, 0],
            "pk_lo": words[:, 1],
            "sk_hi": split_key,
        },
        schema=KEY_SCHEMA,
    )


def file_keys(item: Input, file_index: int) -> pl.DataFrame:
    """Key rows of one file, read batch by batch (memory is one batch of the key columns)."""
    handle = pq.ParquetFile(item.path)
    columns = [c for c in KEY_COLUMNS if c.split(".")[0] in handle.schema_arrow.names]
    parts: list[pl.DataFrame] = []
    start = 0
    for batch in handle.iter_batches(batch_size=BATCH_ROWS, columns=columns):
        parts.append(_batch_keys(batch, item, file_index, start))
        start += batch.num_rows
    if not parts:
        return pl.DataFrame(schema=KEY_SCHEMA)
    return pl.concat(parts, rechunk=True)


def _scan_in_workers(jobs: list[tuple[Input, int]], workers: int) -> list[pl.DataFrame]:
    """Spread files over `workers` child processes (python -m blending.keyworker); results in input order."""
    with tempfile.TemporaryDirectory(prefix="prefmix-keys-") as tmp:
        outs = [str(Path(tmp) / f"{index:06d}.arrow") for _, index in jobs]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for w in range(workers):
                group = [[item.path, item.source, item.rows, index, outs[index]] for item, index in jobs[w::workers]]
                spec = Path(tmp) / f"worker-{w}.json"
                spec.write_text(json.dumps({"jobs": group}), encoding="utf-8")
                procs.append(subprocess.Popen([sys.executable, "-m", "prefmix.blending.keyworker", str(spec)], stderr=subprocess.PIPE))
            errors = [(proc.wait(), proc.stderr.read().decode("utf-8", "replace").strip() if proc.stderr else "") for proc in procs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        for code, err in errors:
            if code == 2 and err:
                raise InputError(err.splitlines()[-1])
            if code != 0:
                raise RuntimeError(f"key-pass worker failed (exit {code}): {err[-2000:]}")
        return [pl.read_ipc(out) for out in outs]


def scan(inputs: list[Input], workers: int | None = None) -> pl.DataFrame:
    """Key rows of all inputs, in input order. Large inputs are spread over worker processes."""
    jobs = [(item, index) for index, item in enumerate(inputs)]
    total = sum(item.rows for item in inputs)
    workers = workers if workers is not None else min(os.cpu_count() or 1, len(jobs))
    if workers <= 1 or total < PARALLEL_MIN_ROWS:
        parts = [file_keys(item, index) for item, index in jobs]
    else:
        parts = _scan_in_workers(jobs, workers)
    if not parts:
        return pl.DataFrame(schema=KEY_SCHEMA)
    return pl.concat(parts, rechunk=True)


def sample_keys(rid_hi: pl.Series, seed: int) -> pl.Series:
    """Seeded sampling order: mix64(record_id's first 64 bits XOR mix64(seed)). Lower key = picked first."""
    salt = mix64(np.array([seed & 0xFFFF_FFFF_FFFF_FFFF], dtype=np.uint64))[0]
    return pl.Series("sample_key", mix64(rid_hi.to_numpy() ^ salt), dtype=pl.UInt64)
