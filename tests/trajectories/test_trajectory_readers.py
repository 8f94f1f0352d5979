"""Readers: chat JSONL and ATIF into the trajectory record; validation as one line; ATIF round trip."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from prefmix.trajectories.atif import write_atif
from prefmix.trajectories.readers import read_trajectories

from prefmix.errors import InputError
from prefmix.records import (
    TRAJECTORY_SCHEMA,
    trajectories_to_arrow,
    trajectory_content_ids,
)
from tests.trajectories.traj_helpers import DATA, agent, base, chat_run, write_jsonl

ORIGIN = ["origin_uri", "origin_sha256"]


def _one_line(exc: pytest.ExceptionInfo[InputError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_chat_jsonl_messages_become_steps() -> None:
    frame, files = read_trajectories([DATA / "runs.jsonl"])
    assert frame.height == 6 and files[0].format == "chat_jsonl" and files[0].trajectories == 6
    ok = frame.filter(pl.col("trajectory_id") == "T1-ok").row(0, named=True)
    assert [s["idx"] for s in ok["steps"]] == [1, 2, 3, 4, 5]
    assert [s["source"] for s in ok["steps"]] == ["system", "user", "agent", "agent", "agent"]
    look = ok["steps"][2]
    assert look["tool_calls"] == [{"id": "c1", "name": "bash", "arguments": '{"cmd": "ls src"}'}]
    assert look["observations"] == [{"tool_call_id": "c1", "content": "widget.py count.py", "truncated": False}]
    assert ok["env"] == {"repo_or_site": "acme/widgets", "base_commit_or_snapshot": "abc123", "image": "img:1",
                         "harness": "openhands", "harness_version": "1.0"}
    assert ok["outcome"]["resolved"] is True and ok["task_group"] == "T1" and ok["origin_row"] == 0
    assert json.loads(ok["tools"])[0]["function"]["name"] == "bash"
    trajectories_to_arrow(frame).cast(TRAJECTORY_SCHEMA)  # exact schema, nullability included


def test_atif_fields_map_to_the_record() -> None:
    frame, files = read_trajectories([DATA / "atif_runs.json"])
    assert files[0].format == "atif"
    run = frame.row(0, named=True)
    assert run["trajectory_id"] == "calc-7-run-a" and run["task_id"] == "calc-7" and run["task_group"] == "calculator"
    assert run["env"]["harness"] == "harbor-agent" and run["env"]["harness_version"] == "0.3.1"
    assert run["policy"]["model"] == "smollm2-135m-instruct" and json.loads(run["policy"]["sampling"])["seed"] == 11
    step = run["steps"][2]
    assert step["reasoning"].startswith("Look up") and len(step["tool_calls"]) == 2
    assert step["observations"][0]["truncated"] is True and step["observations"][1]["truncated"] is False
    assert run["outcome"] == {"resolved": True, "reward": 1.0, "verifier": {"kind": "test", "name": "exact-answer", "version": "1"},
                              "exit_status": "submitted"}


def test_atif_survives_read_write_read_unchanged(tmp_path: Path) -> None:
    first, _ = read_trajectories([DATA / "atif_runs.json"])
    written = write_atif(first, tmp_path / "again.json")
    second, _ = read_trajectories([written])
    assert second.drop(ORIGIN).equals(first.drop(ORIGIN))
    # and once more from the written file: a fixed point
    third, _ = read_trajectories([write_atif(second, tmp_path / "third.json")])
    assert (tmp_path / "again.json").read_text() == (tmp_path / "third.json").read_text()
    assert third.drop(ORIGIN).equals(first.drop(ORIGIN))


def test_chat_jsonl_converts_to_atif_and_back(tmp_path: Path) -> None:
    first, _ = read_trajectories([DATA / "runs.jsonl"])
    again, _ = read_trajectories([write_atif(first, tmp_path / "runs.json")])
    assert again.drop(ORIGIN).equals(first.drop(ORIGIN))


def test_missing_ids_become_content_ids_that_ignore_the_origin(tmp_path: Path) -> None:
    run = chat_run("T1", base() + [agent("Done.")], True)
    a, _ = read_trajectories([write_jsonl(tmp_path / "a.jsonl", [run])])
    b, _ = read_trajectories([write_jsonl(tmp_path / "b.jsonl", [chat_run("T9", base() + [agent("Other.")], True), run])])
    assert a.get_column("trajectory_id")[0] == b.get_column("trajectory_id")[1] == trajectory_content_ids(a)[0]
    assert len(a.get_column("trajectory_id")[0]) == 64


def _fails(tmp_path: Path, lines: list[dict], *, name: str = "bad.jsonl") -> str:
    path = write_jsonl(tmp_path / name, lines)
    with pytest.raises(InputError) as exc:
        read_trajectories([path])
    message = _one_line(exc)
    assert message.startswith(f"{path}: ")
    return message


def test_orphan_observation_is_one_line_naming_file_trajectory_and_step(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        read_trajectories([DATA / "orphan_observation.jsonl"])
    assert _one_line(exc) == (
        f"{DATA / 'orphan_observation.jsonl'}: trajectory orphan-1: step 3: observation answers call 'c9', "
        "which no step made; expected the id of one of this step's calls [c1]"
    )


def test_result_in_a_later_step_is_refused(tmp_path: Path) -> None:
    steps = base() + [("agent", "Run it.", [("c1", "bash", "{}")], []), ("user", "go on"), ("agent", "Next.", [("c2", "bash", "{}")], [("c1", "late")])]
    message = _fails(tmp_path, [chat_run("T1", steps, True, "late-1")])
    assert message.endswith("trajectory late-1: step 5: observation answers call 'c1' made in step 3, expected results in the step that made the call")


def test_tool_result_after_a_user_message_names_the_step(tmp_path: Path) -> None:
    line = chat_run("T1", base() + [agent("Run.", ("c1", "bash", "{}"), "out")], True, "u-1")
    line["messages"].insert(3, {"role": "user", "content": "wait"})  # now the tool message follows a user step
    message = _fails(tmp_path, [line])
    assert "trajectory u-1: step 4: observation answers call 'c1' made in step 3" in message


def test_duplicate_call_ids_in_a_trajectory(tmp_path: Path) -> None:
    steps = base() + [agent("a", ("c1", "bash", "{}"), "x"), agent("b", ("c1", "bash", "{}"), "y")]
    message = _fails(tmp_path, [chat_run("T1", steps, True, "dup-call")])
    assert "trajectory dup-call: step 3: tool call id 'c1' is used more than once" in message


def test_two_results_for_one_call(tmp_path: Path) -> None:
    steps = base() + [("agent", "a", [("c1", "bash", "{}")], [("c1", "x"), ("c1", "y")])]
    assert "step 3: call 'c1' has more than one observation" in _fails(tmp_path, [chat_run("T1", steps, True, "twice")])


def test_call_without_id(tmp_path: Path) -> None:
    line = chat_run("T1", base() + [agent("a", ("c1", "bash", "{}"))], True, "noid")
    del line["messages"][2]["tool_calls"][0]["id"]
    assert "trajectory noid: step 3: tool call 1 has no id" in _fails(tmp_path, [line])


def test_duplicate_trajectory_ids_across_files_of_a_delivery(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [chat_run("T1", base() + [agent("x")], True, "same")])
    b = write_jsonl(tmp_path / "b.jsonl", [chat_run("T2", base() + [agent("y")], True, "same")])
    with pytest.raises(InputError) as exc:
        read_trajectories([a, b])
    assert _one_line(exc) == f"{b}: trajectory same: duplicate trajectory id (also at {a} row 0), expected unique ids in a delivery"


def test_identical_runs_without_ids_are_refused(tmp_path: Path) -> None:
    run = chat_run("T1", base() + [agent("x")], True)
    message = _fails(tmp_path, [run, run])
    assert "trajectory row 1: same content as" in message and "expected distinct runs" in message


def test_tool_message_before_any_assistant_message(tmp_path: Path) -> None:
    line = chat_run("T1", base() + [agent("x")], True, "early")
    line["messages"].insert(0, {"role": "tool", "tool_call_id": "c1", "content": "?"})
    assert "trajectory early: message 1: a tool result before any assistant message" in _fails(tmp_path, [line])


def test_unknown_role_and_missing_task(tmp_path: Path) -> None:
    line = chat_run("T1", base() + [agent("x")], True, "r1")
    line["messages"][0]["role"] = "developer"
    assert "message 1: role 'developer', expected one of system, user, assistant, tool" in _fails(tmp_path, [line])
    line = chat_run("T1", base() + [agent("x")], True, "r2")
    del line["instance_id"]
    assert "trajectory r2: no task id" in _fails(tmp_path, [line], name="notask.jsonl")


def test_wrong_types_and_broken_lines_name_the_row(tmp_path: Path) -> None:
    line = chat_run("T1", base() + [agent("x")], True, "typed")
    line["resolved"] = "yes"
    assert _fails(tmp_path, [line]).endswith("trajectory typed: resolved: expected true/false, got \"yes\"")
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(chat_run("T1", base(), True, "fine")) + "\n{not json\n")
    with pytest.raises(InputError) as exc:
        read_trajectories([path])
    assert _one_line(exc).startswith(f"{path}: row 1: not valid JSON")


def test_atif_steps_must_be_numbered_one_to_n(tmp_path: Path) -> None:
    data = json.loads((DATA / "atif_runs.json").read_text())
    data[1]["steps"][3]["step_id"] = 7
    path = tmp_path / "renumbered.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as exc:
        read_trajectories([path])
    assert _one_line(exc) == f"{path}: trajectory calc-7-run-b: step 7: numbered 7 at position 4, expected steps numbered 1..n in order"


def test_atif_observation_without_call_id_and_bad_verifier(tmp_path: Path) -> None:
    data = json.loads((DATA / "atif_runs.json").read_text())
    del data[0]["steps"][3]["observation"]["results"][0]["source_call_id"]
    path = tmp_path / "nocall.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as exc:
        read_trajectories([path])
    assert _one_line(exc).endswith("trajectory calc-7-run-a: step 4: observation 1 names no call, expected every observation to carry the tool_call_id it answers")
    data = json.loads((DATA / "atif_runs.json").read_text())
    data[0]["extra"]["outcome"]["verifier"]["kind"] = "vibes"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as exc:
        read_trajectories([path])
    assert "trajectory calc-7-run-a: outcome: verifier kind 'vibes', expected one of test, llm_judge, human" in _one_line(exc)


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "runs.csv").write_text("x\n")
    with pytest.raises(InputError, match="unknown trajectory format '.csv'"):
        read_trajectories([tmp_path / "runs.csv"])
    with pytest.raises(InputError, match="trajectory file not found"):
        read_trajectories([tmp_path / "absent.jsonl"])
