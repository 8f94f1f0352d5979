"""OpenHands / SWE-agent style JSONL: one run per line, its conversation as OpenAI chat `messages`.

A line holds (names in parentheses are accepted aliases):
  task_id (instance_id), trajectory_id (traj_id), task_group, messages (trajectory), tools,
  resolved, reward, exit_status, model_name (model), and the environment either as `env`
  {repo_or_site, base_commit_or_snapshot, image, harness, harness_version} or flat
  repo / base_commit / image / harness / harness_version; `policy` and `outcome` objects in
  the record's own names are read too. Other fields are ignored.
Messages become steps: system -> system, user -> user, assistant -> agent (content,
reasoning_content, tool_calls[{id, function{name, arguments}}]); a `tool` message is a result
(observation) of the step before it and must name one of that step's calls by tool_call_id.
`content` must be text (an array of content parts is kept as its JSON text).

The file is parsed by Polars with a fixed schema (fast, and objects in text fields come back as
their JSON text); when Polars refuses a file, a line-by-line pass finds the line and field to name.
Rows are 0-based JSON lines, blank lines skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from prefmix.errors import InputError
from prefmix.records import ENV_FIELDS, TRAJECTORY_POLARS_SCHEMA
from prefmix.trajectories.validate import fail, label_expr

S = pl.String
CALL = pl.Struct({"id": S, "type": S, "function": pl.Struct({"name": S, "arguments": S})})
MESSAGE = pl.Struct({"role": S, "content": S, "reasoning_content": S, "tool_calls": pl.List(CALL), "tool_call_id": S})
VERIFIER = pl.Struct({"kind": S, "name": S, "version": S})
RAW: dict[str, pl.DataType] = {
    "trajectory_id": S, "traj_id": S, "task_id": S, "instance_id": S, "task_group": S,
    "messages": pl.List(MESSAGE), "trajectory": pl.List(MESSAGE), "tools": S,
    "resolved": pl.Boolean, "reward": pl.Float64, "exit_status": S, "verifier": VERIFIER,
    "model_name": S, "model": S,
    "env": pl.Struct({name: S for name in ENV_FIELDS}),
    "repo": S, "base_commit": S, "image": S, "harness": S, "harness_version": S,
    "policy": pl.Struct({"model": S, "revision": S, "sampling": S}),
    "outcome": pl.Struct({"resolved": pl.Boolean, "reward": pl.Float64, "verifier": VERIFIER, "exit_status": S}),
}
ROLES = {"system": "system", "user": "user", "assistant": "agent", "tool": None}


def read_chat_jsonl(path: Path) -> pl.DataFrame:
    """Runs of one JSONL file as a trajectory frame (ids may be missing; not yet validated)."""
    raw = _parse(path).with_row_index("origin_row").with_columns(pl.col("origin_row").cast(pl.Int64))
    runs = raw.select(
        "origin_row",
        pl.coalesce("trajectory_id", "traj_id").alias("trajectory_id"),
        pl.coalesce("task_id", "instance_id").alias("task_id"),
        pl.col("task_group"),
        pl.coalesce("messages", "trajectory").alias("messages"),
        pl.col("tools"),
        pl.struct(
            pl.coalesce(pl.col("env").struct.field("repo_or_site"), "repo").alias("repo_or_site"),
            pl.coalesce(pl.col("env").struct.field("base_commit_or_snapshot"), "base_commit").alias("base_commit_or_snapshot"),
            pl.coalesce(pl.col("env").struct.field("image"), "image").alias("image"),
            pl.coalesce(pl.col("env").struct.field("harness"), "harness").alias("harness"),
            pl.coalesce(pl.col("env").struct.field("harness_version"), "harness_version").alias("harness_version"),
        ).alias("env"),
        pl.struct(
            pl.coalesce(pl.col("policy").struct.field("model"), "model_name", "model").alias("model"),
            pl.col("policy").struct.field("revision").alias("revision"),
            pl.col("policy").struct.field("sampling").alias("sampling"),
        ).alias("policy"),
        _outcome().alias("outcome"),
    ).with_columns(pl.coalesce("task_group", "task_id").alias("task_group"))
    steps = _steps(runs.select("origin_row", "trajectory_id", "messages"), str(path))
    runs = runs.drop("messages").join(steps, on="origin_row", how="left").with_columns(
        pl.col("steps").fill_null(pl.lit([], dtype=TRAJECTORY_POLARS_SCHEMA["steps"]))
    )
    return runs.select([c for c in TRAJECTORY_POLARS_SCHEMA if c not in ("origin_uri", "origin_sha256")])


def _outcome() -> pl.Expr:
    nested = pl.col("outcome")
    fields = [
        pl.coalesce(nested.struct.field("resolved"), "resolved").alias("resolved"),
        pl.coalesce(nested.struct.field("reward"), "reward").alias("reward"),
        pl.coalesce(nested.struct.field("verifier"), "verifier").alias("verifier"),
        pl.coalesce(nested.struct.field("exit_status"), "exit_status").alias("exit_status"),
    ]
    present = pl.any_horizontal([f.is_not_null() for f in fields])
    return pl.when(present).then(pl.struct(fields))


def _steps(runs: pl.DataFrame, path: str) -> pl.DataFrame:
    """Messages -> steps: every non-tool message opens a step; tool messages are results of the step before them."""
    messages = (
        runs.with_columns(mpos=pl.int_ranges(pl.col("messages").list.len()))
        .explode("messages", "mpos")
        .unnest("messages")
        .with_columns(label_expr())
    )
    role = pl.col("role")
    messages = messages.with_columns(step=(role != "tool").cast(pl.Int32).cum_sum().over("origin_row"))
    bad_role = messages.filter(role.is_null() | ~role.is_in(list(ROLES)))
    if bad_role.height:
        r = bad_role.row(0, named=True)
        fail(path, r["t"], None, f"message {r['mpos'] + 1}: role {r['role']!r}, expected one of system, user, assistant, tool")
    orphans = messages.filter((role == "tool") & (pl.col("step") == 0))
    if orphans.height:
        r = orphans.row(0, named=True)
        fail(path, r["t"], None, f"message {r['mpos'] + 1}: a tool result before any assistant message, expected it after the call it answers")
    calls = pl.col("tool_calls").list.eval(
        pl.struct(
            pl.element().struct.field("id"),
            pl.element().struct.field("function").struct.field("name").alias("name"),
            pl.element().struct.field("function").struct.field("arguments").alias("arguments"),
        )
    )
    opened = messages.filter(role != "tool").select(
        "origin_row",
        pl.col("step").alias("idx"),
        role.replace_strict({k: v for k, v in ROLES.items() if v}, return_dtype=S).alias("source"),
        pl.col("content"),
        pl.col("reasoning_content").alias("reasoning"),
        calls.fill_null(pl.lit([])).alias("tool_calls"),
    )
    results = (
        messages.filter(role == "tool")
        .group_by("origin_row", "step")
        .agg(pl.struct("tool_call_id", "content", pl.lit(False).alias("truncated")).sort_by("mpos").alias("observations"))
        .rename({"step": "idx"})
    )
    steps = opened.join(results, on=["origin_row", "idx"], how="left", maintain_order="left")
    steps = steps.with_columns(pl.col("observations").fill_null(pl.lit([], dtype=TRAJECTORY_POLARS_SCHEMA["steps"].inner.fields[-1].dtype)))  # type: ignore[attr-defined]
    fields = ["idx", "source", "content", "reasoning", "tool_calls", "observations"]
    return steps.sort("origin_row", "idx").group_by("origin_row", maintain_order=True).agg(pl.struct(fields).alias("steps")).with_columns(
        pl.col("steps").cast(TRAJECTORY_POLARS_SCHEMA["steps"])
    )


def _parse(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_ndjson(path, schema=RAW)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        _diagnose(path)
        raise InputError(f"{path}: not readable as chat JSONL ({' '.join(str(exc).split())[:160]})") from None
    if frame.height == 0:
        raise InputError(f"{path}: no runs, expected one JSON object per line")
    return frame


# -- diagnosis: only on files Polars refused ---------------------------------------------------------

_TEXT = "text"
_SHAPE: dict[str, Any] = {
    "messages": [{"role": _TEXT, "content": _TEXT, "reasoning_content": _TEXT, "tool_call_id": _TEXT,
                  "tool_calls": [{"id": _TEXT, "type": _TEXT, "function": {"name": _TEXT, "arguments": _TEXT}}]}],
    "resolved": "bool", "reward": "number", "verifier": {"kind": _TEXT, "name": _TEXT, "version": _TEXT},
    "env": {name: _TEXT for name in ENV_FIELDS}, "policy": {"model": _TEXT, "revision": _TEXT, "sampling": _TEXT},
    "outcome": {"resolved": "bool", "reward": "number", "exit_status": _TEXT, "verifier": {"kind": _TEXT, "name": _TEXT, "version": _TEXT}},
    **{name: _TEXT for name in ("trajectory_id", "traj_id", "task_id", "instance_id", "task_group", "exit_status", "model_name",
                                "model", "repo", "base_commit", "image", "harness", "harness_version")},
}
_SHAPE["trajectory"] = _SHAPE["messages"]
_EXPECT = {"bool": "true/false", "number": "a number"}


def _diagnose(path: Path) -> None:
    """Raise the one-line error for the first line or field that breaks the layout (if one does)."""
    row = -1
    with open(path, encoding="utf-8", errors="strict") as handle:
        try:
            for line in handle:
                if not line.strip():
                    continue
                row += 1
                try:
                    value = json.loads(line)
                except ValueError as exc:
                    raise InputError(f"{path}: row {row}: not valid JSON ({exc}), expected one run per line") from None
                if not isinstance(value, dict):
                    raise InputError(f"{path}: row {row}: expected a JSON object (one run), got {type(value).__name__}")
                label = value.get("trajectory_id") or value.get("traj_id") or f"row {row}"
                problem = _mismatch(value, _SHAPE, "")
                if problem:
                    raise InputError(f"{path}: trajectory {label}: {problem}")
        except UnicodeDecodeError:
            raise InputError(f"{path}: row {row + 1}: not UTF-8 text") from None


def _mismatch(value: Any, shape: Any, at: str) -> str | None:
    if value is None:
        return None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{at.lstrip('.')}: expected an object, got {_shown(value)}"
        for key, inner in shape.items():
            found = _mismatch(value.get(key), inner, f"{at}.{key}")
            if found:
                return found
        return None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{at.lstrip('.')}: expected a list, got {_shown(value)}"
        for n, item in enumerate(value):
            found = _mismatch(item, shape[0], f"{at}[{n}]")
            if found:
                return found
        return None
    ok = {
        _TEXT: True,  # Polars reads any value into a text field (objects as their JSON text)
        "bool": isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
    }[shape]
    return None if ok else f"{at.lstrip('.')}: expected {_EXPECT[shape]}, got {_shown(value)}"


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."
