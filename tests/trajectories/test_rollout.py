"""Rollouts against real vLLM servers: the tiny teacher for shape and accounting, the small real teacher for
outcomes (some tasks resolved, some not) and the step pairs they make."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from prefmix.generators.vllm_server import VLLMServerError, free_port
from prefmix.records import TRAJECTORY_POLARS_SCHEMA
from prefmix.trajectories import tool_env
from prefmix.trajectories.readers import read_trajectories
from prefmix.trajectories.rollout import EXIT_STATUSES, Environment, RolloutResult, parse_action, run_rollouts


def test_parse_action() -> None:
    step = parse_action('{"thought":"t","action":"lookup","arguments":{"table":"countries","key":"France","column":"capital"}}')
    assert step is not None and step.name == "lookup" and step.arguments == {"table": "countries", "key": "France", "column": "capital"}
    answer = parse_action('{"thought":"","action":"answer","answer":"Paris"}')
    assert answer is not None and answer.answer == "Paris"
    for bad in ('{"thought":"t","action":"lookup","arguments":{"table":"countries"}}', '{"thought":"t","action":"answer","answer":" "}',
                '{"thought":"t","action":"search","arguments":{}}', '{"thought":"t","action":"calculator","arguments":{"expression":1}}',
                '{"thought":"t","action":"calc', "[]"):
        assert parse_action(bad) is None, bad


def test_unreachable_teacher_is_one_infra_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(VLLMServerError, match="no request succeeded") as caught:
        run_rollouts(Environment(tasks=2, attempts=2), url, "nobody", tmp_path / "runs.json")
    assert "\n" not in str(caught.value) and caught.value.exit_code == 3
    assert not (tmp_path / "runs.json").exists()


def _final_answer(row: dict) -> str | None:
    return row["steps"][-1]["content"] if row["outcome"]["exit_status"] == "answered" else None


def _check_result(result: RolloutResult, env: Environment, model: str) -> pl.DataFrame:
    """What every rollout must hold, whatever the teacher wrote; returns the frame read back from the file."""
    frame = result.trajectories
    tasks = {t.task_id: t for t in tool_env.make_tasks(env.tasks, env.seed)}
    assert frame.schema == TRAJECTORY_POLARS_SCHEMA
    assert result.attempts == frame.height == env.tasks * env.attempts
    assert frame.group_by("task_id").len().get_column("len").to_list() == [env.attempts] * env.tasks
    assert set(frame.get_column("task_id")) == set(tasks) and frame.get_column("trajectory_id").n_unique() == frame.height

    steps = frame.select("trajectory_id", "steps").explode("steps").unnest("steps")
    numbered = steps.group_by("trajectory_id", maintain_order=True).agg(pl.col("idx"))
    assert all(idx == list(range(1, len(idx) + 1)) for idx in numbered.get_column("idx").to_list())
    calls = steps.select("trajectory_id", "idx", pl.col("tool_calls")).explode("tool_calls").drop_nulls("tool_calls").unnest("tool_calls")
    results = steps.select("trajectory_id", "idx", "observations").explode("observations").drop_nulls("observations").unnest("observations")
    # every observation answers a call of its own step, and every call (the environment runs them all) has one
    linked = results.join(calls, left_on=["trajectory_id", "idx", "tool_call_id"], right_on=["trajectory_id", "idx", "id"], how="inner")
    assert linked.height == results.height == calls.height
    assert set(calls.get_column("name")) <= {"lookup", "calculator"}
    agent_steps = steps.filter(pl.col("source") == "agent").group_by("trajectory_id").len()
    assert result.requests >= int(agent_steps.get_column("len").sum())  # one request per agent turn (+ failed ones)

    resolved = 0
    for row in frame.iter_rows(named=True):
        outcome = row["outcome"]
        assert outcome["exit_status"] in EXIT_STATUSES
        assert outcome["verifier"] == {"kind": "test", "name": tool_env.NAME, "version": tool_env.VERSION}
        answer = _final_answer(row)
        assert outcome["resolved"] == (answer is not None and tasks[row["task_id"]].check(answer))
        results = [o["content"] for s in row["steps"] for o in s["observations"]]
        assert outcome["reward"] == tasks[row["task_id"]].reward(answer, results)
        assert (outcome["reward"] == 1.0) == outcome["resolved"] and 0.0 <= outcome["reward"] <= 1.0
        agent_turns = sum(s["source"] == "agent" for s in row["steps"])
        first = row["steps"][2]
        if env.first_turn == "tool" and outcome["exit_status"] != "invalid_action" or agent_turns > 1:
            assert first["tool_calls"], first  # the first turn calls a tool (a later one may answer)
        if outcome["exit_status"] == "max_steps":
            assert agent_turns == env.max_steps and row["steps"][-1]["tool_calls"]
        assert [s["source"] for s in row["steps"][:2]] == ["system", "user"] and row["steps"][1]["content"] == tasks[row["task_id"]].question
        assert row["policy"]["model"] == model and json.loads(row["policy"]["sampling"])["temperature"] == env.temperature
        resolved += outcome["resolved"]
    assert result.resolved == resolved

    back, files = read_trajectories([result.file])
    assert back.equals(frame)  # the file reads back as exactly the records returned
    assert files[0].sha256 == result.sha256 and files[0].format == "atif"
    assert not list(result.file.parent.glob("*.tmp"))
    return back


@pytest.mark.vllm
def test_rollouts_on_the_tiny_teacher(vllm_teacher, tmp_path: Path) -> None:
    env = Environment(tasks=4, attempts=3, max_steps=3, max_tokens=160, seed=5)
    seen: list[tuple[int, int]] = []
    result = run_rollouts(env, vllm_teacher.base_url, vllm_teacher.model_name, tmp_path / "out" / "runs.json", progress=lambda d, t: seen.append((d, t)))
    _check_result(result, env, vllm_teacher.model_name)
    assert seen[-1] == (12, 12) and len(seen) == 12
    assert result.requests > 0


@pytest.mark.vllm
def test_unknown_model_is_one_infra_error(vllm_teacher, tmp_path: Path) -> None:
    with pytest.raises(VLLMServerError, match="no request succeeded"):
        run_rollouts(Environment(tasks=1, attempts=2), vllm_teacher.base_url, "no-such-model", tmp_path / "runs.json")
