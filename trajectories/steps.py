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

from prefmix.trajectories.render import MESSAGE_DTYPE, ROLES, normalized

_MASK40 = (1 << 40) - 1
_CALLS_DTYPE = MESSAGE_DTYPE.to_schema()["tool_calls"]  # type: ignore[attr-defined]


def _calls_key(calls: pl.Expr) -> pl.Expr:
    one = pl.concat_str([pl.element().struct.field("name").fill_null(""), pl.lit("\x1e"), normalized(pl.element().struct.field("arguments"))])
    return calls.list.eval(one).list.join("\x1d").fill_null("")


def _results_key(observations: pl.Expr) -> pl.Expr:
    return observations.list.eval(normalized(pl.element().struct.field("content"))).list.join("\x1d").fill_null("")


def step_table(trajectories: pl.DataFrame) -> pl.DataFrame:
    """One row per step: trajectory_id, pos (0-based), n_steps, source, is_agent, messages (the step as chat
    messages: its own message, then one `tool` message per result), action (its own message alone), key,
    action_key, prefix, prefix_before (the fingerprint of steps 0..pos-1; 0 for the first step)."""
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
    action_text = pl.concat_str([normalized(pl.col("content")), pl.lit("\x1f"), _calls_key(pl.col("tool_calls"))])
    long = long.with_columns(
        action=action,
        results=pl.col("observations").list.eval(tool),
        is_agent=pl.col("source") == "agent",
        action_key=action_text.hash(1),
        key=pl.concat_str([pl.col("source"), pl.lit("\x1f"), action_text, pl.lit("\x1f"), _results_key(pl.col("observations"))]).hash(2),
    )
    salted = (pl.struct("key", "pos").hash(3) & _MASK40).cast(pl.UInt64)
    long = long.with_columns(salted=salted).with_columns(prefix=pl.col("salted").cum_sum().over("trajectory_id"))
    return long.select(
        "trajectory_id", "pos", "n_steps", "idx", "source", "is_agent",
        pl.concat_list(pl.col("action"), pl.col("results")).alias("messages"),
        "action", "key", "action_key", "prefix", (pl.col("prefix") - pl.col("salted")).alias("prefix_before"),
        pl.col("observations").list.len().alias("n_results"),
    )


def message_table(steps: pl.DataFrame) -> pl.DataFrame:
    """One row per message: trajectory_id, pos (its step), mpos (0 = the step's own message), message."""
    long = steps.select("trajectory_id", "pos", "messages").with_columns(mpos=pl.int_ranges(pl.col("messages").list.len(), dtype=pl.Int32))
    return long.explode("messages", "mpos").rename({"messages": "message"})


def spans(steps: pl.DataFrame) -> pl.DataFrame:
    """Per trajectory: n_steps, first_agent / last_agent (pos of its first and last agent step; null without one)."""
    agent_pos = pl.when(pl.col("is_agent")).then(pl.col("pos"))
    return steps.group_by("trajectory_id").agg(
        pl.col("n_steps").first(), first_agent=agent_pos.min(), last_agent=agent_pos.max()
    )
