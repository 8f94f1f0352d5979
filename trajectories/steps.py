"""Trajectories in long form: one row per step (with comparison keys) and one row per message.

Two steps are "the same" when their normalized content is: the source, the text
(NFC, whitespace collapsed), each call's name and arguments text, and each result's
text, in order. Call ids, reasoning and the `truncated` flag are not compared (ids
differ between runs of one harness; reasoning is not part of any derived message).
Arguments are compared as text, so equal JSON written differently counts as different.

`key` covers the whole step (action and results), `action_key` only what the agent
wrote (text and calls). `prefix` fingerprints steps 0..pos inclusive: a wrapping-free
sum of position-salted 40-bit step hashes, so equal prefixes of two runs give equal
values (and unequal ones differ but with chance ~2^-40). These hashes are Polars'
and live only within one run of the derivation; nothing persisted depends on them.
"""

from __future__ import annotations

import polars as pl

from prefmix.trajectories.render import MESSAGE_DTYPE, ROLES, normalized_series

_MASK40 = (1 << 40) - 1
_CALLS_DTYPE = MESSAGE_DTYPE.to_schema()["tool_calls"]  # type: ignore[attr-defined]


# Separators carry spaces, so one whitespace pass over the joined text trims every part as normalize_text would.
_SEP, _ITEM, _FIELD = " \x1f ", " \x1d ", " \x1e "


def _calls_text(calls: pl.Expr) -> pl.Expr:
    one = pl.concat_str([pl.element().struct.field("name").fill_null(""), pl.lit(_FIELD), pl.element().struct.field("arguments").fill_null("")])
    return calls.list.eval(one).list.join(_ITEM).fill_null("")


def _results_text(observations: pl.Expr) -> pl.Expr:
    return observations.list.eval(pl.element().struct.field("content").fill_null("")).list.join(_ITEM).fill_null("")


def step_table(trajectories: pl.DataFrame) -> pl.DataFrame:
    """One row per step: trajectory_id, pos (0-based), n_steps, idx, source, is_agent, action (the step's own
    chat message), results (its `tool` messages), n_results, key, action_key, prefix, prefix_before (the
    fingerprint of steps 0..pos-1; 0 for the first step)."""
    long = trajectories.select("trajectory_id", "steps").with_columns(
        pos=pl.int_ranges(pl.col("steps").list.len(), dtype=pl.Int32), n_steps=pl.col("steps").list.len().cast(pl.Int32)
    )
    long = long.explode("steps", "pos").unnest("steps")
    calls = pl.when(pl.col("tool_calls").list.len() > 0).then(pl.col("tool_calls"))
    action = pl.struct(
        pl.col("source").replace_strict(ROLES, return_dtype=pl.String).alias("role"),
        pl.col("content"),
        calls.cast(_CALLS_DTYPE).alias("tool_calls"),
        pl.lit(None, dtype=pl.String).alias("tool_call_id"),
    )
    tool = pl.struct(
        pl.lit("tool").alias("role"),
        pl.element().struct.field("content"),
        pl.lit(None, dtype=_CALLS_DTYPE).alias("tool_calls"),
        pl.element().struct.field("tool_call_id"),
    )
    long = long.with_columns(
        action=action,
        results=pl.col("observations").list.eval(tool),
        is_agent=pl.col("source") == "agent",
        _action=pl.concat_str([pl.col("content").fill_null(""), pl.lit(_SEP), _calls_text(pl.col("tool_calls"))]),
        _results=_results_text(pl.col("observations")),
    )
    long = long.with_columns(normalized_series(long.get_column("_action")), normalized_series(long.get_column("_results")))
    long = long.with_columns(
        action_key=pl.col("_action").hash(1),
        key=pl.concat_str([pl.col("source"), pl.lit(_SEP), pl.col("_action"), pl.lit(_SEP), pl.col("_results")]).hash(2),
    )
    salted = (pl.struct("key", "pos").hash(3) & _MASK40).cast(pl.UInt64)
    long = long.with_columns(salted=salted).with_columns(prefix=pl.col("salted").cum_sum().over("trajectory_id"))
    return long.select(
        "trajectory_id", "pos", "n_steps", "idx", "source", "is_agent", "action", "results",
        pl.col("observations").list.len().alias("n_results"),
        "key", "action_key", "prefix", (pl.col("prefix") - pl.col("salted")).alias("prefix_before"),
    )


def message_table(steps: pl.DataFrame, results: pl.Expr | bool = True) -> pl.DataFrame:
    """One row per message of `steps`: trajectory_id, pos (its step), mpos (0 = the step's own message, 1.. its
    results), message. `results` (an expression over the step rows, or a constant) says whose results to keep."""
    own = steps.select("trajectory_id", "pos", pl.lit(0, dtype=pl.Int32).alias("mpos"), pl.col("action").alias("message"))
    keep = steps.filter(results) if isinstance(results, pl.Expr) else (steps if results else steps.head(0))
    tool = (
        keep.select("trajectory_id", "pos", "results")
        .with_columns(mpos=pl.int_ranges(1, pl.col("results").list.len() + 1, dtype=pl.Int32))
        .explode("results", "mpos")
        .rename({"results": "message"})
        .select("trajectory_id", "pos", "mpos", "message")
    )
    return pl.concat([own, tool])


def spans(steps: pl.DataFrame) -> pl.DataFrame:
    """Per trajectory: n_steps, first_agent / last_agent (pos of its first and last agent step; null without one)."""
    agent_pos = pl.when(pl.col("is_agent")).then(pl.col("pos"))
    return steps.group_by("trajectory_id").agg(
        pl.col("n_steps").first(), first_agent=agent_pos.min(), last_agent=agent_pos.max()
    )
