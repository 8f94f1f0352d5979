"""Seeded selection of exactly the quota from each cell, with capped upsampling."""

from __future__ import annotations

import polars as pl

CELL = ["domain", "synthetic", "cell_teacher"]


def with_cell(keys: pl.DataFrame, by_teacher: bool) -> pl.DataFrame:
    teacher = pl.when(pl.col("synthetic") & pl.lit(by_teacher)).then(pl.col("teacher")).otherwise(pl.lit("*"))
    return keys.with_columns(cell_teacher=teacher)


def available(keys: pl.DataFrame) -> dict[tuple[str, str, str], int]:
    """Rows per cell (domain, source, teacher or '*')."""
    counts = keys.group_by(CELL).len()
    return {
        (r["domain"], "synthetic" if r["synthetic"] else "human", r["cell_teacher"]): int(r["len"])
        for r in counts.iter_rows(named=True)
    }


def select(keys: pl.DataFrame, wanted: dict[tuple[str, str, str], int]) -> pl.DataFrame:
    """Per cell, the `q` rows with the lowest sample keys; when q exceeds the cell, every row
    q // n times and the first q % n rows once more. Returns (file, row, copies, ...) in input order."""
    quota = pl.DataFrame(
        {
            "domain": [k[0] for k in wanted],
            "synthetic": [k[1] == "synthetic" for k in wanted],
            "cell_teacher": [k[2] for k in wanted],
            "quota": list(wanted.values()),
        },
        schema={"domain": pl.Categorical, "synthetic": pl.Boolean, "cell_teacher": pl.Categorical, "quota": pl.Int64},
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
