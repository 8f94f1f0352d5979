"""Per synthetic pair, the signals of judge doubt, each in [0, 1] (1 = most doubt), null where the row cannot say.

- judge_disagreement: with two or more judges in `generation.judge_votes`, the share of the judges' support that
  goes against the pair's chosen. A judge's support is the mean over its orders of 1 (chosen won), 0.5 (tie) or
  0 (rejected won), so position effects average out (as RLAIF does); unparseable votes are left out.
  0 = every judge for the chosen, 0.5 = an even split, 1 = every judge against it.
- order_flip: among judges that judged the pair in both orders, the share whose winner changes with the order.
- small_margin: 1 - (chosen_score - rejected_score) / margin_scale, clipped to [0, 1] (integer judge scores).
- small_expected_margin: the same for chosen_expected - rejected_expected (score-token probabilities); a negative
  expected margin (the judge's own probabilities favour the rejected) is full doubt.
- length_ratio: ln(len(chosen) / len(rejected)) / ln(length_ratio_cap), clipped: judges favour longer answers, so
  a chosen much longer than its rejected is doubtful; a shorter chosen is not.
- truncated: 1 when the chosen stopped at max_tokens (finish reason "length"), 0 when it stopped on its own.

Domain agreement is not a signal here: it is the base rate of the route score (prefmix.routing.score).
"""

from __future__ import annotations

import math

import polars as pl

from prefmix.config import RouteSignals

SIGNALS: tuple[str, ...] = (
    "judge_disagreement",
    "order_flip",
    "small_margin",
    "small_expected_margin",
    "length_ratio",
    "truncated",
)
SUPPORT = {"chosen": 1.0, "tie": 0.5, "rejected": 0.0}


def _clip(expr: pl.Expr) -> pl.Expr:
    return expr.clip(0.0, 1.0)


def vote_signals(frame: pl.DataFrame) -> pl.DataFrame:
    """record_id, judges, judge_disagreement, order_flip from generation.judge_votes (rows without votes: nulls)."""
    votes = (
        frame.select("record_id", pl.col("generation").struct.field("judge_votes").alias("vote"))
        .explode("vote")
        .drop_nulls("vote")
        .unnest("vote")
        .with_columns(support=pl.col("winner").replace_strict(SUPPORT, default=None, return_dtype=pl.Float64))
    )
    winner = lambda order: pl.col("winner").filter((pl.col("order") == order) & pl.col("support").is_not_null()).first()  # noqa: E731
    per_judge = votes.group_by("record_id", "judge").agg(
        support=pl.col("support").mean(),
        ab=winner("ab"),
        ba=winner("ba"),
    )
    per_judge = per_judge.with_columns(
        flip=pl.when(pl.col("ab").is_not_null() & pl.col("ba").is_not_null()).then((pl.col("ab") != pl.col("ba")).cast(pl.Float64))
    )
    per_record = per_judge.group_by("record_id").agg(
        judges=pl.col("support").is_not_null().sum().cast(pl.Int64),
        mean_support=pl.col("support").mean(),
        order_flip=pl.col("flip").mean(),
    )
    per_record = per_record.with_columns(
        judge_disagreement=pl.when(pl.col("judges") >= 2).then(1.0 - pl.col("mean_support")),
    )
    out = frame.select("record_id").join(per_record, on="record_id", how="left")
    return out.select(
        "record_id",
        pl.col("judges").fill_null(0),
        pl.col("judge_disagreement").cast(pl.Float64),
        pl.col("order_flip").cast(pl.Float64),
    )


def signals(frame: pl.DataFrame, settings: RouteSignals) -> pl.DataFrame:
    """record_id, domain, judges and every signal of SIGNALS for canonical (synthetic) rows, one row per record."""
    gen = pl.col("generation")
    margin = pl.col("chosen_score") - pl.col("rejected_score")
    expected = gen.struct.field("chosen_expected") - gen.struct.field("rejected_expected")
    chosen_len = pl.col("chosen").str.len_chars().cast(pl.Float64)
    rejected_len = pl.col("rejected").str.len_chars().cast(pl.Float64)
    # an empty rejected makes any chosen "infinitely" longer: full length doubt
    ratio = pl.when(rejected_len > 0).then(chosen_len / rejected_len).otherwise(float("inf"))
    first_finish = gen.struct.field("finish_reasons").list.first()
    own = frame.select(
        "record_id",
        "domain",
        _clip(1.0 - margin / settings.margin_scale).alias("small_margin"),
        _clip(1.0 - expected / settings.expected_margin_scale).alias("small_expected_margin"),
        _clip(ratio.log() / math.log(settings.length_ratio_cap)).alias("length_ratio"),
        pl.when(first_finish.is_not_null()).then((first_finish == "length").cast(pl.Float64)).alias("truncated"),
    )
    votes = vote_signals(frame)
    return own.join(votes, on="record_id", how="left", maintain_order="left").select(
        "record_id", "domain", "judges", *[pl.col(name).cast(pl.Float64) for name in SIGNALS]
    )
