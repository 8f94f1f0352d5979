"""Builders for hand-made runs: chat-JSONL lines and ATIF objects from a short step notation.

A step is ("system" | "user", text) or ("agent", text, calls, results) with calls
[(call_id, name, arguments_json_text)] and results [(call_id, output)].
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Sequence

Step = tuple[Any, ...]
REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "trajectories"

from tests.support import REPO
from tests.support.cli import prefmix


def agent(text: str, call: tuple[str, str, str] | None = None, result: str | None = None) -> Step:
    """An agent step with at most one call and its result (the common case in tests)."""
    calls = [call] if call else []
    results = [(call[0], result)] if call and result is not None else []
    return ("agent", text, calls, results)


def messages(steps: Sequence[Step]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for step in steps:
        if step[0] in ("system", "user"):
            out.append({"role": step[0], "content": step[1]})
            continue
        _, text, calls, results = step
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls]
        out.append(message)
        out.extend({"role": "tool", "tool_call_id": i, "content": c} for i, c in results)
    return out


def chat_run(task: str, steps: Sequence[Step], resolved: bool | None, trajectory_id: str | None = None, *,
             harness_version: str = "1.0", reward: float | None = None, repo: str = "acme/widgets", **extra: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "instance_id": task, "messages": messages(steps), "repo": repo, "base_commit": "abc123",
        "image": "img:1", "harness": "openhands", "harness_version": harness_version,
        "model_name": "policy-a", "tools": [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}],
    }
    if trajectory_id is not None:
        line["trajectory_id"] = trajectory_id
    if resolved is not None:
        line["resolved"] = resolved
    if reward is not None:
        line["reward"] = reward
    line.update(extra)
    return line


def write_jsonl(path: Path, lines: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def base(task: str = "T1") -> list[Step]:
    return [("system", "You are a coding agent."), ("user", f"Fix issue {task}: the widget count is off by one.")]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`prefmix trajectories pairs ...` in a subprocess, exactly as a user runs it."""
    return prefmix("trajectories", "pairs", *args, cwd=cwd or REPO, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=120)
