"""The trajectory record's contract: schema, environment key, content ids, the one text rendering."""

from __future__ import annotations

import json

import polars as pl
from prefmix.trajectories.readers import read_trajectories
from prefmix.trajectories.render import render_messages

from prefmix.records import (
    ENV_FIELDS,
    TRAJECTORY_SCHEMA,
    env_key,
    trajectories_to_arrow,
    trajectory_content_ids,
)
from tests.trajectories.traj_helpers import DATA


def test_env_key_is_canonical_json_of_all_five_fields() -> None:
    key = env_key({"harness": "openhands", "harness_version": "1.0"})
    assert list(json.loads(key)) == list(ENV_FIELDS) and " " not in key
    assert env_key({"harness_version": "1.0", "harness": "openhands"}) == key
    assert env_key({"harness": "openhands", "harness_version": "1.1"}) != key


def test_records_have_the_exact_arrow_schema_and_content_ids_ignore_origin() -> None:
    frame, _ = read_trajectories([DATA / "runs.jsonl"])
    assert trajectories_to_arrow(frame).schema == TRAJECTORY_SCHEMA
    moved = frame.with_columns(origin_uri=pl.lit("elsewhere.jsonl"), origin_row=pl.col("origin_row") + 10)
    assert trajectory_content_ids(moved) == trajectory_content_ids(frame)
    changed = frame.with_columns(task_id=pl.lit("T9"))
    assert set(trajectory_content_ids(changed)).isdisjoint(trajectory_content_ids(frame))


def test_rendering_of_a_concatenation_is_the_concatenation_of_renderings() -> None:
    a = [{"role": "user", "content": "Fix it.", "tool_calls": None, "tool_call_id": None}]
    b = [{"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "name": "bash", "arguments": "{}"}], "tool_call_id": None},
         {"role": "tool", "content": "ok", "tool_calls": None, "tool_call_id": "c1"}]
    assert render_messages(a + b) == render_messages(a) + "\n" + render_messages(b)
    assert render_messages(b) == "<assistant>\n\n<call bash>{}\n<tool>\nok"
    renamed = [{**b[0], "tool_calls": [{"id": "other", "name": "bash", "arguments": "{}"}]}, {**b[1], "tool_call_id": "other"}]
    assert render_messages(renamed) == render_messages(b)  # call ids are transport, not content


def test_vectorised_normalization_matches_normalize_text() -> None:
    from prefmix.trajectories.render import normalized_series

    from prefmix.records import normalize_text

    texts = ["plain", "  lead and trail  ", "tab\there", "new\nline\r\n", "two  spaces", "Cafe\u0301 au lait", "caf\u00e9",
             "nbsp\u00a0and\u2003em", "", "\u3000wide\u3000", "mixed \t\n runs   here"]
    assert normalized_series(pl.Series(texts)).to_list() == [normalize_text(t) for t in texts]
    assert normalized_series(pl.Series([None], dtype=pl.String)).to_list() == [""]
