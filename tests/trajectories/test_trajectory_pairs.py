"""Trajectory pairs: one task, one environment, outcome decides, ties give nothing, both sides end on an agent turn."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from prefmix.trajectories.config import Rules
from prefmix.trajectories.derive import derive
from prefmix.trajectories.readers import read_trajectories
from prefmix.trajectories.render import render_messages

from prefmix.records import SCHEMA, record_id, to_arrow
from tests.trajectories.traj_helpers import DATA, agent, base, chat_run, write_jsonl


def _derive(tmp_path: Path, lines: list[dict], mode: str = "trajectory", rules: Rules | None = None, name: str = "runs.jsonl"):
    frame, _ = read_trajectories([write_jsonl(tmp_path / name, lines)])
    return derive(frame, mode, rules)  # type: ignore[arg-type]


def _run(task: str, text: str, resolved: bool | None, tid: str, **kw):
    return chat_run(task, base(task) + [agent("Look.", ("c1", "bash", '{"cmd": "ls"}'), "a.py"), agent(text)], resolved, tid, **kw)


def test_one_resolved_and_one_unresolved_run_give_exactly_one_pair(tmp_path: Path) -> None:
    result = _derive(tmp_path, [_run("T1", "Fixed.", True, "win"), _run("T1", "Broke it.", False, "lose")])
    assert result.rows.height == 1 and result.rejections.height == 0
    row = result.rows.row(0, named=True)
    assert row["trajectory"]["chosen_trajectory_id"] == "win" and row["trajectory"]["rejected_trajectory_id"] == "lose"
    assert (row["chosen_score"], row["rejected_score"]) == (1.0, 0.0) and row["kind"] == "trajectory_pair"
    assert row["source"] == "synthetic" and row["domain"] == "code" and row["task_group"] == "T1"
    assert row["record_id"] == record_id(row["prompt"], row["chosen"], row["rejected"])
    assert row["prompt"] == render_messages(row["context"]) and row["chosen"] == render_messages(row["chosen_messages"])
    assert to_arrow(result.rows).schema == SCHEMA


def test_a_tie_gives_no_pair_and_is_counted(tmp_path: Path) -> None:
    result = _derive(tmp_path, [_run("T1", "Fixed.", True, "a"), _run("T1", "Fixed too.", True, "b")])
    assert result.rows.height == 0
    assert result.summary.rejected_by_reason == {"tie": 2} and result.summary.reconciled


def test_runs_of_different_tasks_never_pair(tmp_path: Path) -> None:
    result = _derive(tmp_path, [_run("T1", "Fixed.", True, "t1"), _run("T2", "Broke it.", False, "t2")])
    assert result.rows.height == 0 and result.summary.rejected_by_reason == {"single_run": 2}


def test_runs_of_different_harness_versions_never_pair(tmp_path: Path) -> None:
    lines = [_run("T1", "Fixed.", True, "v1"), _run("T1", "Broke it.", False, "v2", harness_version="2.0")]
    assert _derive(tmp_path, lines).rows.height == 0
    # every environment field counts, not only the version
    lines = [_run("T1", "Fixed.", True, "i1"), _run("T1", "Broke it.", False, "i2", image="img:2")]
    assert _derive(tmp_path, lines, name="image.jsonl").summary.rejected_by_reason == {"single_run": 2}


def test_different_verifiers_never_pair(tmp_path: Path) -> None:
    lines = [
        _run("T1", "Fixed.", True, "a", verifier={"kind": "test", "name": "pytest", "version": "1"}),
        _run("T1", "Broke it.", False, "b", verifier={"kind": "llm_judge", "name": "judge", "version": "1"}),
    ]
    assert _derive(tmp_path, lines).summary.rejected_by_reason == {"single_run": 2}


def test_higher_reward_is_chosen_and_resolved_outranks_reward(tmp_path: Path) -> None:
    result = _derive(tmp_path, [_run("T1", "Half.", None, "lo", reward=0.2), _run("T1", "Most.", None, "hi", reward=0.9)])
    assert result.rows.row(0, named=True)["trajectory"]["chosen_trajectory_id"] == "hi"
    lines = [_run("T1", "Solved, slowly.", True, "solved", reward=0.1), _run("T1", "Fast, wrong.", False, "fast", reward=0.8)]
    row = _derive(tmp_path, lines, name="mixed.jsonl").rows.row(0, named=True)
    assert row["trajectory"]["chosen_trajectory_id"] == "solved" and row["chosen_score"] == 0.1


def test_no_outcome_and_no_agent_turn_are_counted(tmp_path: Path) -> None:
    lines = [_run("T1", "Fixed.", True, "a"), _run("T1", "Who knows.", None, "b"), chat_run("T1", base("T1"), False, "c")]
    result = _derive(tmp_path, lines)
    assert result.summary.rejected_by_reason == {"no_agent_turn": 1, "no_outcome": 1, "single_run": 1}


def test_both_sides_end_on_an_agent_turn(tmp_path: Path) -> None:
    frame, _ = read_trajectories([DATA / "runs.jsonl"])
    result = derive(frame, "trajectory")
    row = result.rows.row(0, named=True)
    for side in ("chosen_messages", "rejected_messages"):
        assert row[side][-1]["role"] == "assistant"
    # T1-bad ended with a user turn and a tool result; both were cut and counted
    assert row["rejected_messages"][-1]["content"] == "Delete the failing test." and row["rejected_messages"][-1]["tool_calls"]
    assert result.summary.counts == {"trimmed_trailing_steps": 1, "dropped_final_results": 1}
    assert row["context"][-1]["role"] == "user" and all(m["role"] != "tool" for m in row["context"])


def test_the_fixture_delivery_reconciles(tmp_path: Path) -> None:
    frame, _ = read_trajectories([DATA / "runs.jsonl"])
    result = derive(frame, "trajectory")
    s = result.summary
    assert (s.trajectories_in, s.rows_out, s.trajectories_in_rows, s.trajectories_rejected) == (6, 1, 2, 4)
    assert s.rejected_by_reason == {"single_run": 2, "tie": 2}
    assert dict(zip(*result.rejections.select("trajectory_id", "reason").to_dict(as_series=False).values())) == {
        "T1-bad-v2": "single_run", "T2-a": "tie", "T2-b": "tie", "T3-bad": "single_run"
    }


def test_prompt_mismatch_is_a_counted_drop(tmp_path: Path) -> None:
    other = chat_run("T1", [("system", "Different system prompt."), ("user", "Fix issue T1.")] + [agent("Broke it.")], False, "other")
    result = _derive(tmp_path, [_run("T1", "Fixed.", True, "a"), other])
    assert result.rows.height == 0 and result.summary.candidates_dropped_by_reason == {"prompt_mismatch": 1}
    assert result.summary.rejected_by_reason == {"prompt_mismatch": 2}


def _many(task: str, wins: int, losses: int) -> list[dict]:
    return [_run(task, f"Fixed, variant {i}.", True, f"{task}-w{i}") for i in range(wins)] + [
        _run(task, f"Broken, variant {i}.", False, f"{task}-l{i}") for i in range(losses)
    ]


def test_cap_is_seeded_and_independent_of_input_order(tmp_path: Path) -> None:
    lines = _many("T1", 3, 4)  # 12 candidate pairs
    rules = Rules(max_pairs_per_task=5, seed=7)
    first = _derive(tmp_path, lines, rules=rules, name="a.jsonl")
    again = _derive(tmp_path, list(reversed(lines)), rules=rules, name="b.jsonl")
    other_seed = _derive(tmp_path, lines, rules=Rules(max_pairs_per_task=5, seed=8), name="c.jsonl")
    ids = lambda r: sorted(r.rows.get_column("record_id").to_list())  # noqa: E731
    assert first.rows.height == 5 and first.summary.candidate_pairs == 12
    assert first.summary.candidates_dropped_by_reason == {"cut_by_cap": 7}
    assert ids(first) == ids(again) and ids(first) != ids(other_seed)
    assert first.summary.reconciled and first.summary.trajectories_in == first.summary.trajectories_in_rows + first.summary.trajectories_rejected


@pytest.mark.parametrize("cap", [1, 2, 100])
def test_every_run_ends_in_a_row_or_one_rejection(tmp_path: Path, cap: int) -> None:
    lines = _many("T1", 2, 3) + _many("T2", 1, 0) + _many("T3", 0, 2) + [_run("T4", "x", None, "T4-none")]
    result = _derive(tmp_path, lines, rules=Rules(max_pairs_per_task=cap))
    s = result.summary
    assert s.reconciled and sum(s.rejected_by_reason.values()) == s.trajectories_rejected
    assert result.rejections.get_column("trajectory_id").n_unique() == result.rejections.height
    used = set(result.rows.get_column("trajectory").struct.field("chosen_trajectory_id").to_list()) | set(
        result.rows.get_column("trajectory").struct.field("rejected_trajectory_id").to_list()
    )
    assert used.isdisjoint(result.rejections.get_column("trajectory_id").to_list())
    assert result.rows.height == min(cap, 6) and not result.rows.get_column("record_id").is_duplicated().any()
    assert (result.rows.get_column("chosen") != result.rows.get_column("rejected")).all()


def test_human_verifier_gives_human_rows(tmp_path: Path) -> None:
    verifier = {"kind": "human", "name": "review-team", "version": "2025-10"}
    lines = [_run("T1", "Fixed.", True, "a", verifier=verifier), _run("T1", "Broke.", False, "b", verifier=verifier)]
    assert _derive(tmp_path, lines).rows.get_column("source").to_list() == ["human"]
    assert pl.DataFrame(to_arrow(_derive(tmp_path, lines, name="h.jsonl").rows)).height == 1
