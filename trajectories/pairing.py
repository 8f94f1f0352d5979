"""Which runs may be compared, which one wins, and which pairs are kept.

Pairing key: task_id + env_key (all five environment fields, harness_version included) +
the verifier (kind, name, version). Runs of different tasks, environments or verifiers
never pair: their outcomes do not measure the same thing.

Winner: A beats B when both have `resolved` and A resolved while B did not; or, when
their `resolved` agree (or both lack it), when both have a reward and A's is higher.
Anything else is a tie (no pair). A run's outcome value (scores, lineage) is its reward,
else resolved as 1.0/0.0. A run with neither has no outcome.

Runs with no pair say why: no_outcome, single_run (the only run of its task in its
environment with an outcome), tie (another run has the same outcome, none a different
comparable one), incomparable_outcome (the others carry other outcome fields).

Cap: within a pairing group, candidate pairs that passed their mode's checks are taken in
seeded order (pair_keys of the chosen and rejected ids) and the first `max_pairs_per_task`
are kept; the rest are `cut_by_cap`. The order depends only on ids and seed, not on input order.
"""

from __future__ import annotations

import polars as pl

from prefmix.records import env_key_expr
from prefmix.trajectories.seeded import pair_keys


def outcomes(trajectories: pl.DataFrame) -> pl.DataFrame:
    """Per trajectory: group (the pairing key), task_id, env_key, resolved (Int8), reward, value, verifier_kind."""
    outcome = pl.col("outcome")
    verifier = outcome.struct.field("verifier")
    frame = trajectories.select(
        "trajectory_id", "task_id", "task_group",
        env_key_expr(pl.col("env")).alias("env_key"),
        pl.struct(verifier.struct.field("kind"), verifier.struct.field("name"), verifier.struct.field("version")).struct.json_encode().alias("verifier_key"),
        outcome.struct.field("resolved").cast(pl.Int8).alias("resolved"),
        outcome.struct.field("reward").alias("reward"),
        verifier.struct.field("kind").alias("verifier_kind"),
    )
    return frame.with_columns(
        group=pl.concat_str(["task_id", "env_key", "verifier_key"], separator="\x1f"),
        value=pl.coalesce(pl.col("reward"), pl.col("resolved").cast(pl.Float64)),
    )


def candidates(runs: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """All (chosen, rejected) pairs where chosen beats rejected, and the runs that are in none, with a reason.

    runs: outcomes() rows of the trajectories eligible for pairing.
    """
    have = runs.filter(pl.col("value").is_not_null())
    cols = ["trajectory_id", "group", "resolved", "reward", "value"]
    left = have.select(cols)
    right = have.select(cols).rename({c: f"{c}_r" for c in cols if c != "group"})
    both = left.join(right, on="group").filter(pl.col("trajectory_id") != pl.col("trajectory_id_r"))
    r, rr, w, wr = pl.col("resolved"), pl.col("resolved_r"), pl.col("reward"), pl.col("reward_r")
    by_resolved = r.is_not_null() & rr.is_not_null() & (r > rr)
    same_resolved = (r == rr).fill_null(False) | (r.is_null() & rr.is_null())
    by_reward = same_resolved & w.is_not_null() & wr.is_not_null() & (w > wr)
    same = same_resolved & ((w == wr).fill_null(False) | (w.is_null() & wr.is_null()))
    both = both.with_columns(beats=by_resolved | by_reward, same=same)
    pairs = both.filter("beats").sort("group", "trajectory_id", "trajectory_id_r").with_row_index("pair").select(
        "pair", "group",
        pl.col("trajectory_id").alias("chosen_id"),
        pl.col("trajectory_id_r").alias("rejected_id"),
        pl.col("value").alias("chosen_value"),
        pl.col("value_r").alias("rejected_value"),
    )
    in_pair = pl.concat([pairs.select(pl.col("chosen_id").alias("trajectory_id")), pairs.select(pl.col("rejected_id").alias("trajectory_id"))]).unique()
    peers = both.group_by("trajectory_id").agg(pl.col("same").any().alias("has_tie"))
    sizes = have.group_by("group").len("group_size")
    unpaired = (
        runs.join(in_pair, on="trajectory_id", how="anti")
        .join(sizes, on="group", how="left")
        .join(peers, on="trajectory_id", how="left")
        .select(
            "trajectory_id",
            pl.when(pl.col("value").is_null()).then(pl.lit("no_outcome"))
            .when(pl.col("group_size") == 1).then(pl.lit("single_run"))
            .when(pl.col("has_tie")).then(pl.lit("tie"))
            .otherwise(pl.lit("incomparable_outcome"))
            .alias("reason"),
        )
    )
    return pairs, unpaired


def with_order(pairs: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Add order_key (seeded.pair_keys) to each pair."""
    return pairs.with_columns(pair_keys(pairs.get_column("chosen_id"), pairs.get_column("rejected_id"), seed))


def cap(pairs: pl.DataFrame, max_per_group: int) -> pl.DataFrame:
    """Mark (`drop` = cut_by_cap) every pair beyond the first `max_per_group` of its group in seeded order;
    pairs already dropped keep their reason and take no place."""
    live = pl.col("drop").is_null()
    rank = pl.when(live).then(pl.col("order_key").rank("ordinal").over(pl.col("group"), live))
    return pairs.with_columns(
        drop=pl.when(live & (rank > max_per_group)).then(pl.lit("cut_by_cap")).otherwise(pl.col("drop"))
    )


def first_per_key(pairs: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """Mark (`drop` = duplicate_row) live pairs whose `key` an earlier live pair (seeded order) already has."""
    live = pl.col("drop").is_null()
    rank = pl.when(live).then(pl.col("order_key").rank("ordinal").over(*key, live))
    return pairs.with_columns(drop=pl.when(live & (rank > 1)).then(pl.lit("duplicate_row")).otherwise(pl.col("drop")))
