"""KTO rows (TRL's unpaired layout): one run's completion and label = resolved.

The prompt and completion are cut as for a trajectory pair (pairs.side_messages): the steps before
the first agent step, then first..last agent step without the last one's results. A run without an
agent step is no_agent_turn; one without `resolved` is no_outcome (a reward alone gives no label);
a row equal to an earlier one (same prompt, completion and label; trajectory id order) is duplicate_row.
source: `human` when a human verifier gave the outcome, else `synthetic`.
"""

from __future__ import annotations

import polars as pl

from prefmix.records import conform_kto, record_ids
from prefmix.trajectories.config import Rules
from prefmix.trajectories.pairing import outcomes
from prefmix.trajectories.pairs import side_messages
from prefmix.trajectories.render import render
from prefmix.trajectories.steps import spans, step_table


def kto_rows(trajectories: pl.DataFrame, rules: Rules) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    """(KTO rows, rejected runs with reasons, counts)."""
    steps = step_table(trajectories)
    span = spans(steps)
    runs = outcomes(trajectories).join(span, on="trajectory_id", how="left")
    reason = pl.when(pl.col("first_agent").is_null()).then(pl.lit("no_agent_turn")).when(pl.col("resolved").is_null()).then(pl.lit("no_outcome"))
    runs = runs.with_columns(reason=reason)
    eligible = runs.filter(pl.col("reason").is_null())
    sides = side_messages(steps, span, eligible.select("trajectory_id"))
    meta = trajectories.select("trajectory_id", "task_group", "tools", "origin_uri", "origin_sha256", "origin_row")
    frame = eligible.join(sides, on="trajectory_id").join(meta, on="trajectory_id", suffix="_meta").sort("trajectory_id").select(
        "trajectory_id", "task_id", "env_key",
        pl.col("task_group"),
        render(pl.col("context")).alias("prompt"),
        render(pl.col("completion")).alias("completion"),
        (pl.col("resolved") == 1).alias("label"),
        pl.col("context"),
        pl.col("completion").alias("completion_messages"),
        "tools",
        pl.lit(rules.domain).alias("domain"),
        pl.when(pl.col("verifier_kind") == "human").then(pl.lit("human")).otherwise(pl.lit("synthetic")).alias("source"),
        pl.col("value").alias("score"),
        "origin_uri", "origin_sha256", "origin_row",
    )
    labels_text = pl.Series(["true" if v else "false" for v in frame.get_column("label").to_list()])
    frame = frame.with_columns(
        pl.Series("record_id", record_ids(frame.get_column("prompt").to_list(), frame.get_column("completion").to_list(), labels_text.to_list()), dtype=pl.String)
    )
    duplicate = pl.int_range(pl.len()).over("record_id") > 0
    rejected = pl.concat([
        runs.filter(pl.col("reason").is_not_null()).select("trajectory_id", "reason"),
        frame.filter(duplicate).select("trajectory_id", pl.lit("duplicate_row").alias("reason")),
    ])
    frame = frame.filter(~duplicate)
    counts = {"positive": int(frame.get_column("label").sum()), "negative": int((~frame.get_column("label")).sum())}
    return conform_kto(frame), rejected, counts
