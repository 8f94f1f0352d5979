"""Seeded selection of exactly the quota from each cell, with capped upsampling."""

from __future__ import annotations

import polars as pl

from prefmix.blending.quotas import ANY, Cell
from prefmix.records import KINDS

CELL = ["domain", "synthetic", "cell_kind", "cell_teacher"]


def with_cell(keys: pl.DataFrame, by_teacher: bool, kinds_for: dict[str, list[str]]) -> pl.DataFrame:
    """The cell of every key row: its kind when its source's kinds are split in its domain (`kinds_for`: source ->
    the domains where they are), its teacher when teachers are."""
    domain = pl.col("domain").cast(pl.String)
    split_kinds = pl.when(pl.col("synthetic")).then(domain.is_in(kinds_for.get("synthetic", []))).otherwise(
        domain.is_in(kinds_for.get("human", [])))
    kind = pl.when(split_kinds).then(pl.col("kind").cast(pl.String)).otherwise(pl.lit(ANY))
    teacher_split = pl.col("synthetic") & pl.lit(by_teacher) & ((kind == KINDS[0]) | (kind == ANY))
    teacher = pl.when(teacher_split).then(pl.col("teacher").cast(pl.String)).otherwise(pl.lit(ANY))
    return keys.with_columns(cell_kind=kind.cast(pl.Categorical), cell_teacher=teacher.cast(pl.Categorical))


def available(keys: pl.DataFrame) -> dict[Cell, int]:
    """Rows per cell (domain, source, kind or '*', teacher or '*')."""
    counts = keys.group_by(CELL).len()
    return {
        (r["domain"], "synthetic" if r["synthetic"] else "human", r["cell_kind"], r["cell_teacher"]): int(r["len"])
        for r in counts.iter_rows(named=True)
    }


def select(keys: pl.DataFrame, wanted: dict[Cell, int]) -> pl.DataFrame:
    """Per cell, the `q` rows with the lowest sample keys; when q exceeds the cell, every row
    q // n times and the first q % n rows once more. Returns (file, row, copies, ...) in input order."""
    quota = pl.DataFrame(
        {
            "domain": [k[0] for k in wanted],
            "synthetic": [k[1] == "synthetic" for k in wanted],
            "cell_kind": [k[2] for k in wanted],
            "cell_teacher": [k[3] for k in wanted],
            "quota": list(wanted.values()),
        },
        schema={"domain": pl.Categorical, "synthetic": pl.Boolean, "cell_kind": pl.Categorical, "cell_teacher": pl.Categorical,
                "quota": pl.Int64},
    )
    ranked = (
        keys.lazy()
        .sort(["sample_key", "rid_lo", "file", "row"])
        .with_columns(rank=pl.int_range(pl.len(), dtype=pl.Int64).over(CELL), size=pl.len().over(CELL).cast(pl.Int64))
        .join(quota.lazy(), on=CELL, how="inner")
        .with_columns(
            copies=pl.when(pl.col("quota") <= pl.col("size"))
            .then((pl.col("rank") < pl.col("quota")).cast(pl.Int64))
            .otherwise(pl.col("quota") // pl.col("size") + (pl.col("rank") < pl.col("quota") % pl.col("size")).cast(pl.Int64))
        )
        .filter(pl.col("copies") > 0)
        .drop("rank", "size", "quota")
        .sort(["file", "row"])
    )
    return ranked.collect()
