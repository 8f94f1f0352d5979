"""Checks every reader runs on its normalized trajectories; the first problem is one InputError line.

    FILE: trajectory T: step K: what is wrong, expected ...

T is the trajectory's id, or `row N` (its 0-based index in the file) when the
file gives none. Checks are Polars expressions over exploded steps, calls and
observations; only the first offending row is turned into text.

Rules:
- a trajectory has a task id and at least one step; steps are numbered 1..n in order;
- a step's source is system, user or agent; only agent steps call tools;
- every call has an id and a function name; call ids are unique within a trajectory;
- every observation names a call OF THE SAME STEP (the step that made the call
  holds its results, as in ATIF; an OpenAI-style `tool` message belongs to the
  assistant message before it). A result that turns up in a later step is
  refused rather than moved: a step pair cuts between steps, and a result
  outside its step would leak a tool output across the cut. A call answers at
  most once; a call without a result is allowed (the run ended, or it was `submit`);
- an outcome's verifier kind is test, llm_judge or human; a reward is a finite number.
"""

from __future__ import annotations

from typing import Any, Callable, NoReturn

import polars as pl

from prefmix.errors import InputError
from prefmix.records import STEP_SOURCES, VERIFIER_KINDS


def label_expr() -> pl.Expr:
    """How a trajectory is named in messages: its id, else `row N`."""
    return pl.coalesce(pl.col("trajectory_id"), pl.format("row {}", pl.col("origin_row"))).alias("t")


def where(path: str, trajectory: str, step: int | None = None) -> str:
    return f"{path}: trajectory {trajectory}" + (f": step {step}" if step is not None else "")


def fail(path: str, trajectory: str, step: int | None, what: str) -> NoReturn:
    raise InputError(f"{where(path, trajectory, step)}: {what}")


def _first(frame: pl.DataFrame, bad: pl.Expr, path: str, names: dict[int, str], say: Callable[[dict[str, Any]], str]) -> None:
    """Raise for the first row (file order, then step, then item) where `bad` holds; `names`: origin_row -> label."""
    hits = frame.filter(bad.fill_null(False))
    if hits.height == 0:
        return
    order = [c for c in ("origin_row", "pos", "cpos") if c in hits.columns]
    row = hits.sort(order).row(0, named=True)
    fail(path, names[row["origin_row"]], row.get("step"), say(row))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def steps_long(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per step: origin_row, pos (0-based), step (its idx), source, tool_calls, observations."""
    long = frame.select("origin_row", "steps").with_columns(pos=pl.int_ranges(pl.col("steps").list.len()))
    long = long.explode("steps", "pos").unnest("steps")
    return long.select("origin_row", "pos", pl.col("idx").alias("step"), "idx", "source", "tool_calls", "observations")


def _per_item(steps: pl.DataFrame, column: str) -> pl.DataFrame:
    """One row per element of a step's list `column` (tool calls, observations), cpos its 0-based place there."""
    return (
        steps.select("origin_row", "pos", "step", column)
        .with_columns(cpos=pl.int_ranges(pl.col(column).list.len()))
        .explode(column, "cpos")
        .unnest(column)
    )


def validate(frame: pl.DataFrame, path: str) -> None:
    """Raise InputError for the first rule a trajectory of `frame` (one file) breaks."""
    labels = frame.select("origin_row", label_expr())
    names: dict[int, str] = dict(zip(labels.get_column("origin_row").to_list(), labels.get_column("t").to_list()))
    runs = frame.select("origin_row", "task_id", "steps", "outcome")
    _first(runs, pl.col("task_id").is_null() | (pl.col("task_id").str.strip_chars() == ""), path, names,
           lambda r: "no task id, expected a task_id (or instance_id) naming the task the run attempted")
    _first(runs, pl.col("steps").is_null() | (pl.col("steps").list.len() == 0), path, names, lambda r: "no steps, expected at least one")
    _check_outcome(runs, path, names)

    steps = steps_long(frame)
    _first(steps, pl.col("idx").is_null() | (pl.col("idx") != pl.col("pos") + 1), path, names,
           lambda r: f"numbered {r['idx']} at position {r['pos'] + 1}, expected steps numbered 1..n in order")
    _first(steps, ~pl.col("source").is_in(STEP_SOURCES) | pl.col("source").is_null(), path, names,
           lambda r: f"source {_short(r['source'])}, expected one of {', '.join(STEP_SOURCES)}")
    _first(steps, (pl.col("source") != "agent") & (pl.col("tool_calls").list.len() > 0), path, names,
           lambda r: f"tool calls on a {r['source']} step, expected tool calls only on agent steps")

    calls = _per_item(steps, "tool_calls")
    blank = lambda name: pl.col(name).is_null() | (pl.col(name).str.strip_chars() == "")  # noqa: E731
    _first(calls, blank("id"), path, names, lambda r: f"tool call {r['cpos'] + 1} has no id, expected every call to carry an id its result names")
    _first(calls, blank("name"), path, names, lambda r: f"tool call {_short(r['id'])} has no function name, expected the name of the tool called")
    _first(calls, pl.struct("origin_row", "id").is_duplicated(), path, names,
           lambda r: f"tool call id {_short(r['id'])} is used more than once, expected call ids unique within a trajectory")

    observations = _per_item(steps, "observations")
    _first(observations, blank("tool_call_id"), path, names,
           lambda r: f"observation {r['cpos'] + 1} names no call, expected every observation to carry the tool_call_id it answers")
    made = calls.select("origin_row", pl.col("id").alias("tool_call_id"), pl.col("step").alias("call_step"))
    linked = observations.join(made, on=["origin_row", "tool_call_id"], how="left")

    def own_calls(r: dict[str, Any]) -> str:  # only on the error path: the ids the observation could have named
        ids = calls.filter((pl.col("origin_row") == r["origin_row"]) & (pl.col("step") == r["step"])).get_column("id").sort().to_list()
        return "[" + ", ".join(ids) + "]" if ids else "(it made none)"

    _first(linked, pl.col("call_step").is_null(), path, names,
           lambda r: f"observation answers call {_short(r['tool_call_id'])}, which no step made; expected the id of one of this step's calls {own_calls(r)}")
    _first(linked, pl.col("call_step") != pl.col("step"), path, names,
           lambda r: f"observation answers call {_short(r['tool_call_id'])} made in step {r['call_step']}, expected results in the step that made the call")
    _first(observations, pl.struct("origin_row", "tool_call_id").is_duplicated(), path, names,
           lambda r: f"call {_short(r['tool_call_id'])} has more than one observation, expected one result per call")


def _check_outcome(runs: pl.DataFrame, path: str, names: dict[int, str]) -> None:
    kind = pl.col("outcome").struct.field("verifier").struct.field("kind")
    _first(runs, kind.is_not_null() & ~kind.is_in(VERIFIER_KINDS), path, names,
           lambda r: f"outcome: verifier kind {_short(r['outcome']['verifier']['kind'])}, expected one of {', '.join(VERIFIER_KINDS)}")
    reward = pl.col("outcome").struct.field("reward")
    _first(runs, reward.is_not_null() & ~reward.is_finite(), path, names,
           lambda r: f"outcome: reward {r['outcome']['reward']}, expected a finite number")


def check_unique_ids(frame: pl.DataFrame, given: pl.Series) -> None:
    """No trajectory id twice in a delivery. `given` marks ids the files gave (the rest are content ids)."""
    tagged = frame.select("trajectory_id", "origin_uri", "origin_row").with_columns(given=given, n=pl.int_range(pl.len()))
    dups = tagged.filter(pl.len().over("trajectory_id") > 1).sort("n")
    if dups.height == 0:
        return
    second = dups.filter(pl.col("n") != pl.col("n").min().over("trajectory_id")).row(0, named=True)
    first = dups.filter(pl.col("trajectory_id") == second["trajectory_id"]).row(0, named=True)
    also = f"{first['origin_uri']} row {first['origin_row']}"
    if second["given"]:
        fail(second["origin_uri"], second["trajectory_id"], None, f"duplicate trajectory id (also at {also}), expected unique ids in a delivery")
    fail(second["origin_uri"], f"row {second['origin_row']}", None,
         f"same content as {also} (content id {second['trajectory_id'][:12]}...), expected distinct runs; drop the copy or give each run a trajectory_id")
