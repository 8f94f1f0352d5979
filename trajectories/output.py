"""Write a derivation's rows and rejections as Parquet, in the exact schema of their layout. Atomic per file."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from prefmix.records import kto_to_arrow, step_labels_to_arrow, to_arrow
from prefmix.trajectories.derive import Derivation

WRITERS = {"preference": to_arrow, "step_labels": step_labels_to_arrow, "kto": kto_to_arrow}


def rows_table(result: Derivation) -> pa.Table:
    return WRITERS[result.summary.layout](result.rows)


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def write_outputs(result: Derivation, out: Path) -> dict[str, str]:
    """Rows to `out`, rejections to <stem>.rejections.parquet beside it; returns both paths."""
    rejections = out.with_name(f"{out.stem}.rejections.parquet")
    _write(rows_table(result), out)
    _write(result.rejections.to_arrow(), rejections)
    return {"out": str(out), "rejections_out": str(rejections)}
