"""Inter-annotator agreement: Krippendorff's alpha (nominal) and pairwise percent agreement.

Both work from a long vote table (unit, value): one row per annotator per unit.
Alpha comes from the `krippendorff` package, fed a units x values count matrix
built with a Polars group-by (no annotator x unit pivot, so 20 annotators or
2,000 cost the same). Percent agreement is the share of agreeing annotator
pairs within units, pooled over all pairs: sum_u sum_c n_uc (n_uc - 1) /
sum_u m_u (m_u - 1), over units with at least two annotators.
"""

from __future__ import annotations

from typing import Any

import krippendorff
import numpy as np
import polars as pl


def value_counts(votes: pl.DataFrame, unit: str = "item_id", value: str = "preference") -> np.ndarray:
    """Units x values matrix of counts (only units with >= 2 votes can be paired)."""
    counts = votes.group_by(unit, value).len()
    wide = counts.pivot(on=value, index=unit, values="len", aggregate_function="sum").fill_null(0)
    matrix = wide.drop(unit).to_numpy().astype(float)
    return matrix[matrix.sum(axis=1) >= 2] if matrix.size else matrix


def alpha_nominal(votes: pl.DataFrame, unit: str = "item_id", value: str = "preference") -> float | None:
    """Krippendorff's alpha for nominal data; None when it is undefined (no pairable units or one value only)."""
    return _alpha(value_counts(votes, unit, value))


def percent_agreement(votes: pl.DataFrame, unit: str = "item_id", value: str = "preference") -> float | None:
    return _percent(value_counts(votes, unit, value))


def _alpha(matrix: np.ndarray) -> float | None:
    if matrix.shape[0] == 0 or matrix.ndim < 2 or (matrix.sum(axis=0) > 0).sum() < 2:
        return None
    result = float(krippendorff.alpha(value_counts=matrix, level_of_measurement="nominal"))
    return None if np.isnan(result) else result


def _percent(matrix: np.ndarray) -> float | None:
    if matrix.shape[0] == 0:
        return None
    per_unit = matrix.sum(axis=1)
    pairs = float((per_unit * (per_unit - 1)).sum())
    return float((matrix * (matrix - 1)).sum()) / pairs if pairs else None


def summary(votes: pl.DataFrame) -> dict[str, Any]:
    """Alpha, percent agreement and sizes for one vote table."""
    per_item = votes.group_by("item_id").len()
    matrix = value_counts(votes)
    return {
        "alpha": _round(_alpha(matrix)),
        "percent_agreement": _round(_percent(matrix)),
        "items": per_item.height,
        "pairable_items": int(per_item.filter(pl.col("len") >= 2).height),
        "judgments": votes.height,
        "annotators": int(votes.get_column("annotator_id").n_unique()) if votes.height else 0,
    }


def by_domain(votes: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {domain: summary(votes.filter(pl.col("domain") == domain)) for domain in sorted(votes.get_column("domain").unique().to_list())}


def by_review_pass(frame: pl.DataFrame, excluded: list[str]) -> dict[str, dict[str, Any]]:
    """Agreement as it stood after each pass: every annotator's latest answer with review_pass <= p.

    Cumulative, not pass-only, because a second pass usually revisits a subset;
    comparing 'after pass 1' with 'after pass 2' shows whether the pass helped.
    """
    from prefmix.annotations.aggregate import latest_votes

    frame = frame.filter(~pl.col("annotator_id").is_in(pl.Series(excluded, dtype=pl.String).implode()))
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(frame.get_column("review_pass").unique().to_list()):
        upto = frame.filter(pl.col("review_pass") <= p)
        stats = summary(latest_votes(upto))
        stats["judgments_in_pass"] = int(frame.filter(pl.col("review_pass") == p).height)
        out[str(p)] = stats
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
