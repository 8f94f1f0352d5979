"""Gate-side checks on derived rows: tool results link to earlier calls; step pairs carry no tool output."""

from __future__ import annotations

import polars as pl
from prefmix.trajectories.checks import (
    tool_output_in_completion,
    unlinked_tool_messages,
)
from prefmix.trajectories.derive import derive
from prefmix.trajectories.readers import read_trajectories

from tests.trajectories.traj_helpers import DATA


def _rows(mode: str) -> pl.DataFrame:
    frame, _ = read_trajectories([DATA / "runs.jsonl", DATA / "atif_runs.json"])
    return derive(frame, mode).rows  # type: ignore[arg-type]


def test_derived_rows_pass_both_checks() -> None:
    for mode in ("trajectory", "step"):
        rows = _rows(mode)
        assert rows.height == 2
        assert unlinked_tool_messages(rows).height == 0 and tool_output_in_completion(rows).height == 0


def test_a_broken_link_and_a_leaked_result_are_found() -> None:
    rows = _rows("step")
    first = rows.row(0, named=True)
    context = [dict(m) for m in first["context"]]
    tool_at = next(i for i, m in enumerate(context) if m["role"] == "tool")
    context[tool_at]["tool_call_id"] = "nobody-called-this"
    leaked = first["chosen_messages"] + [{"role": "tool", "content": "output", "tool_calls": None, "tool_call_id": "x"}]
    broken = rows.head(1).with_columns(
        pl.Series("context", [context], dtype=rows.schema["context"]),
        pl.Series("chosen_messages", [leaked], dtype=rows.schema["chosen_messages"]),
    )
    unlinked = unlinked_tool_messages(broken)
    assert set(unlinked.get_column("side")) == {"chosen_messages", "rejected_messages"}
    assert unlinked.get_column("message").to_list()[0] == tool_at
    assert tool_output_in_completion(broken).to_dicts() == [{"record_id": first["record_id"], "side": "chosen_messages"}]
