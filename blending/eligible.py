"""Which key rows may be blended at all: configured domain, nonzero source ratio, a teacher with a share."""

from __future__ import annotations

import polars as pl

from prefmix.config import Blend
from prefmix.records import KINDS

from prefmix.blending.quotas import ratios


def eligible(keys: pl.DataFrame, blend: Blend, domains: list[str]) -> tuple[pl.DataFrame, dict[str, int]]:
    """Drop rows that no quota can use, before dedup (so an unusable row never wins a collision)."""
    zero_human = [d for d in domains if ratios(blend, d)["human"] == 0]
    zero_synthetic = [d for d in domains if ratios(blend, d)["synthetic"] == 0]
    ratio_zero = pl.when(pl.col("synthetic")).then(pl.col("domain").is_in(zero_synthetic)).otherwise(pl.col("domain").is_in(zero_human))
    teachers = sorted(t for t, share in blend.teacher_shares.items() if share > 0)
    kind_zero = pl.lit(False)
    for domain in domains:
        for source, shares in blend.kind_shares_for(domain).items():
            kinds = sorted(k for k, share in shares.items() if share > 0)
            kind_zero = kind_zero | ((pl.col("domain") == domain) & (pl.col("synthetic") == (source == "synthetic"))
                                     & ~pl.col("kind").cast(pl.String).is_in(kinds))
    # teacher shares split single-turn synthetic rows (all synthetic rows of a domain whose kinds are not split)
    unsplit = [d for d in domains if "synthetic" not in blend.kind_shares_for(d)]
    teacher_split = pl.col("synthetic") & ((pl.col("kind") == KINDS[0]) | pl.col("domain").cast(pl.String).is_in(unsplit))
    reason = (
        pl.when(~pl.col("domain").is_in(domains))
        .then(pl.lit("domain_not_configured"))
        .when(ratio_zero)
        .then(pl.lit("source_ratio_zero"))
        .when(kind_zero)
        .then(pl.lit("kind_share_zero"))
        .when(teacher_split & pl.lit(bool(blend.teacher_shares)) & ~pl.col("teacher").is_in(teachers))
        .then(pl.lit("teacher_not_in_shares"))
        .otherwise(None)
    )
    counts = keys.lazy().select(reason.alias("reason")).group_by("reason").len().drop_nulls("reason").collect()
    excluded = {"domain_not_configured": 0, "source_ratio_zero": 0, "teacher_not_in_shares": 0, "kind_share_zero": 0}
    excluded.update({row["reason"]: int(row["len"]) for row in counts.iter_rows(named=True)})
    if not any(excluded.values()):
        return keys, excluded
    return keys.filter(reason.is_null()), excluded
