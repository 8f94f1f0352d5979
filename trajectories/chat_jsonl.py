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

Parsing: pyarrow's JSON reader takes the messages (the bulk of a line, typed exactly; it is ~3x
faster than Polars' NDJSON reader on nested lists here) and Polars the other fields (objects in
text fields, such as `tools`, come back as their JSON text). A file pyarrow refuses (a number or
an object where the messages hold text) is read by Polars alone, which turns such values into
text; when Polars refuses it too, a line-by-line pass finds the line and field to name.
Rows are 0-based JSON lines, blank lines skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json

from prefmix.errors import InputError
from prefmix.records import ENV_FIELDS, TRAJECTORY_POLARS_SCHEMA
from prefmix.trajectories.validate import fail

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
    runs = runs.with_columns(_steps(runs, str(path))).drop("messages")
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


def _steps(runs: pl.DataFrame, path: str) -> pl.Series:
    """Messages -> steps, one list per run in run order: every non-tool message opens a step; tool messages are
    results of the step before them. Messages come in order, so a step's results and a run's steps are contiguous
    stretches of the exploded messages: the lists are cut by offsets (pyarrow) rather than grouped by key, which
    was most of the reader's time."""
    messages = (
        runs.select("origin_row", pl.col("messages").fill_null(pl.lit([], dtype=RAW["messages"])))
        .with_columns(mpos=pl.int_ranges(pl.col("messages").list.len()))
        .explode("messages", "mpos")  # empty lists vanish, as they should
        .unnest("messages")
    )
    role = pl.col("role")
    messages = messages.with_columns(step=(role != "tool").cast(pl.Int32).cum_sum().over("origin_row"))
    name = lambda r: runs.get_column("trajectory_id")[r["origin_row"]] or f"row {r['origin_row']}"  # noqa: E731
    bad_role = messages.filter(role.is_null() | ~role.is_in(list(ROLES)))
    if bad_role.height:
        r = bad_role.row(0, named=True)
        fail(path, name(r), None, f"message {r['mpos'] + 1}: role {r['role']!r}, expected one of system, user, assistant, tool")
    orphans = messages.filter((role == "tool") & (pl.col("step") == 0))
    if orphans.height:
        r = orphans.row(0, named=True)
        fail(path, name(r), None, f"message {r['mpos'] + 1}: a tool result before any assistant message, expected it after the call it answers")

    opens = messages.get_column("role") != "tool"
    opened, tools = messages.filter(opens), messages.filter(~opens)
    follows = (opens.cast(pl.Int64).cum_sum() - 1).filter(~opens).to_numpy()  # the opened step each result follows
    observations = _cut(
        np.bincount(follows, minlength=opened.height),
        pa.StructArray.from_arrays(
            [_arrow(tools, "tool_call_id"), _arrow(tools, "content"), pa.array(np.zeros(tools.height, dtype=bool))],
            names=["tool_call_id", "content", "truncated"],
        ),
    )
    raw_calls = opened.get_column("tool_calls").fill_null(pl.lit([], dtype=RAW["messages"].inner.fields[3].dtype)).to_arrow()  # type: ignore[attr-defined]
    flat = raw_calls.flatten()
    function = flat.field("function")
    calls = _cut(
        np.diff(np.asarray(raw_calls.offsets)),
        pa.StructArray.from_arrays([flat.field("id"), function.field("name"), function.field("arguments")], names=["id", "name", "arguments"]),
    )
    source = opened.get_column("role").replace_strict({k: v for k, v in ROLES.items() if v}, return_dtype=S)
    step = pa.StructArray.from_arrays(
        [pa.array(opened.get_column("step").to_numpy()), source.to_arrow(), _arrow(opened, "content"), _arrow(opened, "reasoning_content"), calls, observations],
        names=["idx", "source", "content", "reasoning", "tool_calls", "observations"],
    )
    per_run = np.bincount(opened.get_column("origin_row").to_numpy(), minlength=runs.height)
    series = pl.from_arrow(_cut(per_run, step))
    assert isinstance(series, pl.Series)
    return series.cast(TRAJECTORY_POLARS_SCHEMA["steps"]).alias("steps")


def _arrow(frame: pl.DataFrame, column: str) -> pa.Array:
    return frame.get_column(column).to_arrow()


def _cut(lengths: np.ndarray, values: pa.Array) -> pa.Array:
    """A list array whose i-th list is the next lengths[i] values."""
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    return pa.LargeListArray.from_arrays(pa.array(offsets, type=pa.int64()), values)


_LISTS = ("messages", "trajectory")
_ARROW_CALL = pa.struct([("id", pa.string()), ("type", pa.string()), ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())]))])
_ARROW_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string()), ("reasoning_content", pa.string()),
                            ("tool_calls", pa.list_(_ARROW_CALL)), ("tool_call_id", pa.string())])
_ARROW = pa_json.ParseOptions(explicit_schema=pa.schema([(name, pa.list_(_ARROW_MESSAGE)) for name in _LISTS]), unexpected_field_behavior="ignore")
# pyarrow parses in blocks that must each hold whole lines; small blocks parallelise better, and a file with
# a longer line (agent runs can be megabytes) is retried with bigger ones
_BLOCKS = (1 << 22, 1 << 26, 1 << 29)


def _parse(path: Path) -> pl.DataFrame:
    fast = _parse_fast(path)
    return fast if fast is not None else _parse_polars(path)


def _parse_fast(path: Path) -> pl.DataFrame | None:
    """messages via pyarrow, the rest via Polars; None when pyarrow refuses the file or the two disagree on rows."""
    lists = None
    for block in _BLOCKS:
        try:
            lists = pa_json.read_json(path, read_options=pa_json.ReadOptions(block_size=block), parse_options=_ARROW)
            break
        except (pa.ArrowException, OSError, ValueError) as exc:
            if "straddl" not in str(exc):
                return None
    try:
        rest = pl.read_ndjson(path, schema={k: v for k, v in RAW.items() if k not in _LISTS})
    except (pl.exceptions.PolarsError, OSError, ValueError):
        return None
    if lists is None:
        return None
    if lists.num_rows != rest.height or rest.height == 0:
        return None
    typed = pl.from_arrow(lists)
    assert isinstance(typed, pl.DataFrame)
    return rest.with_columns(typed.get_column(name).cast(RAW[name]) for name in _LISTS).select(list(RAW))


def _parse_polars(path: Path) -> pl.DataFrame:
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
