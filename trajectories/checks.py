"""Row-level checks of conversational preference rows, for the gate (validators imports them; nothing here blocks).

- unlinked_tool_messages: a `tool` message whose tool_call_id names no call of an assistant message before it
  in the same conversation (context + chosen_messages, and context + rejected_messages);
- tool_output_in_completion: a step_pair row whose chosen or rejected messages hold a `tool` message (the cut
  at the divergence step must keep tool output out of the completion).
Each returns one row per offending record (record_id, side, and what is wrong), empty when all is well.
"""

from __future__ import annotations

import polars as pl

SIDES = ("chosen_messages", "rejected_messages")


def unlinked_tool_messages(rows: pl.DataFrame) -> pl.DataFrame:
    """record_id, side, message (0-based position in context + side), tool_call_id of the first unlinked result."""
    found = []
    for side in SIDES:
        talk = rows.select("record_id", pl.concat_list(pl.col("context").fill_null([]), pl.col(side).fill_null([])).alias("m"))
        talk = talk.with_columns(at=pl.int_ranges(pl.col("m").list.len())).explode("m", "at").unnest("m")
        calls = (
            talk.filter(pl.col("tool_calls").list.len() > 0)
            .select("record_id", pl.col("at").alias("call_at"), "tool_calls")
            .explode("tool_calls")
            .select("record_id", "call_at", pl.col("tool_calls").struct.field("id").alias("tool_call_id"))
        )
        results = talk.filter(pl.col("role") == "tool").select("record_id", "at", "tool_call_id")
        linked = results.join(calls, on=["record_id", "tool_call_id"], how="inner").filter(pl.col("call_at") < pl.col("at"))
        bad = results.join(linked.select("record_id", "at").unique(), on=["record_id", "at"], how="anti")
        found.append(bad.sort("record_id", "at").group_by("record_id", maintain_order=True).first().select(
            "record_id", pl.lit(side).alias("side"), pl.col("at").cast(pl.Int64).alias("message"), "tool_call_id"
        ))
    return pl.concat(found)


def tool_output_in_completion(rows: pl.DataFrame) -> pl.DataFrame:
    """record_id, side of step_pair rows whose completion holds a tool message."""
    steps = rows.filter(pl.col("kind") == "step_pair")
    found = [
        steps.filter(pl.col(side).list.eval(pl.element().struct.field("role") == "tool").list.any().fill_null(False))
        .select("record_id", pl.lit(side).alias("side"))
        for side in SIDES
    ]
    return pl.concat(found)
