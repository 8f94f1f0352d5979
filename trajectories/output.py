"""Write a derivation's rows and rejections as Parquet, in the exact schema of their layout (atomic, deterministic)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from prefmix.records import kto_to_arrow, step_labels_to_arrow, to_arrow
from prefmix.store import write_parquet
from prefmix.trajectories.derive import Derivation

WRITERS = {"preference": to_arrow, "step_labels": step_labels_to_arrow, "kto": kto_to_arrow}


def rows_table(result: Derivation) -> pa.Table:
    return WRITERS[result.summary.layout](result.rows)


def write_outputs(result: Derivation, out: Path) -> dict[str, str]:
    """Rows to `out`, rejections to <stem>.rejections.parquet beside it; returns both paths."""
    rejections = out.with_name(f"{out.stem}.rejections.parquet")
    write_parquet(rows_table(result), out)
    write_parquet(result.rejections.to_arrow(), rejections)
    return {"out": str(out), "rejections_out": str(rejections)}
