"""Step pairs: cut at the divergence step k, prompt = the shared steps[:k], completion = one agent message."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefmix.trajectories.derive import derive
from prefmix.trajectories.readers import read_trajectories
from prefmix.trajectories.render import render_messages

from prefmix.records import SCHEMA, record_id, to_arrow
from tests.trajectories.traj_helpers import (
    DATA,
    Step,
    agent,
    base,
    chat_run,
    messages,
    write_jsonl,
)

SHARED: list[Step] = base("T1") + [
    agent("List the files.", ("c1", "bash", '{"cmd": "ls"}'), "count.py test_count.py"),
    ("user", "Keep going."),
    agent("Read count.py.", ("c2", "bash", '{"cmd": "cat count.py"}'), "for i in range(1, n):"),
]
GOOD: list[Step] = [agent("Start at 0.", ("c3", "bash", '{"cmd": "sed -i s/1,/0,/ count.py"}'), "edited"), agent("Fixed.")]
BAD: list[Step] = [agent("Skip the test.", ("c3", "bash", '{"cmd": "rm test_count.py"}'), "removed"), agent("Done.")]


def _derive(tmp_path: Path, lines: list[dict], name: str = "branches.jsonl"):
    frame, _ = read_trajectories([write_jsonl(tmp_path / name, lines)])
    return derive(frame, "step")


def _renumbered(steps: list[Step], prefix: str) -> list[Step]:
    """The same steps under other call ids: ids are transport, the divergence ignores them."""
    out: list[Step] = []
    for step in steps:
        if step[0] == "agent":
            _, text, calls, results = step
            step = ("agent", text, [(prefix + i, n, a) for i, n, a in calls], [(prefix + i, r) for i, r in results])
        out.append(step)
    return out


@pytest.mark.parametrize("extra_shared", [0, 1, 2])
def test_divergence_index_on_hand_built_branches(tmp_path: Path, extra_shared: int) -> None:
    shared = SHARED + [agent(f"Check {i}.", (f"x{i}", "bash", f'{{"cmd": "true {i}"}}'), "ok") for i in range(extra_shared)]
    chosen_full, rejected_full = shared + GOOD, _renumbered(shared, "r-") + BAD
    k = len(shared)
    result = _derive(tmp_path, [chat_run("T1", chosen_full, True, "good"), chat_run("T1", rejected_full, False, "bad")])
    assert result.rows.height == 1
    row = result.rows.row(0, named=True)
    assert row["trajectory"]["divergence_step"] == k
    # prompt == chosen_full[:k] == rejected_full[:k] (as steps, ids aside), and as messages
    assert row["context"] == _as_rows(messages(chosen_full[:k]))
    assert _without_ids(row["context"]) == _without_ids(_as_rows(messages(rejected_full[:k])))
    assert row["prompt"] == render_messages(_as_rows(messages(chosen_full[:k]))) == render_messages(_as_rows(messages(rejected_full[:k])))
    # the completion is the single agent message at k, without its result
    assert row["chosen_messages"] == _as_rows(messages([GOOD[0][:3] + ([],)]))
    assert row["rejected_messages"] == _as_rows(messages([BAD[0][:3] + ([],)]))
    for side in ("chosen_messages", "rejected_messages"):
        assert [m["role"] for m in row[side]] == ["assistant"]
    assert "edited" not in row["chosen"] and "removed" not in row["rejected"]  # no tool output in a completion
    assert row["record_id"] == record_id(row["prompt"], row["chosen"], row["rejected"]) and row["kind"] == "step_pair"
    assert to_arrow(result.rows).schema == SCHEMA


def _as_rows(msgs: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m.get("content"),
             "tool_calls": [{"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in m["tool_calls"]] if m.get("tool_calls") else None,
             "tool_call_id": m.get("tool_call_id")} for m in msgs]


def _without_ids(msgs: list[dict]) -> list[dict]:
    return [{**m, "tool_call_id": None, "tool_calls": [{**c, "id": None} for c in m["tool_calls"]] if m["tool_calls"] else None} for m in msgs]


def test_divergence_at_the_first_agent_step(tmp_path: Path) -> None:
    result = _derive(tmp_path, [chat_run("T1", base("T1") + GOOD, True, "g"), chat_run("T1", base("T1") + BAD, False, "b")])
    row = result.rows.row(0, named=True)
    assert row["trajectory"]["divergence_step"] == 2 and [m["role"] for m in row["context"]] == ["system", "user"]


def test_same_action_with_a_different_result_gives_no_pair(tmp_path: Path) -> None:
    a = SHARED + [agent("Run tests.", ("t", "bash", '{"cmd": "pytest"}'), "1 passed"), agent("Good.")]
    b = SHARED + [agent("Run tests.", ("t", "bash", '{"cmd": "pytest"}'), "1 failed"), agent("Bad.")]
    result = _derive(tmp_path, [chat_run("T1", a, True, "a"), chat_run("T1", b, False, "b")])
    assert result.rows.height == 0
    assert result.summary.candidates_dropped_by_reason == {"same_action_different_observation": 1}
    assert result.summary.rejected_by_reason == {"same_action_different_observation": 2}


def test_a_run_that_is_a_prefix_of_the_other_gives_no_pair(tmp_path: Path) -> None:
    result = _derive(tmp_path, [chat_run("T1", SHARED + GOOD, True, "long"), chat_run("T1", SHARED, False, "short")])
    assert result.summary.candidates_dropped_by_reason == {"no_divergence": 1}


def test_divergence_at_a_user_step_gives_no_pair(tmp_path: Path) -> None:
    a = base("T1") + [agent("Ask.", ("q", "bash", "{}"), "?"), ("user", "Use plan A."), agent("Plan A.")]
    b = base("T1") + [agent("Ask.", ("q", "bash", "{}"), "?"), ("user", "Use plan B."), agent("Plan B.")]
    result = _derive(tmp_path, [chat_run("T1", a, True, "a"), chat_run("T1", b, False, "b")])
    assert result.summary.candidates_dropped_by_reason == {"diverges_at_non_agent_step": 1}


def test_two_losers_with_the_same_wrong_step_give_one_row(tmp_path: Path) -> None:
    lines = [chat_run("T1", SHARED + GOOD, True, "g"), chat_run("T1", SHARED + BAD, False, "b1"),
             chat_run("T1", _renumbered(SHARED + BAD, "z-"), False, "b2")]
    result = _derive(tmp_path, lines)
    assert result.rows.height == 1 and result.summary.candidates_dropped_by_reason == {"duplicate_row": 1}
    assert result.summary.reconciled and result.summary.rejected_by_reason == {"duplicate_row": 1}


def test_atif_fixture_step_pair_keeps_parallel_results_in_the_prompt() -> None:
    frame, _ = read_trajectories([DATA / "atif_runs.json"])
    row = derive(frame, "step").rows.row(0, named=True)
    assert row["trajectory"]["divergence_step"] == 3
    assert [m["role"] for m in row["context"]] == ["system", "user", "assistant", "tool", "tool"]
    assert [m["tool_call_id"] for m in row["context"][3:]] == ["call_1", "call_2"]
    assert row["chosen_messages"][0]["tool_calls"][0]["arguments"] == '{"expression": "3 * 4.50 * 1.08"}'
    assert "14.58" not in row["chosen"]


def test_steps_compare_under_normalization_not_byte_for_byte(tmp_path: Path) -> None:
    # the same steps written with other whitespace and another Unicode form still count as the shared prefix
    respelled = base("T1") + [
        agent("List  the files.\n", ("r1", "bash", '{"cmd": "ls"}'), "count.py   test_count.py"),
        ("user", "Keep going."),
        agent("Read count.py.", ("r2", "bash", '{"cmd": "cat count.py"}'), "for i in range(1, n):"),
    ]
    result = _derive(tmp_path, [chat_run("T1", SHARED + GOOD, True, "g"), chat_run("T1", respelled + BAD, False, "b")])
    assert result.rows.row(0, named=True)["trajectory"]["divergence_step"] == len(SHARED)
    cafe = [agent("Caf\u00e9 first.", ("k", "bash", "{}"), "ok")]
    decomposed = [agent("Cafe\u0301 first.", ("k", "bash", "{}"), "ok")]
    result = _derive(tmp_path, [chat_run("T1", base("T1") + cafe + GOOD, True, "g"), chat_run("T1", base("T1") + decomposed + BAD, False, "b")],
                     name="nfc.jsonl")
    assert result.rows.row(0, named=True)["trajectory"]["divergence_step"] == 3
