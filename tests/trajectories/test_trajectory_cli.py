"""`prefmix trajectories pairs` through a subprocess: one-line errors, and a --json line that reconciles."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from prefmix.records import SCHEMA, STEP_LABEL_SCHEMA
from tests.trajectories.traj_helpers import DATA, run_cli


def test_orphan_observation_fails_with_one_line_and_exit_2() -> None:
    done = run_cli(str(DATA / "orphan_observation.jsonl"), "--json")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0] == (
        f"prefmix: error: {DATA / 'orphan_observation.jsonl'}: trajectory orphan-1: step 3: "
        "observation answers call 'c9', which no step made; expected the id of one of this step's calls [c1]"
    )


def test_json_reconciles_and_the_parquet_matches(tmp_path: Path) -> None:
    out = tmp_path / "pairs" / "rows.parquet"
    done = run_cli(str(DATA / "runs.jsonl"), str(DATA / "atif_runs.json"), "--mode", "step", "--json", "--out", str(out))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["trajectories_in"] == 8 == summary["trajectories_in_rows"] + summary["trajectories_rejected"]
    assert summary["trajectories_rejected"] == sum(summary["rejected_by_reason"].values()) and summary["reconciled"] is True
    assert [f["format"] for f in summary["files"]] == ["chat_jsonl", "atif"]
    rows = pq.read_table(out)
    assert rows.schema == SCHEMA and rows.num_rows == summary["rows_out"] == 2
    rejections = pl.read_parquet(summary["rejections_out"])
    assert rejections.height == summary["trajectories_rejected"]
    assert set(rejections.get_column("reason")) == set(summary["rejected_by_reason"])


def test_labels_from_reviews_through_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "labels.parquet"
    done = run_cli(str(DATA / "runs.jsonl"), "--mode", "labels", "--reviews", str(DATA / "step_reviews.jsonl"), "--json", "--out", str(out))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["rows_out"], summary["trajectories_rejected"], summary["trajectories_in"]) == (3, 3, 6)
    assert pq.read_table(out).schema == STEP_LABEL_SCHEMA
    assert summary["reviews"]["agreement"]["alpha"] is not None


def test_usage_mistakes_are_one_line() -> None:
    done = run_cli(str(DATA / "runs.jsonl"), "--mode", "trajectory", "--reviews", str(DATA / "step_reviews.jsonl"))
    assert done.returncode == 2 and done.stderr.strip() == "prefmix: error: trajectories pairs: --reviews applies to --mode labels only"
