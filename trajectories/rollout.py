"""Rollouts: a teacher served by vLLM attempts the demo's tool tasks (tool_env.py) several times each.

Each agent turn is one chat request whose reply is constrained to STEP_SCHEMA (vLLM structured outputs,
the `response_format` judges use): {"thought", "action": "calculator" | "lookup", "arguments": {...}}
or {"thought", "action": "answer", "answer": "..."}. A tool action is run by the environment and its
result fed back as a `tool` message naming the call's id; `answer` ends the run, and the task's check
decides `resolved`. A run also ends after `max_steps` agent turns (max_steps), on a reply that is not a
valid action (invalid_action: cut at max_tokens, or unparseable), or on a request that failed after
its retries (request_failed). One failed request ends only its own run. The first turn may only call a
tool (Environment.first_turn). The reward is 1 for a resolved run, else half the share of the facts the
task needs that the run's tools returned (Task.reward): unresolved runs that found more rank higher.

The record (prefmix.records.TRAJECTORY_SCHEMA): step 1 system prompt, step 2 the question, then one
agent step per turn. An agent step's `reasoning` is the thought; a tool turn's content is empty and
its call and result sit in the step (ATIF layout); an answer turn's content is the answer; an invalid
reply is kept as the content of a last agent step. Thoughts are reasoning, so two runs that made the
same calls share those steps (steps.py compares content, calls and results) and diverge where their
actions do: the prefixes step pairs and Monte Carlo labels are made from.

Seeds: attempt a of a task samples with seed sha256([env.seed, task_id, a]) (policy.sampling.seed); its
request for agent turn t with sha256([that seed, t]): reruns are reproducible, attempts differ.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import polars as pl
from pydantic import Field

from prefmix.config import ErrorBudget, Model, Retry, Teacher
from prefmix.generators.client import ChatClient, ErrorWindow, RequestFailed
from prefmix.generators.vllm_server import VLLMServerError
from prefmix.hashing import sha256_json, short_hash
from prefmix.records import TRAJECTORY_POLARS_SCHEMA
from prefmix.store import sha256_file
from prefmix.trajectories import tool_env
from prefmix.trajectories.atif import write_atif
from prefmix.trajectories.tool_env import Task
from prefmix.trajectories.validate import validate

HARNESS = "prefmix-rollout"
HARNESS_VERSION = "2"  # 2: the first turn calls a tool; rewards give partial credit for facts found
THOUGHT_CHARS = 48  # short: a 135M model's thoughts add little, and every character is a token of budget
EXIT_STATUSES = ("answered", "max_steps", "invalid_action", "request_failed")

SYSTEM_PROMPT = (
    "You answer questions with tools. Each turn, reply with one JSON object.\n"
    'To use a tool: {"thought": "...", "action": "lookup", "arguments": {"table": "countries", "key": "France", "column": "capital"}}\n'
    "  lookup tables: countries (columns capital, population), elements (columns symbol, atomic_number).\n"
    '  or {"thought": "...", "action": "calculator", "arguments": {"expression": "12 * (3 + 4)"}}\n'
    'When you know the answer: {"thought": "...", "action": "answer", "answer": "..."}\n'
    "Tool results come back as tool messages."
)


def _action(name: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
    properties: dict[str, Any] = {"thought": {"type": "string", "maxLength": THOUGHT_CHARS}, "action": {"type": "string", "enum": [name]}}
    if arguments is None:
        properties["answer"] = {"type": "string", "minLength": 1, "maxLength": 40}
    else:
        properties["arguments"] = {"type": "object", "properties": arguments, "required": list(arguments), "additionalProperties": False}
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


# One schema per action, as alternatives: the arguments a tool takes are then the only ones the grammar allows.
# Table, key and column are enums (a weak model cannot misspell them; it can still pick the wrong table or row).
STEP_SCHEMA: dict[str, Any] = {
    "anyOf": [
        _action("lookup", {
            "table": {"type": "string", "enum": list(tool_env.TABLES)},
            "key": {"type": "string", "enum": list(tool_env.KEYS)},
            "column": {"type": "string", "enum": list(tool_env.ALL_COLUMNS)},
        }),
        _action("calculator", {"expression": {"type": "string", "minLength": 1, "maxLength": 48}}),
        _action("answer", None),
    ]
}
TOOLS = {"lookup": ("table", "key", "column"), "calculator": ("expression",)}
# The first turn may only call a tool: the harness requires evidence before an answer (a 135M model asked
# freely answers from memory, almost always wrongly, and every attempt of a task then fails alike).
TOOL_SCHEMA: dict[str, Any] = {"anyOf": STEP_SCHEMA["anyOf"][:2]}


class Environment(Model):
    """How many runs of the demo tool environment, and how the teacher samples them."""

    tasks: int = Field(8, ge=1, le=40, description="tasks drawn from tool_env.make_tasks(tasks, seed)")
    attempts: int = Field(4, ge=1, description="runs per task (each with its own sampling seed)")
    max_steps: int = Field(4, ge=1, description="agent turns before a run ends as max_steps")
    temperature: float = Field(0.8, ge=0.0, description="> 0, or every attempt of a task makes the same run")
    max_tokens: int = Field(96, ge=16, description="per agent turn; a reply cut here is invalid_action")
    seed: int = 0
    concurrency: int = Field(16, ge=1, description="requests in flight at once (runs proceed concurrently)")
    first_turn: Literal["tool", "any"] = Field("tool", description="tool: the first agent turn must call a tool")


@dataclass(frozen=True)
class RolloutResult:
    trajectories: pl.DataFrame  # TRAJECTORY_POLARS_SCHEMA, exactly what readers.read_trajectories([file]) gives
    file: Path  # the ATIF JSON written
    sha256: str
    requests: int  # chat requests sent (one per agent turn tried; retries not counted)
    resolved: int
    attempts: int
    elapsed_s: float


@dataclass(frozen=True)
class Action:
    thought: str
    name: str  # lookup | calculator | answer
    arguments: dict[str, Any]  # tool arguments ({} for answer)
    answer: str | None = None


def parse_action(text: str) -> Action | None:
    """A reply as an action, or None when it is not one (the grammar prevents most, max_tokens cuts some)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("thought", ""), str):
        return None
    name, thought = data.get("action"), data.get("thought", "")
    if name == "answer":
        answer = data.get("answer")
        return Action(thought, name, {}, answer) if isinstance(answer, str) and answer.strip() else None
    arguments = data.get("arguments")
    if name not in TOOLS or not isinstance(arguments, dict):
        return None
    if set(arguments) != set(TOOLS[name]) or not all(isinstance(v, str) for v in arguments.values()):
        return None
    return Action(thought, name, {k: arguments[k] for k in TOOLS[name]})


def _seed(*parts: Any) -> int:
    return int(sha256_json(list(parts))[:8], 16) & 0x7FFFFFFF


def _step(idx: int, source: str, content: str, reasoning: str | None = None,
          calls: list[dict[str, Any]] | None = None, observations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"idx": idx, "source": source, "content": content, "reasoning": reasoning,
            "tool_calls": calls or [], "observations": observations or []}


@dataclass
class _Run:
    steps: list[dict[str, Any]]
    exit_status: str
    answer: str | None
    requests: int
    last_error: str | None = None


async def _attempt(client: ChatClient, env: Environment, task: Task, seed: int) -> _Run:
    """One run of `task`: agent turns until an answer, a bad reply, a failed request or max_steps."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": task.question}]
    steps = [_step(1, "system", SYSTEM_PROMPT), _step(2, "user", task.question)]
    def response_format(turn: int) -> dict[str, Any]:
        schema = TOOL_SCHEMA if turn == 1 and env.first_turn == "tool" else STEP_SCHEMA
        return {"type": "json_schema", "json_schema": {"name": "agent_step", "schema": schema, "strict": True}}

    requests = 0
    for turn in range(1, env.max_steps + 1):
        payload = {"messages": messages, "temperature": env.temperature, "max_tokens": env.max_tokens,
                   "seed": _seed(seed, turn), "response_format": response_format(turn)}
        requests += 1
        try:
            reply = await client.chat(payload)
        except RequestFailed as exc:
            return _Run(steps, "request_failed", None, requests, exc.detail)
        idx = len(steps) + 1
        action = parse_action(reply.content)
        if action is None:
            steps.append(_step(idx, "agent", reply.content))
            return _Run(steps, "invalid_action", None, requests)
        if action.name == "answer":
            steps.append(_step(idx, "agent", action.answer or "", action.thought))
            return _Run(steps, "answered", action.answer, requests)
        call_id = f"call_{idx}"
        arguments = json.dumps(action.arguments, ensure_ascii=False)  # the text form atif.py writes back as an object
        result = tool_env.run_tool(action.name, action.arguments)
        steps.append(_step(idx, "agent", "", action.thought, [{"id": call_id, "name": action.name, "arguments": arguments}],
                           [{"tool_call_id": call_id, "content": result, "truncated": False}]))
        messages += [
            {"role": "assistant", "content": reply.content,
             "tool_calls": [{"id": call_id, "type": "function", "function": {"name": action.name, "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": call_id, "content": result},
        ]
    return _Run(steps, "max_steps", None, requests)


def _record(env: Environment, model: str, task: Task, attempt: int, seed: int, run: _Run, run_key: str) -> dict[str, Any]:
    resolved = run.exit_status == "answered" and task.check(run.answer)
    results = [o["content"] for step in run.steps for o in step["observations"]]
    reward = task.reward(run.answer if run.exit_status == "answered" else None, results)
    sampling = {"temperature": env.temperature, "top_p": 1.0, "max_tokens": env.max_tokens, "seed": seed}
    return {
        "trajectory_id": f"{task.task_id}/{run_key}/a{attempt}",
        "task_id": task.task_id,
        "task_group": task.task_group,
        "env": {"repo_or_site": tool_env.NAME, "base_commit_or_snapshot": tool_env.SNAPSHOT, "image": None,
                "harness": HARNESS, "harness_version": HARNESS_VERSION},
        "policy": {"model": model, "revision": None, "sampling": json.dumps(sampling, ensure_ascii=False)},
        "tools": json.dumps(tool_env.TOOL_SCHEMAS, ensure_ascii=False),
        "steps": run.steps,
        "outcome": {"resolved": resolved, "reward": reward,
                    "verifier": {"kind": "test", "name": tool_env.NAME, "version": tool_env.VERSION},
                    "exit_status": run.exit_status},
    }


async def _all(env: Environment, base_url: str, model: str, api_key: str | None, tasks: list[Task],
               progress: Callable[[int, int], None] | None) -> list[_Run]:
    teacher = Teacher(name="rollout", model=model, endpoints=[base_url], max_in_flight=env.concurrency)
    # Few, short retries: a run waits on each of its turns, and a dead server should be reported in seconds.
    retry = Retry(max_attempts=3, base_delay_s=0.2, max_delay_s=2.0)
    total, done = len(tasks) * env.attempts, 0
    async with ChatClient(teacher, [base_url], retry, ErrorWindow(ErrorBudget()), api_key) as client:

        async def one(task: Task, attempt: int) -> _Run:
            nonlocal done
            run = await _attempt(client, env, task, _seed(env.seed, task.task_id, attempt))
            done += 1
            if progress is not None:
                progress(done, total)
            return run

        return list(await asyncio.gather(*(one(t, a) for t in tasks for a in range(env.attempts))))


def run_rollouts(env: Environment, base_url: str, model: str, out_file: Path, *, api_key: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> RolloutResult:
    """Run env.attempts attempts of each of env.tasks tasks against the teacher at `base_url` (serving `model`),
    write them to `out_file` as ATIF JSON (atomically) and return them as trajectory records.

    Raises VLLMServerError (exit 3) when no request succeeded, RunAborted (exit 3) when the error budget trips."""
    started = time.monotonic()
    out_file = Path(out_file)
    tasks = tool_env.make_tasks(env.tasks, env.seed)
    runs = asyncio.run(_all(env, base_url.rstrip("/"), model, api_key, tasks, progress))
    failed = [r for r in runs if r.exit_status == "request_failed"]
    if failed and len(failed) == len(runs) and all(len(r.steps) == 2 for r in failed):
        raise VLLMServerError(f"teacher {model!r} at {base_url}: no request succeeded ({len(failed)} runs); last error: {failed[-1].last_error}")
    # Runs of one configuration get one key, so ids are readable and unique across seeds, models and settings.
    run_key = short_hash([model, env.model_dump(exclude={"tasks", "concurrency"}), tool_env.VERSION, HARNESS_VERSION], 8)
    rows = [
        {**_record(env, model, task, attempt, _seed(env.seed, task.task_id, attempt), runs[i * env.attempts + attempt], run_key),
         "origin_uri": str(out_file), "origin_sha256": "", "origin_row": i * env.attempts + attempt}
        for i, task in enumerate(tasks) for attempt in range(env.attempts)
    ]
    frame = pl.DataFrame(rows, schema=TRAJECTORY_POLARS_SCHEMA)
    validate(frame, str(out_file))  # the rules every reader enforces, before anything is written
    out_file.parent.mkdir(parents=True, exist_ok=True)
    write_atif(frame, out_file)
    digest = sha256_file(out_file)
    frame = frame.with_columns(origin_sha256=pl.lit(digest))
    resolved = int(frame.select(pl.col("outcome").struct.field("resolved").sum()).item())
    return RolloutResult(
        trajectories=frame, file=out_file, sha256=digest, requests=sum(r.requests for r in runs),
        resolved=resolved, attempts=frame.height, elapsed_s=round(time.monotonic() - started, 3),
    )
