"""Judge-versus-human calibration, data side: pick the sample, score the verdicts.

The flow runs the synthetic judge on `sample_for_calibration(...)` and passes
its verdicts back to `judge_human_agreement(...)`.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from prefmix.contract import JudgeHumanAgreement
from prefmix.errors import InputError
from prefmix.shares import share_of

VERDICTS = ("chosen", "rejected")


def sample_for_calibration(human_pairs: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """Seeded sample of n pairs, stratified by domain in proportion to its size (largest remainder).

    Rows are ordered by record_id before sampling, so the pick does not depend on input order.
    """
    if n <= 0 or human_pairs.height == 0:
        return human_pairs.head(0)
    if n >= human_pairs.height:
        return human_pairs.sort("record_id")
    sizes = human_pairs.group_by("domain").len().sort("domain")
    exact = sizes.with_columns(q=pl.col("len") * n / human_pairs.height)
    exact = exact.with_columns(base=pl.col("q").floor().cast(pl.Int64), rest=pl.col("q") - pl.col("q").floor())
    short = n - int(exact.get_column("base").sum())
    exact = exact.sort(["rest", "domain"], descending=[True, False]).with_columns(
        quota=pl.col("base") + (pl.int_range(pl.len()) < short).cast(pl.Int64)
    )
    parts = []
    for domain, quota in zip(exact.get_column("domain").to_list(), exact.get_column("quota").to_list()):
        rows = human_pairs.filter(pl.col("domain") == domain).sort("record_id")
        parts.append(rows.sample(n=quota, seed=seed, shuffle=True))
    return pl.concat(parts).sort("record_id")


def _share(frame: pl.DataFrame) -> dict[str, Any]:
    judged = int(frame.get_column("judge_prefers").is_not_null().sum())
    agree = int((frame.get_column("judge_prefers") == "chosen").sum())
    return {
        "pairs": frame.height,
        "judged": judged,
        "unjudged": frame.height - judged,
        "agree": agree,
        "disagree": judged - agree,
        "share": share_of(agree, judged),
    }


def judge_human_agreement(human_pairs: pl.DataFrame, verdicts: pl.DataFrame) -> JudgeHumanAgreement:
    """How often the judge prefers what people preferred, overall and per domain.

    verdicts: record_id, judge_prefers in {"chosen", "rejected", None}. None is a
    verdict the judge could not give (unparseable, self-inconsistent): counted
    as unjudged and left out of the share. Verdicts for ids that are not among
    the human pairs are counted as `unknown_record_ids` and ignored.
    """
    for column in ("record_id", "judge_prefers"):
        if column not in verdicts.columns:
            raise InputError(f"judge verdicts: missing column {column!r}")
    bad = verdicts.filter(pl.col("judge_prefers").is_not_null() & ~pl.col("judge_prefers").is_in(VERDICTS))
    if bad.height:
        raise InputError(
            f"judge verdicts: record {bad.get_column('record_id')[0]}, column 'judge_prefers': "
            f"expected chosen, rejected or null, got {bad.get_column('judge_prefers')[0]!r}"
        )
    verdicts = verdicts.select("record_id", pl.col("judge_prefers").cast(pl.String)).unique("record_id", keep="last", maintain_order=True)
    pairs = human_pairs.select("record_id", "domain").unique("record_id", maintain_order=True)
    joined = pairs.join(verdicts, on="record_id", how="inner")
    unknown = verdicts.join(pairs, on="record_id", how="anti").height
    result = _share(joined)
    result["agreement"] = result["share"]  # the name the manifest, the gate and the demo summary read
    result["unknown_record_ids"] = unknown
    result["per_domain"] = {d: _share(joined.filter(pl.col("domain") == d)) for d in sorted(joined.get_column("domain").unique().to_list())}
    return JudgeHumanAgreement.model_validate(result)
