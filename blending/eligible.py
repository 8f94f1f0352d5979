"""Which key rows may be blended at all: configured domain, nonzero source ratio, a teacher with a share."""

from __future__ import annotations

import polars as pl

from prefmix.config import Blend

from prefmix.blending.quotas import ratios


def eligible(keys: pl.DataFrame, blend: Blend, domains: list[str]) -> tuple[pl.DataFrame, dict[str, int]]:
    """Drop rows that no quota can use, before dedup (so an unusable row never wins a collision)."""
    zero_human = [d for d in domains if ratios(blend, d)["human"] == 0]
    zero_synthetic = [d for d in domains if ratios(blend, d)["synthetic"] == 0]
    ratio_zero = pl.when(pl.col("synthetic")).then(pl.col("domain").is_in(zero_synthetic)).otherwise(pl.col("domain").is_in(zero_human))
    teachers = sorted(t for t, share in blend.teacher_shares.items() if share > 0)
    reason = (
        pl.when(~pl.col("domain").is_in(domains))
        .then(pl.lit("domain_not_configured"))
        .when(ratio_zero)
        .then(pl.lit("source_ratio_zero"))
        .when(pl.col("synthetic") & pl.lit(bool(blend.teacher_shares)) & ~pl.col("teacher").is_in(teachers))
        .then(pl.lit("teacher_not_in_shares"))
        .otherwise(None)
    )
    counts = keys.lazy().select(reason.alias("reason")).group_by("reason").len().drop_nulls("reason").collect()
    excluded = {"domain_not_configured": 0, "source_ratio_zero": 0, "teacher_not_in_shares": 0}
    excluded.update({row["reason"]: int(row["len"]) for row in counts.iter_rows(named=True)})
    if not any(excluded.values()):
        return keys, excluded
    return keys.filter(reason.is_null()), excluded
