"""Malformed shards: `prefmix annotations report` exits 2 with one stderr line naming file, row and column.

Rows are numbered from 0, like origin_row. Nothing is written (no chart).
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path
from typing import Callable

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.annotations.helpers import JUDGMENT_TYPES, judgment_rows, write
from tests.support.cli import prefmix

GOOD = [
    ("i1", "ann1", "a", 1, False, None, None), ("i1", "ann2", "b", 1, False, None, None),
    ("i2", "ann1", "a", 1, False, None, None), ("i2", "ann2", "a", 1, False, None, None),
]


def _judgments(path: Path, change: Callable[[list[dict]], None] | None = None, drop: str | None = None) -> Path:
    rows = judgment_rows(GOOD)
    if change:
        change(rows)
    if drop:
        for row in rows:
            row.pop(drop)
    return write(rows, path, JUDGMENT_TYPES)


def _set(row: int, column: str, value: object) -> Callable[[list[dict]], None]:
    def change(rows: list[dict]) -> None:
        rows[row][column] = value

    return change


def _truncated(path: Path) -> Path:
    good = _judgments(path)
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _bad_utf8(path: Path) -> Path:
    table = pq.read_table(_judgments(path))
    prompts = table.column("prompt").combine_chunks()
    values = [p.as_py().encode() for p in prompts]
    values[3] = b"How do I \xff\xfe?"
    data = b"".join(values)
    offsets = pa.array([0, *itertools.accumulate(len(v) for v in values)], type=pa.int32())
    broken = pa.Array.from_buffers(pa.string(), len(values), [None, offsets.buffers()[1], pa.py_buffer(data)])
    pq.write_table(table.set_column(table.column_names.index("prompt"), "prompt", broken), path)
    return path


def _wrong_type(path: Path) -> Path:
    rows = judgment_rows(GOOD)
    for row in rows:
        row["review_pass"] = str(row["review_pass"])
    return write(rows, path, {k: v for k, v in JUDGMENT_TYPES.items() if k != "review_pass"})


def _fractional_pass(path: Path) -> Path:
    rows = judgment_rows(GOOD)
    for row in rows:
        row["review_pass"] = float(row["review_pass"])
    rows[2]["review_pass"] = 1.5
    return write(rows, path, {k: v for k, v in JUDGMENT_TYPES.items() if k != "review_pass"})


def _rankings_out_of_range(path: Path) -> Path:
    pl.DataFrame({"prompt": ["p", "q"], "domain": ["law", "law"], "responses": [["x", "y"], ["u", "v"]], "rankings": [[[0, 1]], [[0, 5]]]}).write_parquet(path)
    return path


CASES: dict[str, tuple[Callable[[Path], Path], list[str]]] = {
    "missing_column": (lambda p: _judgments(p, drop="preference"), ["missing column 'preference'"]),
    "wrong_type": (_wrong_type, ["column 'review_pass'", "expected an integer", "found type"]),
    "unknown_preference": (lambda p: _judgments(p, _set(2, "preference", "maybe")), ["row 2", "column 'preference'", "a, b, tie", "'maybe'"]),
    "null_text": (lambda p: _judgments(p, _set(1, "response_a", None)), ["row 1", "column 'response_a'", "non-empty text"]),
    "empty_text": (lambda p: _judgments(p, _set(3, "prompt", "   ")), ["row 3", "column 'prompt'", "non-empty text"]),
    "unknown_domain": (lambda p: _judgments(p, _set(0, "domain", "astrology")), ["row 0", "column 'domain'", "'astrology'"]),
    "gold_without_answer": (lambda p: _judgments(p, _set(0, "is_gold", True)), ["row 0", "column 'gold_answer'"]),
    "inconsistent_item": (lambda p: _judgments(p, _set(1, "prompt", "Another prompt?")), ["row 1", "column 'prompt'", "same prompt"]),
    "empty_file": (lambda p: (p.write_bytes(b""), p)[1], ["empty file"]),
    "no_rows": (lambda p: (pl.DataFrame(schema={"prompt": pl.String}).write_parquet(p), p)[1], ["no rows"]),
    "truncated": (_truncated, ["not a readable Parquet file"]),
    "not_parquet": (lambda p: (p.write_text("item_id,prompt\n1,hi\n"), p)[1], ["not a readable Parquet file"]),
    "invalid_utf8": (_bad_utf8, ["row 3", "column 'prompt'", "UTF-8"]),
    "fractional_pass": (_fractional_pass, ["row 2", "column 'review_pass'", "expected an integer", "1.5"]),
    "rankings_index": (_rankings_out_of_range, ["row 1", "column 'rankings'", "[[0, 5]]"]),
}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return prefmix("annotations", "report", *args, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, subprocess.CompletedProcess[str]]]:
    """Build every malformed shard and run the CLI on all of them concurrently (start-up dominates)."""
    from concurrent.futures import ThreadPoolExecutor

    base = tmp_path_factory.mktemp("malformed")

    def one(case: str) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
        build, _ = CASES[case]
        path = build(base / f"{case}.parquet")
        layout = "rankings" if case == "rankings_index" else "judgments"
        out = base / f"out_{case}"
        return path, out, _run(str(path), "--layout", layout, "--out", str(out), cwd=base)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(sorted(CASES), pool.map(one, sorted(CASES))))


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_shard_one_line_exit_2(case: str, outcomes: dict) -> None:
    path, out, done = outcomes[case]
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert lines[0].startswith("prefmix: error: ") and str(path) in lines[0]
    for fragment in CASES[case][1]:
        assert fragment in lines[0], lines[0]
    assert not out.exists()


def test_vendor_mapped_column_is_named_as_in_the_file(tmp_path: Path) -> None:
    """With a column mapping, the message quotes the vendor's column name and the canonical one."""
    rows = judgment_rows(GOOD)
    for row in rows:
        row["choice"] = row.pop("preference")
    rows[1]["choice"] = "C"
    path = write(rows, tmp_path / "vendor.parquet", JUDGMENT_TYPES)
    config = tmp_path / "prefmix.yaml"
    config.write_text(f"human:\n  shards:\n    - path: {path}\n      layout: judgments\n      columns: {{preference: choice}}\n")
    done = _run("--config", str(config), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"prefmix: error: {path}: row 1, column 'choice' (preference): expected one of a, b, tie, got 'C'"
    )
