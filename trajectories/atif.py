"""ATIF-style JSON (Harbor's Agent Trajectory Interchange Format): one trajectory per file, or a list of them.

Mapping (ATIF field -> trajectory record):
  session_id -> trajectory_id (absent: the content id)
  agent.name / agent.version / agent.model_name -> env.harness / env.harness_version / policy.model
  steps[].step_id / source / message / reasoning_content -> steps[].idx / source / content / reasoning
  steps[].tool_calls[{tool_call_id, function_name, arguments}] -> steps[].tool_calls[{id, name, arguments}]
  steps[].observation.results[{source_call_id, content, extra.truncated}] -> steps[].observations[...]
  extra.task_id (or extra.instance_id), extra.task_group, extra.environment{repo_or_site,
  base_commit_or_snapshot, image}, extra.policy{revision, sampling}, extra.tools (or
  agent.tool_definitions), extra.outcome{resolved, reward, verifier, exit_status} -> the prefmix fields
  ATIF has no place for (its `extra` objects are the format's extension point).
Arguments, tools and sampling are held as JSON text: an object is serialized with json.dumps
defaults (the form Polars gives an object read from JSONL); a string is kept as it is. The
writer puts back an object when the text is that serialization, else the string, so
read -> write -> read gives the same record. Metrics, timestamps and notes are not kept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl

from prefmix.errors import InputError
from prefmix.records import ENV_FIELDS, TRAJECTORY_POLARS_SCHEMA
from prefmix.trajectories.validate import fail

SCHEMA_VERSION = "ATIF-v1.4"  # the fields written are all in ATIF 1.4 (+ `extra`)


def json_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def json_value(text: str | None) -> Any:
    """The JSON value to write for held text: the parsed object when json_text would give the text back."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if not isinstance(value, str) and json_text(value) == text else text


class _At:
    """Where a value sits, for one-line errors."""

    def __init__(self, path: str, trajectory: str, step: int | None = None) -> None:
        self.path, self.trajectory, self.step = path, trajectory, step

    def fail(self, what: str) -> None:
        fail(self.path, self.trajectory, self.step, what)

    def text(self, value: Any, field: str) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        self.fail(f"{field}: expected text, got {type(value).__name__}")
        return None

    def obj(self, value: Any, field: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(f"{field}: expected an object, got {type(value).__name__}")
        return value

    def items(self, value: Any, field: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(f"{field}: expected a list, got {type(value).__name__}")
        return value


def read_atif(path: Path) -> pl.DataFrame:
    """Trajectories of one ATIF file as a trajectory frame (ids may be missing; not yet validated)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text, expected ATIF JSON") from None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}), expected an ATIF trajectory or a list of them") from None
    items = data if isinstance(data, list) else [data]
    rows = [_trajectory(item, str(path), row) for row, item in enumerate(items)]
    return pl.DataFrame(rows, schema={k: v for k, v in TRAJECTORY_POLARS_SCHEMA.items() if k not in ("origin_uri", "origin_sha256")})


def _trajectory(item: Any, path: str, row: int) -> dict[str, Any]:
    at = _At(path, f"row {row}")
    if not isinstance(item, dict):
        at.fail(f"expected an ATIF trajectory object, got {type(item).__name__}")
    trajectory_id = at.text(item.get("session_id"), "session_id")
    at = _At(path, trajectory_id or f"row {row}")
    agent = at.obj(item.get("agent"), "agent")
    extra = at.obj(item.get("extra"), "extra")
    environment = at.obj(extra.get("environment"), "extra.environment")
    policy = at.obj(extra.get("policy"), "extra.policy")
    if "steps" not in item:
        at.fail("no steps, expected a `steps` list")
    steps = [_step(raw, _At(path, at.trajectory, position)) for position, raw in enumerate(at.items(item["steps"], "steps"), 1)]
    task_id = at.text(extra.get("task_id", extra.get("instance_id")), "extra.task_id")
    env = {name: at.text(environment.get(name), f"extra.environment.{name}") for name in ENV_FIELDS[:3]}
    env["harness"] = at.text(agent.get("name"), "agent.name")
    env["harness_version"] = at.text(agent.get("version"), "agent.version")
    return {
        "trajectory_id": trajectory_id,
        "task_id": task_id,
        "task_group": at.text(extra.get("task_group"), "extra.task_group") or task_id,
        "env": env,
        "policy": {
            "model": at.text(agent.get("model_name"), "agent.model_name"),
            "revision": at.text(policy.get("revision"), "extra.policy.revision"),
            "sampling": json_text(policy.get("sampling")),
        },
        "tools": json_text(extra["tools"] if "tools" in extra else agent.get("tool_definitions")),
        "steps": steps,
        "outcome": _outcome(extra.get("outcome"), at),
        "origin_row": row,
    }


def _step(raw: Any, at: _At) -> dict[str, Any]:
    if not isinstance(raw, dict):
        at.fail(f"expected a step object, got {type(raw).__name__}")
    idx = raw.get("step_id")
    if not isinstance(idx, int) or isinstance(idx, bool):
        at.fail(f"step_id {idx!r}, expected the integer step number (1..n)")
    calls = []
    for n, call in enumerate(at.items(raw.get("tool_calls"), "tool_calls"), 1):
        call = at.obj(call, f"tool_calls[{n}]")
        calls.append({
            "id": at.text(call.get("tool_call_id"), f"tool_calls[{n}].tool_call_id"),
            "name": at.text(call.get("function_name"), f"tool_calls[{n}].function_name"),
            "arguments": json_text(call.get("arguments")),
        })
    observation = at.obj(raw.get("observation"), "observation")
    results = []
    for n, result in enumerate(at.items(observation.get("results"), "observation.results"), 1):
        result = at.obj(result, f"observation.results[{n}]")
        truncated = at.obj(result.get("extra"), f"observation.results[{n}].extra").get("truncated", False)
        if not isinstance(truncated, bool):
            at.fail(f"observation.results[{n}].extra.truncated: expected true/false, got {truncated!r}")
        results.append({
            "tool_call_id": at.text(result.get("source_call_id"), f"observation.results[{n}].source_call_id"),
            "content": at.text(result.get("content"), f"observation.results[{n}].content"),
            "truncated": truncated,
        })
    return {
        "idx": idx,
        "source": at.text(raw.get("source"), "source"),
        "content": at.text(raw.get("message"), "message") or "",
        "reasoning": at.text(raw.get("reasoning_content"), "reasoning_content"),
        "tool_calls": calls,
        "observations": results,
    }


def _outcome(raw: Any, at: _At) -> dict[str, Any] | None:
    if raw is None:
        return None
    raw = at.obj(raw, "extra.outcome")
    resolved, reward = raw.get("resolved"), raw.get("reward")
    if resolved is not None and not isinstance(resolved, bool):
        at.fail(f"extra.outcome.resolved: expected true/false, got {resolved!r}")
    if reward is not None and (isinstance(reward, bool) or not isinstance(reward, (int, float))):
        at.fail(f"extra.outcome.reward: expected a number, got {reward!r}")
    verifier = at.obj(raw.get("verifier"), "extra.outcome.verifier")
    return {
        "resolved": resolved,
        "reward": None if reward is None else float(reward),
        "verifier": {k: at.text(verifier.get(k), f"extra.outcome.verifier.{k}") for k in ("kind", "name", "version")} if verifier else None,
        "exit_status": at.text(raw.get("exit_status"), "extra.outcome.exit_status"),
    }


# -- writer ----------------------------------------------------------------------------------------


def to_atif(record: dict[str, Any]) -> dict[str, Any]:
    """One trajectory record (a row of a trajectory frame, as a dict) as an ATIF object."""
    env, policy, outcome = record.get("env") or {}, record.get("policy") or {}, record.get("outcome")
    extra: dict[str, Any] = {"task_id": record["task_id"], "task_group": record["task_group"]}
    environment = {k: env.get(k) for k in ENV_FIELDS[:3] if env.get(k) is not None}
    if environment:
        extra["environment"] = environment
    policy_extra = {"revision": policy.get("revision"), "sampling": json_value(policy.get("sampling"))}
    if any(v is not None for v in policy_extra.values()):
        extra["policy"] = {k: v for k, v in policy_extra.items() if v is not None}
    if record.get("tools") is not None:
        extra["tools"] = json_value(record["tools"])
    if outcome is not None:
        extra["outcome"] = {k: v for k, v in outcome.items() if v is not None}
    return {
        "schema_version": SCHEMA_VERSION,
        "session_id": record["trajectory_id"],
        "agent": {"name": env.get("harness"), "version": env.get("harness_version"), "model_name": policy.get("model")},
        "steps": [_atif_step(step) for step in record["steps"]],
        "extra": extra,
    }


def _atif_step(step: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"step_id": step["idx"], "source": step["source"], "message": step["content"] or ""}
    if step.get("reasoning") is not None:
        out["reasoning_content"] = step["reasoning"]
    if step.get("tool_calls"):
        out["tool_calls"] = [
            {"tool_call_id": c["id"], "function_name": c["name"], "arguments": json_value(c["arguments"])} for c in step["tool_calls"]
        ]
    if step.get("observations"):
        results = []
        for o in step["observations"]:
            result: dict[str, Any] = {"source_call_id": o["tool_call_id"], "content": o["content"]}
            if o.get("truncated"):
                result["extra"] = {"truncated": True}
            results.append(result)
        out["observation"] = {"results": results}
    return out


def write_atif(frame: pl.DataFrame, path: Path) -> Path:
    """Write trajectories as ATIF: one object for one trajectory, else a list. Atomic (temp file + rename)."""
    items = [to_atif(row) for row in frame.iter_rows(named=True)]
    payload = items[0] if len(items) == 1 else items
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
