"""Turn validated shards into canonical human pairs plus counted rejections.

Judgments (one row per annotator per item):
  1. Review passes: for each (item, annotator) only the latest pass counts (the
     highest `review_pass`; within one pass the last row in the file). A later
     pass is the annotator's corrected answer, so earlier ones are superseded.
  2. Calibration: each annotator's accuracy on gold items (their latest answer
     vs `gold_answer`). Annotators with at least one gold item and accuracy
     below `min_gold_accuracy` are excluded before any vote is counted.
     Annotators who saw no gold item are kept (and reported as uncalibrated).
  3. Gold items are calibration material: they never become pairs (reason
     `gold_item`).
  4. An adjudicated label (from the latest pass that carries one) overrides the
     vote and the thresholds; an adjudicated `tie` gives no pair.
  5. Otherwise plurality over {a, b, tie} of counted annotators: a draw for the
     top label or `tie` on top -> `tie`; fewer than `min_annotators` ->
     `too_few_annotators`; top share < `min_agreement` -> `low_agreement`.
Scores are vote shares of chosen and rejected among counted annotators; the
annotation's `review_passes` is the number of distinct passes seen on the item.

Rankings: each row is one item with one or more full rankings. Responses are
ordered by mean position (computed as the exact integer position sum). `best_worst` pairs the unique best against the
unique worst; `all` pairs every (i, j) with i ahead of j on mean position,
largest gap first, at most `max_pairs_per_ranking` per item. Agreement of a pair
is the share of rankings that put its chosen ahead of its rejected.
Accounting: items in == items with >= 1 pair + items rejected; pairs cut by the
cap or by agreement are counted separately (they are not items).

Pairs: one row is one pair. Thresholds apply only where the shard carries the
information (annotator ids -> min_annotators, agreement -> min_agreement).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from prefmix.annotations.readers import ROW, Shard
from prefmix.config import Aggregation, Limits
from prefmix.records import conform, empty, with_record_id

REJECTION_SCHEMA = {"origin_uri": pl.String, "origin_row": pl.Int64, "item_id": pl.String, "reason": pl.String}
# Judgments shards prefmix's routing wrote (prefmix.routing.label_studio) carry these; their pairs get `route` lineage.
ROUTE_COLUMNS = ("task_id", "queue_id", "route_reason", "route_score", "lead_time_s")


@dataclass
class Aggregated:
    """Output of one shard: records (canonical), rejections, and layout-specific detail for stats."""

    records: pl.DataFrame
    rejections: pl.DataFrame
    items_in: int
    votes: pl.DataFrame | None = None  # judgments: counted latest-pass votes (item_id, annotator_id, preference, domain)
    all_votes: pl.DataFrame | None = None  # judgments: latest-pass votes of every annotator
    gold: pl.DataFrame | None = None  # judgments: per-annotator gold accuracy
    extra: dict[str, Any] = field(default_factory=dict)


def _norm(expr: pl.Expr) -> pl.Expr:
    """Whitespace-normalized text, the vectorised twin of records.normalize_text for equality checks."""
    return expr.str.strip_chars().str.replace_all(r"\s+", " ")


def _records(frame: pl.DataFrame, shard: Shard) -> pl.DataFrame:
    """Finish canonical records from prompt/chosen/rejected/domain/scores/origin_row/annotation."""
    if frame.height == 0:
        return empty()
    frame = frame.with_columns(
        source=pl.lit("human"),
        origin_uri=pl.lit(shard.path),
        origin_sha256=pl.lit(shard.sha256),
    )
    return conform(with_record_id(frame))


def _annotation(vendor: str, ids: pl.Expr, count: pl.Expr, agreement: pl.Expr, passes: pl.Expr, adjudicated: pl.Expr) -> pl.Expr:
    return pl.struct(
        pl.lit(vendor).alias("vendor"),
        ids.cast(pl.List(pl.String)).alias("annotator_ids"),
        count.cast(pl.Int32).alias("annotator_count"),
        agreement.cast(pl.Float64).alias("agreement"),
        passes.cast(pl.Int32).alias("review_passes"),
        adjudicated.cast(pl.Boolean).alias("adjudicated"),
    ).alias("annotation")


def _route() -> pl.Expr:
    """Why a routed pair went to people and what its label cost in time (mean lead time of the counted votes)."""
    return pl.struct(
        pl.lit("human_vendor").alias("label_source"),
        pl.col("queue_id").cast(pl.String),
        pl.col("task_id").cast(pl.String),
        pl.col("route_reason").cast(pl.String).alias("reason"),
        pl.col("route_score").cast(pl.Float64).alias("score"),
        pl.col("lead_time_s").cast(pl.Float64),
    ).alias("route")


def _rejections(frame: pl.DataFrame, shard: Shard) -> pl.DataFrame:
    return frame.select(
        pl.lit(shard.path).alias("origin_uri"),
        pl.col(ROW).cast(pl.Int64).alias("origin_row"),
        pl.col("item_id").cast(pl.String),
        pl.col("reason").cast(pl.String),
    )


def aggregate(shard: Shard, policy: Aggregation, limits: Limits | None = None) -> Aggregated:
    """Dispatch on the shard layout. Items with a text over `limits` are rejected first (prompt_too_long,
    response_too_long) and never reach aggregation (their votes do not count either)."""
    kept, over = split_over_limit(shard, limits or Limits())
    if shard.layout == "judgments":
        result = aggregate_judgments(kept, policy)
    elif shard.layout == "rankings":
        result = aggregate_rankings(kept, policy)
    else:
        result = aggregate_pairs(kept, policy)
    if over.height:
        result.rejections = pl.concat([result.rejections, over]).sort("origin_row")
        result.items_in += over.height
    return result


def split_over_limit(shard: Shard, limits: Limits) -> tuple[Shard, pl.DataFrame]:
    """(the shard without over-long items, one rejection per such item). An item is a row, or all rows of
    one item_id in the judgments layout; the prompt is checked before the responses."""
    frame = shard.frame
    responses = {"pairs": ("chosen", "rejected"), "judgments": ("response_a", "response_b")}.get(shard.layout, ())
    # Byte length is O(1) from the Arrow offsets and never below the character count: only rows over the
    # limit in bytes are measured in characters.
    def over(column: pl.Expr, limit: int) -> pl.Expr:
        return (column.str.len_bytes() > limit) & (column.str.len_chars() > limit)

    long_prompt = over(pl.col("prompt"), limits.max_prompt_chars)
    if shard.layout == "rankings":
        long_response = pl.col("responses").list.eval(over(pl.element(), limits.max_response_chars)).list.any()
    else:
        long_response = pl.any_horizontal([over(pl.col(c), limits.max_response_chars) for c in responses])
    reason = pl.when(long_prompt.fill_null(False)).then(pl.lit("prompt_too_long")).when(
        long_response.fill_null(False)).then(pl.lit("response_too_long"))
    flagged = frame.select(ROW, *(["item_id"] if "item_id" in frame.columns else []), reason=reason).filter(
        pl.col("reason").is_not_null())
    if flagged.height == 0:
        return shard, empty_rejections()
    if "item_id" not in flagged.columns:
        flagged = flagged.with_columns(item_id=pl.col(ROW).cast(pl.String))
    if shard.layout == "judgments":  # the whole item goes, under the reason of its first over-long row
        items = flagged.sort(ROW).group_by("item_id", maintain_order=True).agg(pl.col("reason").first())
        first = frame.group_by("item_id").agg(pl.col(ROW).min())
        flagged = items.join(first, on="item_id")
        rest = frame.filter(~pl.col("item_id").is_in(items["item_id"].implode()))
    else:
        rest = frame.filter(~pl.col(ROW).is_in(flagged[ROW].implode()))
    rejected = flagged.select(
        pl.lit(shard.path).alias("origin_uri"), pl.col(ROW).cast(pl.Int64), pl.col("item_id").cast(pl.String),
        pl.col("reason").cast(pl.String),
    ).sort(ROW)
    return replace(shard, frame=rest), rejected


# -- judgments -----------------------------------------------------------------------


def latest_votes(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per (item, annotator): the highest review pass, the last row within a pass (file order kept)."""
    # one integer key orders (pass, row); a window max beats sort + unique by ~3x on 300k rows
    key = pl.col("review_pass").cast(pl.Int64) * (frame.height + 1) + pl.col(ROW)
    return frame.filter(key == key.max().over(["item_id", "annotator_id"]))


def gold_accuracy(votes: pl.DataFrame, min_gold_accuracy: float) -> pl.DataFrame:
    """Per annotator: gold items seen, correct, accuracy (null without gold), excluded flag."""
    per = votes.group_by("annotator_id").agg(
        n_gold=pl.col("is_gold").sum().cast(pl.Int64),
        correct=(pl.col("is_gold") & (pl.col("preference") == pl.col("gold_answer"))).sum().cast(pl.Int64),
        judgments=pl.len().cast(pl.Int64),
    )
    per = per.with_columns(accuracy=pl.when(pl.col("n_gold") > 0).then(pl.col("correct") / pl.col("n_gold")))
    return per.with_columns(excluded=pl.col("accuracy").fill_null(1.0) < min_gold_accuracy).sort("annotator_id")


def aggregate_judgments(shard: Shard, policy: Aggregation) -> Aggregated:
    frame = shard.frame
    all_votes = latest_votes(frame)
    gold = gold_accuracy(all_votes, policy.min_gold_accuracy)
    excluded = gold.filter(pl.col("excluded")).get_column("annotator_id")
    votes = all_votes.filter(~pl.col("annotator_id").is_in(excluded.implode()))

    routed = all(name in frame.columns for name in ROUTE_COLUMNS)
    items = frame.group_by("item_id").agg(
        pl.col(ROW).min(),
        pl.col("prompt", "response_a", "response_b", "domain").sort_by(ROW).first(),
        pl.col("is_gold").any(),
        pl.col("review_pass").n_unique().alias("passes"),
        pl.col("adjudicated_label").sort_by(["review_pass", ROW]).drop_nulls().last().alias("adjudicated_label"),
        *([pl.col("task_id", "queue_id", "route_reason", "route_score").sort_by(ROW).first()] if routed else []),
    )
    counts = votes.group_by("item_id").agg(
        n=pl.len(),
        a=(pl.col("preference") == "a").sum(),
        b=(pl.col("preference") == "b").sum(),
        tie=(pl.col("preference") == "tie").sum(),
        annotator_ids=pl.col("annotator_id").unique().sort(),
        *([pl.col("lead_time_s").cast(pl.Float64).mean().alias("lead_time_s")] if routed else []),
    )
    items = items.join(counts, on="item_id", how="left").with_columns(
        pl.col("n", "a", "b", "tie").fill_null(0).cast(pl.Int64),
        pl.col("annotator_ids").fill_null(pl.lit([], dtype=pl.List(pl.String))),
    )
    top = pl.max_horizontal("a", "b", "tie")
    draws = (pl.col("a") == top).cast(pl.Int8) + (pl.col("b") == top).cast(pl.Int8) + (pl.col("tie") == top).cast(pl.Int8)
    vote = pl.when(draws > 1).then(pl.lit("tie")).when(pl.col("a") == top).then(pl.lit("a")).when(pl.col("b") == top).then(pl.lit("b")).otherwise(pl.lit("tie"))
    items = items.with_columns(vote=vote, top=top)
    adjudicated = pl.col("adjudicated_label").is_not_null()
    reason = (
        pl.when(pl.col("is_gold")).then(pl.lit("gold_item"))
        .when(_norm(pl.col("response_a")) == _norm(pl.col("response_b"))).then(pl.lit("identical_responses"))
        .when(adjudicated & (pl.col("adjudicated_label") == "tie")).then(pl.lit("adjudicated_tie"))
        .when(adjudicated).then(pl.lit(None, dtype=pl.String))
        .when(pl.col("n") == 0).then(pl.lit("no_counted_annotators"))
        .when(pl.col("n") < policy.min_annotators).then(pl.lit("too_few_annotators"))
        .when(pl.col("vote") == "tie").then(pl.lit("tie"))
        .when(pl.col("top") / pl.col("n") < policy.min_agreement).then(pl.lit("low_agreement"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    items = items.with_columns(reason=reason, label=pl.coalesce("adjudicated_label", "vote")).sort(ROW)
    kept = items.filter(pl.col("reason").is_null())
    a_wins = pl.col("label") == "a"
    share = lambda votes_for: pl.when(pl.col("n") > 0).then(votes_for / pl.col("n"))  # noqa: E731
    chosen_votes = pl.when(a_wins).then(pl.col("a")).otherwise(pl.col("b"))
    rejected_votes = pl.when(a_wins).then(pl.col("b")).otherwise(pl.col("a"))
    pairs = kept.select(
        pl.col("prompt"),
        pl.when(a_wins).then(pl.col("response_a")).otherwise(pl.col("response_b")).alias("chosen"),
        pl.when(a_wins).then(pl.col("response_b")).otherwise(pl.col("response_a")).alias("rejected"),
        pl.col("domain"),
        share(chosen_votes).alias("chosen_score"),
        share(rejected_votes).alias("rejected_score"),
        pl.col(ROW).alias("origin_row"),
        _annotation(shard.vendor, pl.col("annotator_ids"), pl.col("n"), share(chosen_votes), pl.col("passes"), adjudicated),
        *([_route()] if routed else []),
    )
    return Aggregated(
        records=_records(pairs, shard),
        rejections=_rejections(items.filter(pl.col("reason").is_not_null()), shard),
        items_in=items.height,
        votes=votes.select("item_id", "annotator_id", "preference", "domain", "is_gold", "review_pass"),
        all_votes=all_votes.select("item_id", "annotator_id", "preference", "domain", "is_gold", "review_pass"),
        gold=gold,
        extra={"adjudicated_pairs": int(kept.select(pl.col("adjudicated_label").is_not_null().sum()).item())},
    )


# -- rankings ------------------------------------------------------------------------


def ranking_positions(frame: pl.DataFrame) -> pl.DataFrame:
    """Long table (origin_row, k, response, pos): ranking k of a row puts `response` at `pos` (0 = best)."""
    long = frame.select(ROW, pl.col("rankings")).with_columns(k=pl.int_ranges(pl.col("rankings").list.len()))
    long = long.explode(["rankings", "k"])
    long = long.with_columns(pos=pl.int_ranges(pl.col("rankings").list.len())).explode(["rankings", "pos"])
    return long.rename({"rankings": "response"}).with_columns(pl.col("response").cast(pl.Int64), pl.col("pos").cast(pl.Int64))


def aggregate_rankings(shard: Shard, policy: Aggregation) -> Aggregated:
    frame = shard.frame
    if "item_id" not in frame.columns:
        frame = frame.with_columns(item_id=pl.col(ROW).cast(pl.String))
    m = frame.select(ROW, "item_id", m=pl.col("rankings").list.len())
    pos = ranking_positions(frame)
    # every ranking orders every response of its row, so the position sum orders like the mean, in exact integers
    mean = pos.group_by(ROW, "response").agg(mean=pl.col("pos").sum())
    # every ordered pair (i ahead of j on mean position) with its vote count
    left = pos.rename({"response": "i", "pos": "pos_i"})
    right = pos.rename({"response": "j", "pos": "pos_j"})
    wins = (
        left.join(right, on=[ROW, "k"])
        .filter(pl.col("i") != pl.col("j"))
        .group_by(ROW, "i", "j")
        .agg(wins=(pl.col("pos_i") < pl.col("pos_j")).sum().cast(pl.Int64))
    )
    cand = (
        wins.join(mean.rename({"response": "i", "mean": "mean_i"}), on=[ROW, "i"])
        .join(mean.rename({"response": "j", "mean": "mean_j"}), on=[ROW, "j"])
        .filter(pl.col("mean_i") < pl.col("mean_j"))
        .join(m, on=ROW)
        .with_columns(gap=pl.col("mean_j") - pl.col("mean_i"), agreement=pl.col("wins") / pl.col("m"))
    )
    if policy.ranking_pairs == "best_worst":
        # the unique best (lowest mean) against the unique worst (highest mean); shared extremes -> tie
        extremes = mean.group_by(ROW).agg(
            lo=pl.col("mean").min(), hi=pl.col("mean").max(),
            n_lo=(pl.col("mean") == pl.col("mean").min()).sum(), n_hi=(pl.col("mean") == pl.col("mean").max()).sum(),
        )
        cand = cand.join(extremes, on=ROW).filter(
            (pl.col("mean_i") == pl.col("lo")) & (pl.col("mean_j") == pl.col("hi")) & (pl.col("n_lo") == 1) & (pl.col("n_hi") == 1)
        ).drop("lo", "hi", "n_lo", "n_hi")
    texts = frame.select(ROW, "prompt", "domain", "responses", *[c for c in ("annotator_ids", "review_passes") if c in frame.columns])
    cand = cand.join(texts, on=ROW).with_columns(
        chosen=pl.col("responses").list.get(pl.col("i")), rejected=pl.col("responses").list.get(pl.col("j"))
    )
    identical = _norm(pl.col("chosen")) == _norm(pl.col("rejected"))
    ok_count = pl.col("m") >= policy.min_annotators
    cand = cand.with_columns(
        drop=pl.when(identical).then(pl.lit("identical_responses"))
        .when(~ok_count).then(pl.lit("too_few_annotators"))
        .when(pl.col("agreement") < policy.min_agreement).then(pl.lit("low_agreement"))
    )
    good = cand.filter(pl.col("drop").is_null()).sort([ROW, "gap", "i", "j"], descending=[False, True, False, False])
    good = good.with_columns(rank=pl.int_range(pl.len()).over(ROW))
    capped = good.filter(pl.col("rank") >= policy.max_pairs_per_ranking).height
    good = good.filter(pl.col("rank") < policy.max_pairs_per_ranking)

    # an item without pairs gets the reason of its best candidate, or `tie` when no response is ahead of another
    first_drop = cand.sort([ROW, "gap"], descending=[False, True]).group_by(ROW).agg(pl.col("drop").first())
    rejected_items = (
        m.join(good.select(ROW).unique(), on=ROW, how="anti")
        .join(first_drop, on=ROW, how="left")
        .with_columns(reason=pl.col("drop").fill_null(pl.lit("tie")))
        .sort(ROW)
    )
    ids = pl.col("annotator_ids") if "annotator_ids" in good.columns else pl.lit([], dtype=pl.List(pl.String))
    passes = pl.col("review_passes") if "review_passes" in good.columns else pl.lit(None, dtype=pl.Int32)
    pairs = good.select(
        "prompt", "chosen", "rejected", "domain",
        pl.col("agreement").alias("chosen_score"),
        (1.0 - pl.col("agreement")).alias("rejected_score"),
        pl.col(ROW).alias("origin_row"),
        _annotation(shard.vendor, ids, pl.col("m"), pl.col("agreement"), passes, pl.lit(False)),
    )
    dropped = cand.filter(pl.col("drop").is_not_null()).group_by("drop").len().sort("drop")
    return Aggregated(
        records=_records(pairs, shard),
        rejections=_rejections(rejected_items, shard),
        items_in=frame.height,
        extra={
            "rankings": int(m.get_column("m").sum()),
            "pairs_cut_by_cap": capped,
            "candidate_pairs_dropped": dict(zip(dropped.get_column("drop").to_list(), dropped.get_column("len").to_list())),
            "items_with_pairs": int(good.get_column(ROW).n_unique()) if good.height else 0,
        },
    )


# -- pairs ---------------------------------------------------------------------------


def aggregate_pairs(shard: Shard, policy: Aggregation) -> Aggregated:
    frame = shard.frame
    cols = frame.columns
    if "item_id" not in cols:
        frame = frame.with_columns(item_id=pl.col(ROW).cast(pl.String))
    if "annotator_ids" in cols:
        ids = pl.col("annotator_ids")
        if "annotator_id" in cols:
            ids = pl.when(ids.is_null()).then(pl.concat_list(pl.col("annotator_id"))).otherwise(ids)
    elif "annotator_id" in cols:
        ids = pl.when(pl.col("annotator_id").is_null()).then(pl.lit([], dtype=pl.List(pl.String))).otherwise(pl.concat_list(pl.col("annotator_id")))
    else:
        ids = pl.lit([], dtype=pl.List(pl.String))
    frame = frame.with_columns(ids.fill_null(pl.lit([], dtype=pl.List(pl.String))).alias("_ids"))
    count = pl.when(pl.col("_ids").list.len() > 0).then(pl.col("_ids").list.len())
    agreement = pl.col("agreement") if "agreement" in cols else pl.lit(None, dtype=pl.Float64)
    frame = frame.with_columns(
        reason=pl.when(_norm(pl.col("chosen")) == _norm(pl.col("rejected"))).then(pl.lit("identical_responses"))
        .when(count < policy.min_annotators).then(pl.lit("too_few_annotators"))
        .when(agreement < policy.min_agreement).then(pl.lit("low_agreement"))
    )
    kept = frame.filter(pl.col("reason").is_null())
    optional = lambda name, dtype: pl.col(name) if name in cols else pl.lit(None, dtype=dtype)  # noqa: E731
    pairs = kept.select(
        "prompt", "chosen", "rejected", "domain",
        optional("chosen_score", pl.Float64).alias("chosen_score"),
        optional("rejected_score", pl.Float64).alias("rejected_score"),
        pl.col(ROW).alias("origin_row"),
        _annotation(
            shard.vendor, pl.col("_ids"), count, agreement,
            optional("review_passes", pl.Int64), optional("adjudicated", pl.Boolean).fill_null(False),
        ),
    )
    return Aggregated(
        records=_records(pairs, shard),
        rejections=_rejections(frame.filter(pl.col("reason").is_not_null()), shard),
        items_in=frame.height,
    )


def empty_rejections() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECTION_SCHEMA)
