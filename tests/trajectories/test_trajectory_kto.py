"""KTO rows: one run's completion, label = resolved."""

from __future__ import annotations

from pathlib import Path

from prefmix.trajectories.derive import derive
from prefmix.trajectories.readers import read_trajectories

from prefmix.records import KTO_SCHEMA, kto_to_arrow, record_id
from tests.trajectories.traj_helpers import DATA, agent, base, chat_run, write_jsonl


def test_label_is_resolved_and_the_completion_ends_on_an_agent_turn() -> None:
    frame, _ = read_trajectories([DATA / "runs.jsonl"])
    result = derive(frame, "kto")
    rows = {r["trajectory_id"]: r for r in result.rows.to_dicts()}
    assert rows["T1-ok"]["label"] is True and rows["T1-bad"]["label"] is False
    bad = rows["T1-bad"]
    assert bad["completion_messages"][-1]["role"] == "assistant" and "removed" not in bad["completion"]
    assert bad["record_id"] == record_id(bad["prompt"], bad["completion"], "false")
    # T1-bad-v2 has the same text and label as T1-bad (only its harness differs): one row
    assert result.summary.rejected_by_reason == {"duplicate_row": 1} and result.summary.reconciled
    assert kto_to_arrow(result.rows).schema == KTO_SCHEMA


def test_reward_without_resolved_gives_no_kto_row(tmp_path: Path) -> None:
    lines = [chat_run("T1", base() + [agent("x")], None, "r", reward=0.4), chat_run("T1", base(), True, "n")]
    frame, _ = read_trajectories([write_jsonl(tmp_path / "runs.jsonl", lines)])
    result = derive(frame, "kto")
    assert result.rows.height == 0 and result.summary.rejected_by_reason == {"no_agent_turn": 1, "no_outcome": 1}
